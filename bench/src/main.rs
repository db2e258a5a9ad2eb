//! `kast-bench`: whole runs of the engine, one per process, so that peak
//! memory (VmHWM, or `/usr/bin/time -v`) belongs to that run alone.
//!
//! ```text
//! kast-bench tree                      # make the 1 GiB tree, print its path
//! kast-bench large | small | text      # make a comparison dataset, print its path
//! kast-bench change DIR | unchange DIR # rewrite 1 % of the small files, or undo it
//! kast-bench backup SRC STORE          # fresh store, backup, print figures
//! kast-bench restore STORE DEST        # restore the latest snapshot
//! kast-bench index N DIR               # synthetic index of N blobs
//! kast-bench ui-store N STORE          # N snapshots, one with a 100k-entry folder (bench/ui.sh)
//! kast-bench scale-store STORE FILES GENERATIONS SNAPSHOTS   # the store of bench/scale.sh
//! kast-bench scale-backup STORE FILES GENERATION             # one backup of the synthetic source
//! kast-bench scale-forget STORE        # remove half the snapshots (bench/scale.sh)
//! ```

use kast_bench::{
    SyntheticSource, benchmark_tree, change_one_percent, data_dir, large_files_tree, memory_kib,
    small_files_tree, text_files_tree,
};

use kast_engine::blob::BlobKind;
use kast_engine::crypto::Id;
use kast_engine::index::{PackEntry, State};
use kast_engine::keys::KdfParams;
use kast_engine::native::local::{LocalDestination, LocalSource};
use kast_engine::storage::{LocalStorage, ObjectKind, Storage};
use kast_engine::{BackupOptions, CreateOptions, RestoreOptions, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> PathBuf { PathBuf::from(args.get(i).unwrap_or_else(|| usage())) };
    match args.first().map(String::as_str) {
        Some("tree") => println!("{}", benchmark_tree(&data_dir()).expect("tree").display()),
        Some("large") => println!(
            "{}",
            large_files_tree(&data_dir()).expect("large").display()
        ),
        Some("small") => println!(
            "{}",
            small_files_tree(&data_dir()).expect("small").display()
        ),
        Some("text") => println!("{}", text_files_tree(&data_dir()).expect("text").display()),
        Some("change") => change_one_percent(&arg(1), false).expect("change"),
        Some("unchange") => change_one_percent(&arg(1), true).expect("unchange"),
        Some("backup") => backup(&arg(1), &arg(2)),
        Some("restore") => restore(&arg(1), &arg(2)),
        Some("ui-store") => ui_store(
            args.get(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage()),
            &arg(2),
        ),
        Some("index") => index(
            args.get(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| usage()),
            &arg(2),
        ),
        Some("scale-store") => scale_store(
            &arg(1),
            number(&args, 2),
            number(&args, 3),
            number(&args, 4),
        ),
        Some("scale-backup") => scale_backup(&arg(1), number(&args, 2), number(&args, 3)),
        Some("scale-forget") => scale_forget(&arg(1)),
        _ => usage(),
    }
}

fn number(args: &[String], i: usize) -> u64 {
    args.get(i)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| usage())
}

/// The scale benchmark's store: `generations` backups of a synthetic
/// source of `files` files (each generation all new blobs), then one-file
/// backups until the store holds `snapshots` snapshots, as years of
/// frequent small backups leave it. Every object goes through the engine.
fn scale_store(store_dir: &Path, files: u64, generations: u64, snapshots: u64) {
    let store = open(store_dir);
    let started = Instant::now();
    for generation in 0..generations {
        let t = Instant::now();
        let source = SyntheticSource { files, generation };
        let options = BackupOptions {
            tags: vec![format!("gen{generation}")],
            ..Default::default()
        };
        let out = kast_engine::backup(&store, &source, &options).expect("backup");
        println!(
            "generation {generation}: {} files, {} blobs added in {:.1} s; peak RSS {} MiB",
            out.snapshot.summary.files,
            out.snapshot.summary.blobs_added,
            t.elapsed().as_secs_f64(),
            memory_kib().0 / 1024
        );
    }
    let t = Instant::now();
    for small in 0..snapshots.saturating_sub(generations) {
        let source = SyntheticSource {
            files: 1,
            generation: 1_000_000 + small,
        };
        let options = BackupOptions {
            tags: vec!["small".into()],
            ..Default::default()
        };
        kast_engine::backup(&store, &source, &options).expect("backup");
        if (small + 1) % 1000 == 0 {
            println!(
                "{} one-file backups: {:.1} s; peak RSS {} MiB",
                small + 1,
                t.elapsed().as_secs_f64(),
                memory_kib().0 / 1024
            );
        }
    }
    println!(
        "store of {} blobs and {snapshots} snapshots made in {:.0} s",
        store.index().expect("index").len(),
        started.elapsed().as_secs_f64()
    );
}

/// One backup of generation `generation` (unchanged when it is the
/// latest), timed, with its peak memory.
fn scale_backup(store_dir: &Path, files: u64, generation: u64) {
    let store = open(store_dir);
    let started = Instant::now();
    let source = SyntheticSource { files, generation };
    let out = kast_engine::backup(&store, &source, &BackupOptions::default()).expect("backup");
    let s = &out.snapshot.summary;
    println!(
        "backup of {} files ({} read, {} unchanged): {:.2} s, peak RSS {} MiB",
        s.files,
        s.files_read,
        s.files_unchanged,
        started.elapsed().as_secs_f64(),
        memory_kib().0 / 1024
    );
}

/// Removes half the snapshots: the older half of the large generations
/// and every other one-file snapshot.
fn scale_forget(store_dir: &Path) {
    let store = open(store_dir);
    let list = kast_engine::browse::snapshots(&store).expect("snapshots");
    let generations = list
        .snapshots
        .iter()
        .filter(|(_, s)| s.tags.iter().any(|t| t.starts_with("gen")))
        .count();
    let mut small = 0;
    let doomed: Vec<Id> = list
        .snapshots
        .iter()
        .filter(|(_, s)| {
            s.tags.iter().any(|t| {
                t.strip_prefix("gen")
                    .and_then(|g| g.parse::<usize>().ok())
                    .is_some_and(|g| g < generations / 2)
                    || t == "small" && {
                        small += 1;
                        small % 2 == 0
                    }
            })
        })
        .map(|(id, _)| *id)
        .collect();
    let started = Instant::now();
    kast_engine::maintenance::remove_snapshots(&store, &doomed).expect("rm");
    println!(
        "removed {} of {} snapshots in {:.1} s",
        doomed.len(),
        list.snapshots.len(),
        started.elapsed().as_secs_f64()
    );
}

fn usage() -> ! {
    eprintln!(
        "usage: kast-bench tree | large | small | text | change DIR | unchange DIR | backup SRC STORE | restore STORE DEST | index N DIR | ui-store N STORE | scale-store STORE FILES GENERATIONS SNAPSHOTS | scale-backup STORE FILES GENERATION | scale-forget STORE"
    );
    std::process::exit(2)
}

fn open(store: &Path) -> Store {
    let storage = Arc::new(LocalStorage::new(store));
    let cache = Some(store.with_extension("cache"));
    match Store::open(storage.clone(), b"bench", cache.clone()) {
        Ok(s) => s,
        Err(kast_engine::Error::NoStore(_)) => {
            let mut options = CreateOptions {
                kdf: KdfParams::insecure_for_tests(),
                ..Default::default()
            };
            if let Some(mib) = std::env::var("KAST_BENCH_PACK_MIB")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
            {
                options.pack_target = mib << 20;
            }
            Store::create(storage, b"bench", &options, cache).expect("create store")
        }
        Err(e) => panic!("{e}"),
    }
}

fn report(what: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let (peak, _) = memory_kib();
    println!(
        "{what}: {:.2} s, {:.0} MB/s, peak RSS {} MiB",
        secs,
        bytes as f64 / secs / 1e6,
        peak / 1024
    );
}

/// A store for the web UI's first-page timings: `n` snapshots, the newest
/// holding a folder of 100,000 entries.
fn ui_store(n: usize, store_dir: &Path) {
    let store = open(store_dir);
    let work = store_dir.with_extension("src");
    let small = work.join("small");
    std::fs::create_dir_all(&small).expect("source folder");
    let started = Instant::now();
    for i in 0..n.saturating_sub(1) {
        std::fs::write(small.join("counter"), i.to_string()).expect("write");
        let options = BackupOptions {
            tags: vec![format!("t{}", i % 10)],
            host: Some(format!("host{}", i % 7)),
            ..Default::default()
        };
        let source = LocalSource::new(&small).expect("source");
        kast_engine::backup(&store, &source, &options).expect("backup");
    }
    let big = work.join("big").join("many");
    std::fs::create_dir_all(&big).expect("folder");
    for i in 0..100_000 {
        std::fs::write(big.join(format!("entry{i:06}")), i.to_string()).expect("write");
    }
    let source = LocalSource::new(work.join("big")).expect("source");
    kast_engine::backup(&store, &source, &BackupOptions::default()).expect("backup");
    println!(
        "{n} snapshots in {:.1} s; the newest holds many/ with 100000 entries",
        started.elapsed().as_secs_f64()
    );
}

fn backup(src: &Path, store: &Path) {
    let store = open(store);
    let started = Instant::now();
    let source = LocalSource::new(src).expect("source");
    let out = kast_engine::backup(&store, &source, &BackupOptions::default()).expect("backup");
    let s = &out.snapshot.summary;
    report("backup", s.logical_bytes, started);
    println!(
        "  {} files ({} read, {} unchanged), {} MB read, {} blobs / {} MB added",
        s.files,
        s.files_read,
        s.files_unchanged,
        s.bytes_read / 1_000_000,
        s.blobs_added,
        s.bytes_added / 1_000_000
    );
}

fn restore(store: &Path, dest: &Path) {
    let store = open(store);
    let (id, _) =
        kast_engine::browse::find(&store, "latest", &Default::default()).expect("snapshot");
    let started = Instant::now();
    let dest = LocalDestination::new(dest).expect("destination");
    let out =
        kast_engine::restore(&store, &id, b"", &dest, &RestoreOptions::default()).expect("restore");
    report("restore", out.bytes, started);
}

/// Builds a store whose states list `n` blobs (no pack data: the index only
/// needs states), then measures opening the index cold (building the cache)
/// and warm, and random lookups, with resident memory after each.
fn index(n: usize, dir: &Path) {
    let storage = Arc::new(LocalStorage::new(dir.join("store")));
    let options = CreateOptions {
        kdf: KdfParams::insecure_for_tests(),
        ..Default::default()
    };
    let cache = Some(dir.join("cache"));
    let store = Store::create(storage.clone(), b"bench", &options, cache.clone()).expect("create");
    let started = Instant::now();
    let per_state = 500_000;
    let per_pack = 16;
    let mut made = 0usize;
    while made < n {
        let count = per_state.min(n - made);
        let mut state = State::default();
        for p in 0..count.div_ceil(per_pack) {
            let pack = Id::of_object(format!("pack {made} {p}").as_bytes());
            let entries = (0..per_pack.min(count - p * per_pack))
                .map(|i| PackEntry {
                    id: Id::of_object(&((made + p * per_pack + i) as u64).to_le_bytes()),
                    kind: BlobKind::Data,
                    offset: (i * 1_100_000) as u32,
                    length: 1_048_616,
                    raw_length: 1_048_576,
                })
                .collect();
            state.packs.push((pack, entries));
        }
        let sealed = state.seal(store.keys()).expect("seal");
        storage
            .put(ObjectKind::State, &Id::of_object(&sealed).to_hex(), &sealed)
            .expect("put");
        made += count;
    }
    println!(
        "wrote {} states for {n} blobs in {:.1} s",
        n.div_ceil(per_state),
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let (base_peak, base_rss) = memory_kib();
    println!(
        "before opening: peak {} MiB, anonymous rss {} MiB",
        base_peak / 1024,
        base_rss / 1024
    );

    let store = Store::open(storage.clone(), b"bench", cache.clone()).expect("open");
    let t = Instant::now();
    let idx = store.index().expect("index");
    let (peak, rss) = memory_kib();
    println!(
        "cold open (build cache from states): {:.2} s, {} records in {} run(s); peak {} MiB (mapped runs included), anonymous rss {} MiB",
        t.elapsed().as_secs_f64(),
        idx.len(),
        idx.run_count(),
        peak / 1024,
        rss / 1024
    );
    drop(idx);

    let t = Instant::now();
    let idx = store.index().expect("index");
    let (_, rss_open) = memory_kib();
    println!(
        "warm open: {:.4} s, anonymous rss {} MiB",
        t.elapsed().as_secs_f64(),
        rss_open / 1024
    );
    let lookups = 1_000_000;
    let t = Instant::now();
    let mut found = 0;
    for i in 0..lookups {
        let key = (i as u64).wrapping_mul(2654435761) % (2 * n as u64);
        if idx.reusable(&Id::of_object(&key.to_le_bytes())) {
            found += 1;
        }
    }
    let (_, rss_after) = memory_kib();
    println!(
        "{lookups} random lookups ({found} hits): {:.0} ns each; anonymous rss {} MiB ({} bytes per blob)",
        t.elapsed().as_nanos() as f64 / lookups as f64,
        rss_after / 1024,
        (rss_after.saturating_sub(base_rss)) * 1024 / n as u64
    );
}
