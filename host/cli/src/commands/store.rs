//! Whole-store commands: create, info, check, rm, maintenance, unlock.

use crate::cli::{CreateArgs, FilterArgs, RmArgs};
use crate::context::Context;
use crate::spec::{self, count, format_bytes, format_time};
use anyhow::{Result, bail};
use kast_engine::check::{CheckOptions, CheckReport, Damage, check};
use kast_engine::keys::KdfParams;
use kast_engine::maintenance::{self, MaintenanceOptions};
use kast_engine::retention::{self, Policy};
use kast_engine::storage::{ObjectKind, Storage, StorageError};
use kast_engine::{CreateOptions, Store, browse};
use serde_json::json;

pub fn create(ctx: &Context, args: &CreateArgs) -> Result<()> {
    ctx.check_pack_size(args.pack_size_mib.saturating_mul(1 << 20))?;
    let (location, _) = ctx.store_location()?;
    let storage = ctx.host()?.new_storage(&location)?;
    let passphrase = ctx.passphrase(true)?;
    let options = CreateOptions {
        kdf: KdfParams {
            memory_kib: args.kdf_memory_mib.saturating_mul(1024),
            iterations: args.kdf_iterations,
            ..KdfParams::default()
        },
        pack_target: args.pack_size_mib.saturating_mul(1 << 20),
        compression: args.compression,
        ..Default::default()
    };
    let store = Store::create(storage, &passphrase, &options, Some(ctx.dirs.cache.clone()))?;
    let location = kast_plugins::location::redact(&location);
    if ctx.json {
        ctx.print_json(&json!({ "store_id": store.config().store_id, "location": location }))?;
    } else if !ctx.quiet {
        println!("created store {} at {location}", store.config().store_id);
    }
    ctx.note(crate::context::LOST_PASSPHRASE);
    Ok(())
}

pub fn info(ctx: &Context, spec: Option<&str>, filter: &FilterArgs) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("show what the store holds")?;
    if let Some(spec) = spec {
        let (id, snap) = spec::resolve(ctx, &store, spec::split(spec).0, filter)?;
        let s = &snap.summary;
        if ctx.json {
            return ctx.print_json(&crate::views::snapshot_detail(&id, &snap));
        }
        println!("snapshot  {}", id.to_hex());
        println!("time      {} UTC", format_time(snap.time_ns));
        println!("source    {} on {} ({})", snap.source, snap.host, snap.user);
        println!("tags      {}", snap.tags.join(", "));
        println!(
            "contents  {}, {}, {}, {}",
            count(s.files, "file", "files"),
            count(s.dirs, "dir", "dirs"),
            count(s.symlinks, "symlink", "symlinks"),
            format_bytes(s.logical_bytes)
        );
        println!(
            "backup    {} read, {} unchanged, {} added in {:.1} s",
            count(s.files_read, "file", "files"),
            s.files_unchanged,
            format_bytes(s.bytes_added),
            s.duration_ms as f64 / 1000.0
        );
        if s.errors > 0 {
            println!(
                "errors    {} could not be read (see `kast ls`)",
                count(s.errors, "entry", "entries")
            );
        }
        return Ok(());
    }
    let list = browse::snapshots(&store)?;
    let value = crate::views::store(&store, &list.snapshots, list.damaged.len())?;
    if ctx.json {
        return ctx.print_json(&value);
    }
    let number = |key: &str| value[key].as_u64().unwrap_or(0);
    println!(
        "store       {} ({})",
        store.location(),
        store.config().store_id
    );
    println!("snapshots   {}", list.snapshots.len());
    println!(
        "format      {}, compression {}",
        store.config().version,
        store.config().compression()
    );
    println!(
        "stored      {} in {}, {}",
        format_bytes(number("stored_bytes")),
        count(number("packs"), "pack", "packs"),
        count(number("blobs"), "blob", "blobs")
    );
    println!(
        "logical     {} across all snapshots ({:.1}x after dedup and compression)",
        format_bytes(number("logical_bytes")),
        value["dedup_ratio"].as_f64().unwrap_or(0.0)
    );
    if !list.damaged.is_empty() {
        println!(
            "damaged     {} snapshot headers cannot be read: run `kast check`",
            list.damaged.len()
        );
    }
    Ok(())
}

/// Exit code 3 when damage is found.
pub fn check_cmd(ctx: &Context, fast: bool, sample: Option<&str>, specs: &[String]) -> Result<i32> {
    let pack_share = sample.map(spec::parse_share).transpose()?.unwrap_or(1.0);
    let store = match ctx.open_store() {
        Ok(store) => store,
        Err(e) => match config_damage(ctx, &e)? {
            Some(damage) => {
                let report = CheckReport {
                    damage: vec![damage],
                    ..Default::default()
                };
                print_check_report(ctx, &report, fast)?;
                return Ok(3);
            }
            None => return Err(e),
        },
    };
    store.require_full("check the store (that reads it)")?;
    let mut ids = Vec::new();
    for s in specs {
        ids.push(spec::resolve(ctx, &store, spec::split(s).0, &FilterArgs::default())?.0);
    }
    let options = CheckOptions {
        fast,
        pack_share,
        snapshots: ids,
        progress: ctx.progress("checking", None),
        ..Default::default()
    };
    let report = check(&store, &options)?;
    print_check_report(ctx, &report, fast)?;
    Ok(if report.is_clean() { 0 } else { 3 })
}

/// Damage that keeps the store from opening at all: a config that does not
/// parse or verify, or one that is gone while the rest of the store is there.
fn config_damage(ctx: &Context, error: &anyhow::Error) -> Result<Option<Damage>> {
    let every = vec!["every snapshot (the store cannot be opened)".to_string()];
    for cause in error.chain() {
        if let Some(kast_engine::Error::Corrupt { what, why }) = cause.downcast_ref()
            && what == "config"
        {
            return Ok(Some(Damage {
                object: what.clone(),
                problem: why.clone(),
                affects: every,
            }));
        }
    }
    let (location, _) = ctx.store_location()?;
    let Ok(storage) = ctx.host()?.storage(&location) else {
        return Ok(None);
    };
    let config_missing = matches!(
        storage.get(ObjectKind::Config, "config"),
        Err(StorageError::NotFound { .. })
    );
    let has_objects = [ObjectKind::Snapshot, ObjectKind::Pack, ObjectKind::Key]
        .into_iter()
        .any(|kind| storage.list(kind).is_ok_and(|l| !l.is_empty()));
    Ok((config_missing && has_objects).then(|| Damage {
        object: "config".into(),
        problem: "missing, while the store's other objects are there".into(),
        affects: every,
    }))
}

fn print_check_report(ctx: &Context, report: &CheckReport, fast: bool) -> Result<()> {
    if ctx.json {
        ctx.print_json(&crate::views::check_report(report))?;
    } else if !ctx.quiet || !report.is_clean() {
        for d in &report.damage {
            println!("damaged: {}: {}", d.object, d.problem);
            for a in &d.affects {
                println!("  affects {a}");
            }
        }
        // What was read in full, said as such: a fast check reads none.
        let read = if fast {
            "--fast: pack data not read".to_string()
        } else if report.packs_read == report.packs {
            format!("all read, {}", format_bytes(report.bytes))
        } else {
            format!(
                "{} read in full, {}",
                report.packs_read,
                format_bytes(report.bytes)
            )
        };
        println!(
            "checked {}, {}, {} ({read}): {}",
            count(report.snapshots, "snapshot", "snapshots"),
            count(report.trees, "tree", "trees"),
            count(report.packs, "pack", "packs"),
            if report.is_clean() {
                "no damage".to_string()
            } else {
                count(
                    report.damage.len() as u64,
                    "damaged object",
                    "damaged objects",
                )
            }
        );
        if report.orphan_packs > 0 {
            println!(
                "{} belong to no snapshot index (an interrupted backup); `kast maintenance` removes them",
                count(report.orphan_packs, "pack", "packs")
            );
        }
    }
    Ok(())
}

pub fn rm(ctx: &Context, args: &RmArgs) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("remove snapshots")?;
    let policy = Policy {
        last: args.keep_last.unwrap_or(0),
        hourly: args.keep_hourly.unwrap_or(0),
        daily: args.keep_daily.unwrap_or(0),
        weekly: args.keep_weekly.unwrap_or(0),
        monthly: args.keep_monthly.unwrap_or(0),
        yearly: args.keep_yearly.unwrap_or(0),
    };
    let by_policy = [
        args.keep_last,
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
    ]
    .iter()
    .any(Option::is_some);
    let (remove, kept) = match (args.snapshots.is_empty(), by_policy) {
        (false, false) => {
            let mut ids = Vec::new();
            for s in &args.snapshots {
                ids.push(spec::resolve(ctx, &store, spec::split(s).0, &args.filter)?);
            }
            (ids, Vec::new())
        }
        (true, true) => {
            if policy.is_empty() {
                bail!(
                    "a policy that keeps nothing would remove every snapshot; give a --keep-* above 0"
                );
            }
            let filter = spec::filter(ctx, &args.filter)?;
            let all: Vec<_> = browse::snapshots(&store)?
                .snapshots
                .into_iter()
                .filter(|(_, s)| filter.matches(s))
                .collect();
            let plan = retention::plan(&policy, &all);
            let snapshot = |id: &kast_engine::crypto::Id| {
                all.iter()
                    .find(|(i, _)| i == id)
                    .expect("planned for it")
                    .clone()
            };
            let kept = plan
                .keep
                .iter()
                .map(|(id, reasons)| (snapshot(id), reasons.clone()))
                .collect();
            (plan.remove.iter().map(snapshot).collect(), kept)
        }
        (false, true) => bail!("give snapshots or a --keep-* policy, not both"),
        (true, false) => bail!("give the snapshots to remove, or a --keep-* policy"),
    };
    if !args.dry_run {
        let ids: Vec<_> = remove.iter().map(|(id, _)| *id).collect();
        maintenance::remove_snapshots(&store, &ids)?;
        crate::seen::forget(ctx, &store, &ids);
    }
    if ctx.json {
        return ctx.print_json(&json!({
            "dry_run": args.dry_run,
            "removed": remove.iter().map(|(id, _)| id.to_hex()).collect::<Vec<_>>(),
            "kept": kept.iter().map(|((id, _), reasons)| json!({"id": id.to_hex(), "reasons": reasons})).collect::<Vec<_>>(),
        }));
    }
    if !ctx.quiet {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for ((id, s), reasons) in &kept {
            println!(
                "keep   {} {} {} ({})",
                id.short(),
                format_time(s.time_ns),
                s.source,
                reasons.join(", ")
            );
        }
        for (id, s) in &remove {
            println!(
                "{verb} {} {} {}",
                id.short(),
                format_time(s.time_ns),
                s.source
            );
        }
        if !args.dry_run && !remove.is_empty() {
            println!("run `kast maintenance` to reclaim the space");
        }
    }
    Ok(())
}

pub fn maintenance_cmd(ctx: &Context, grace_seconds: u64) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("run maintenance")?;
    let options = MaintenanceOptions {
        grace: std::time::Duration::from_secs(grace_seconds),
        ..Default::default()
    };
    let r = maintenance::maintenance(&store, &options)?;
    for rejected in &r.rejected {
        ctx.warn(&format!(
            "not adopted, written by a put-only key: {rejected} (run check)"
        ));
    }
    if ctx.json {
        return ctx.print_json(&json!({
            "packs_deleted": r.packs_deleted, "packs_repacked": r.packs_repacked, "packs_written": r.packs_written,
            "blobs_dropped": r.blobs_dropped, "bytes_freed": r.bytes_freed, "states_before": r.states_before,
            "states_after": r.states_after, "orphans_marked": r.orphans_marked, "orphans_deleted": r.orphans_deleted,
            "packs_adopted": r.packs_adopted, "rejected": r.rejected,
        }));
    }
    if !ctx.quiet {
        println!(
            "freed {}: {} deleted, {} repacked into {}, {} dropped, index {} -> {} parts",
            format_bytes(r.bytes_freed),
            count(r.packs_deleted, "pack", "packs"),
            count(r.packs_repacked, "pack", "packs"),
            r.packs_written,
            count(r.blobs_dropped, "unused blob", "unused blobs"),
            r.states_before,
            r.states_after
        );
        if r.packs_adopted > 0 {
            println!(
                "{} written by put-only keys checked and adopted: full keys now reuse their data",
                count(r.packs_adopted, "pack", "packs")
            );
        }
        if r.orphans_marked > 0 {
            println!(
                "{} unindexed packs seen for the first time: deleted by a maintenance run after the grace period",
                r.orphans_marked
            );
        }
    }
    Ok(())
}

pub fn unlock(ctx: &Context, all: bool) -> Result<()> {
    let store = ctx.open_store()?;
    store.require_full("remove locks")?;
    let removed = store.break_locks(all)?;
    if ctx.json {
        return ctx.print_json(&json!({ "removed": removed }));
    }
    if !ctx.quiet {
        println!("removed {removed} lock(s)");
    }
    Ok(())
}
