//! Naming snapshots on the command line: `SNAPSHOT[:PATH]`, where SNAPSHOT
//! is `latest` or a unique id prefix, narrowed by --tag/--source/--host/
//! --before/--after.

use crate::cli::FilterArgs;
use crate::context::Context;
use anyhow::{Result, anyhow, bail};
use kast_engine::Store;
use kast_engine::browse::{self, SnapshotFilter};
use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;

/// Splits `SNAPSHOT[:PATH]`.
pub fn split(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

/// The engine filter for the flags.
pub fn filter(ctx: &Context, args: &FilterArgs) -> Result<SnapshotFilter> {
    Ok(SnapshotFilter {
        tags: args.tags.clone(),
        source: args
            .source
            .as_deref()
            .map(|s| source_name(ctx, s))
            .transpose()?,
        host: args.host.clone(),
        before_ns: args.before.as_deref().map(parse_time).transpose()?,
        after_ns: args.after.as_deref().map(parse_time).transpose()?,
    })
}

/// How a source location is recorded in snapshots: its URL as the plugin
/// host normalises it (a local path becomes `fs://` + its absolute path),
/// secrets redacted. A stream's (`stdin:NAME`) is taken as it is written.
pub fn source_name(ctx: &Context, text: &str) -> Result<String> {
    if text.starts_with("stdin:") {
        return Ok(text.to_string());
    }
    Ok(kast_plugins::Location::parse(&ctx.location(text)?)?.shown)
}

/// Finds the snapshot a spec names.
pub fn resolve(
    ctx: &Context,
    store: &Store,
    snapshot: &str,
    args: &FilterArgs,
) -> Result<(Id, Snapshot)> {
    resolve_at(ctx, store, snapshot, "", args)
}

/// [`resolve`] for `SNAPSHOT:PATH`. A stream's name says which source it
/// is: without `--source`, `latest:app.sql` means the latest of
/// `stdin:app.sql` when there is one, as a dump's user expects.
pub fn resolve_at(
    ctx: &Context,
    store: &Store,
    snapshot: &str,
    path: &str,
    args: &FilterArgs,
) -> Result<(Id, Snapshot)> {
    let mut filter = filter(ctx, args)?;
    let listed = browse::snapshots(store)?.snapshots;
    crate::seen::check(ctx, store, &listed);
    let name = path.trim_matches('/');
    if filter.source.is_none() && snapshot.starts_with("latest") && !name.is_empty() {
        let stream = kast_engine::stream::StreamSource::location_of(name);
        if listed.iter().any(|(_, s)| s.source == stream) {
            filter.source = Some(stream);
        }
    }
    Ok(browse::find_in(listed, snapshot, &filter)?)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC) to ns since the epoch.
pub fn parse_time(text: &str) -> Result<i64> {
    let bad =
        || anyhow!("cannot read the time {text:?}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)");
    let text = text.trim_end_matches('Z');
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() < 2 || t.len() > 3 {
        bail!(bad());
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    let clock_ok = (0..24).contains(&t[0]) && t[1..].iter().all(|v| (0..=60).contains(v));
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) || !clock_ok {
        bail!(bad());
    }
    let days = kast_engine::time::days_from_civil(y, m, day);
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t.get(2).copied().unwrap_or(0);
    // Nanoseconds in an i64 reach the year 2262.
    secs.checked_mul(1_000_000_000)
        .ok_or_else(|| anyhow!("the time {text:?} is out of range (before 2262 please)"))
}

/// Reads a share such as `5%` as 0.05 (more than 0, at most 100%).
pub fn parse_share(text: &str) -> Result<f64> {
    let percent: f64 = text
        .strip_suffix('%')
        .and_then(|n| n.trim().parse().ok())
        .filter(|p: &f64| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| anyhow!("{text:?} is not a share: use a percentage such as 5%"))?;
    Ok(percent / 100.0)
}

pub use kast_engine::time::format_time;

/// `n` and the noun for it: "1 file", "2 files", "0 entries".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes for people: 1.5 GiB.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ns = parse_time("2026-11-26T13:52:28Z").unwrap();
        assert_eq!(ns, 1_795_701_148 * 1_000_000_000);
        assert_eq!(format_time(ns), "2026-11-26 13:52:28");
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
        // Past what nanoseconds in an i64 hold, or not a clock time: errors, not wrapped values.
        assert!(parse_time("2263-01-01").is_err());
        assert!(parse_time("99999999999-01-01").is_err());
        assert!(parse_time("2026-01-01T25:00").is_err());
        assert!(parse_time("2262-01-01").is_ok());
    }

    #[test]
    fn specs_split() {
        assert_eq!(split("latest:/etc/hosts"), ("latest", "/etc/hosts"));
        assert_eq!(split("ab12"), ("ab12", ""));
    }
}
