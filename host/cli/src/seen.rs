//! What this machine has seen of a store: the newest snapshot of each host
//! and source. A storage is trusted only as far as its MACs prove, and a MAC
//! cannot prove an object is *missing*: a storage that hides the newest
//! snapshot would make `restore latest` quietly restore an older one. So
//! every listing is held against this memory, and a remembered snapshot
//! that is gone without a `kast rm` from here is warned about.
//!
//! Kept in `$XDG_DATA_HOME/kast/seen/STORE_ID.json`.

use crate::context::Context;
use crate::spec::format_time;
use kast_engine::Store;
use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The newest snapshot seen of one host and source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Newest {
    id: String,
    time_ns: i64,
}

/// Keyed by `host` and `source`, joined with a newline (which neither holds).
type Memory = BTreeMap<String, Newest>;

fn file(ctx: &Context, store: &Store) -> PathBuf {
    ctx.dirs
        .data
        .join("seen")
        .join(format!("{}.json", store.config().store_id))
}

fn key(snapshot: &Snapshot) -> String {
    format!("{}\n{}", snapshot.host, snapshot.source)
}

fn load(ctx: &Context, store: &Store) -> Memory {
    std::fs::read(file(ctx, store))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Written whole to a temporary file and renamed: a crash leaves the old one.
fn save(ctx: &Context, store: &Store, memory: &Memory) {
    let path = file(ctx, store);
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(memory)?)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        ctx.warn(&format!(
            "cannot remember the newest snapshots in {}: {e}",
            path.display()
        ));
    }
}

/// Holds a full listing of the store against what was seen before: warns
/// about each remembered snapshot that is gone, then remembers the newest
/// of each host and source listed.
pub fn check(ctx: &Context, store: &Store, listed: &[(Id, Snapshot)]) {
    let mut memory = load(ctx, store);
    let present: std::collections::HashSet<String> =
        listed.iter().map(|(id, _)| id.to_hex()).collect();
    for (group, newest) in &memory {
        if !present.contains(&newest.id) {
            let (host, source) = group.split_once('\n').unwrap_or((group, ""));
            ctx.warn(&format!(
                "snapshot {} of {source} on {host} ({} UTC), the newest this machine has seen, \
                 is gone from the store and was not removed from here: the storage may be \
                 hiding or have lost it",
                &newest.id[..8.min(newest.id.len())],
                format_time(newest.time_ns)
            ));
        }
    }
    let before = memory.clone();
    for (id, snapshot) in listed {
        remember_in(&mut memory, id, snapshot);
    }
    if memory != before {
        save(ctx, store, &memory);
    }
}

fn remember_in(memory: &mut Memory, id: &Id, snapshot: &Snapshot) {
    let newest = Newest {
        id: id.to_hex(),
        time_ns: snapshot.time_ns,
    };
    match memory.get(&key(snapshot)) {
        Some(old) if (old.time_ns, &old.id) >= (newest.time_ns, &newest.id) => {}
        _ => {
            memory.insert(key(snapshot), newest);
        }
    }
}

/// Remembers a snapshot this machine just made.
pub fn remember(ctx: &Context, store: &Store, id: &Id, snapshot: &Snapshot) {
    let mut memory = load(ctx, store);
    remember_in(&mut memory, id, snapshot);
    save(ctx, store, &memory);
}

/// Forgets snapshots removed from this machine (`rm`, a job's retention),
/// so their absence is no surprise.
pub fn forget(ctx: &Context, store: &Store, removed: &[Id]) {
    let mut memory = load(ctx, store);
    let gone: std::collections::HashSet<String> = removed.iter().map(Id::to_hex).collect();
    let before = memory.len();
    memory.retain(|_, newest| !gone.contains(&newest.id));
    if memory.len() != before {
        save(ctx, store, &memory);
    }
}
