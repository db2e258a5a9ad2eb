//! `kast report [--since 7d] [--json] [--prometheus FILE]`: what the jobs
//! did, from the activity logs of their stores: each job's last run and
//! last success, failures and growth in the window, and whether it is
//! stale (no success within twice its schedule's longest gap, or never).

use crate::context::Context;
use crate::jobs::{self, Job, timing};
use crate::spec::{format_bytes, format_time};
use anyhow::{Context as _, Result};
use kast_engine::activity::{self, Activity, Outcome};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// One job's summary, as run on one host (machines sharing a store and a
/// job name are told apart).
struct Summary {
    job: String,
    host: String,
    store: String,
    sources: Vec<String>,
    /// From the config file; `None` for runs of jobs no longer configured.
    interval_s: Option<u64>,
    runs: u64,
    successes: u64,
    partials: u64,
    failures: u64,
    bytes_added: u64,
    last_run: Option<Activity>,
    /// Partial runs count: their snapshot was made.
    last_success_ns: Option<i64>,
    stale: bool,
    /// Why the job's store could not be read, when it could not.
    store_error: Option<String>,
}

impl Summary {
    /// A job with no runs counted yet.
    fn new(
        job: &str,
        host: &str,
        store: &str,
        sources: &[String],
        interval_s: Option<u64>,
    ) -> Summary {
        Summary {
            job: job.to_string(),
            host: host.to_string(),
            store: kast_plugins::location::redact(store),
            sources: sources.to_vec(),
            interval_s,
            runs: 0,
            successes: 0,
            partials: 0,
            failures: 0,
            bytes_added: 0,
            last_run: None,
            last_success_ns: None,
            stale: false,
            store_error: None,
        }
    }

    fn json(&self) -> Value {
        json!({
            "job": self.job, "host": self.host, "store": self.store, "sources": self.sources,
            "expected_interval_s": self.interval_s,
            "runs": self.runs, "successes": self.successes, "partials": self.partials,
            "failures": self.failures, "bytes_added": self.bytes_added,
            "last_success_ns": self.last_success_ns,
            "last_success": self.last_success_ns.map(format_time),
            "last_run": self.last_run, "stale": self.stale, "store_error": self.store_error,
        })
    }
}

/// `kast report`'s exit status when `--fail-stale` finds a stale job.
pub const EXIT_STALE: i32 = 5;

/// Prints the report; the exit status is [`EXIT_STALE`] when `fail_stale`
/// and a job is stale, else 0.
pub fn run(ctx: &Context, since: &str, prometheus: Option<&Path>, fail_stale: bool) -> Result<i32> {
    let window = timing::parse_duration(since)?;
    let now_ns = kast_engine::time::now_ns();
    let from_ns = now_ns.saturating_sub(window.as_nanos() as i64);
    let configured = jobs::load(&ctx.dirs)?;
    let here = kast_engine::host_name();
    let mut summaries = Vec::new();
    for (store, jobs_here) in stores(ctx, &configured)? {
        let first = jobs_here
            .values()
            .next()
            .and_then(|j| j.passphrase_file.clone());
        // One unreachable store must not hide the others' jobs; its own
        // jobs are reported as such (and stale: nobody can vouch for them).
        let (history, unreadable) = match runs_in(ctx, &store, first) {
            Ok(history) => (history, None),
            Err(e) if !jobs_here.is_empty() => {
                let why = format!("{e:#}");
                ctx.warn(&why);
                (Vec::new(), Some(why))
            }
            Err(e) => return Err(e),
        };
        let mut found = summarise(&store, &here, &jobs_here, &history, from_ns, now_ns)?;
        for s in &mut found {
            s.stale |= unreadable.is_some();
            s.store_error.clone_from(&unreadable);
        }
        summaries.extend(found);
    }
    if let Some(path) = prometheus {
        write_prometheus(path, &summaries)?;
    }
    let status = if fail_stale && summaries.iter().any(|s| s.stale) {
        EXIT_STALE
    } else {
        0
    };
    if ctx.json {
        ctx.print_json(&json!({
            "since_ns": from_ns, "since": format_time(from_ns),
            "jobs": summaries.iter().map(Summary::json).collect::<Vec<_>>(),
        }))?;
        return Ok(status);
    }
    if ctx.quiet {
        return Ok(status);
    }
    if summaries.is_empty() {
        println!("no job has run yet (`kast job run NAME`, `kast agent`)");
    }
    for s in &summaries {
        let last_success = s.last_success_ns.map_or("never".to_string(), format_time);
        let elsewhere = if s.host == here {
            String::new()
        } else {
            format!(" (on {})", s.host)
        };
        println!(
            "{}{elsewhere}{}: {} since {} ({} failed, {} partial), last success {}, {} added",
            s.job,
            if s.stale { " [STALE]" } else { "" },
            crate::spec::count(s.runs, "run", "runs"),
            format_time(from_ns),
            s.failures,
            s.partials,
            last_success,
            format_bytes(s.bytes_added)
        );
        println!("  {} → {}", s.sources.join(", "), s.store);
        if let Some(why) = &s.store_error {
            println!("  the store cannot be read: {why}");
        }
        if let Some(last) = &s.last_run {
            println!("  last run {}", super::job::run_line(last));
        }
    }
    Ok(status)
}

/// The stores to read, each with the configured jobs that use it: the one
/// named with `--store`, else every configured job's, else the default.
fn stores(
    ctx: &Context,
    configured: &BTreeMap<String, Job>,
) -> Result<BTreeMap<String, BTreeMap<String, Job>>> {
    let (named, default) = ctx.store_location()?;
    // `/srv/s` and `fs:///srv/s` name one store.
    let same = |location: &str| crate::spec::source_name(ctx, location);
    let named_url = same(&named)?;
    let mut out: BTreeMap<String, BTreeMap<String, Job>> = BTreeMap::new();
    for (name, job) in configured {
        let location = ctx.location(&job.store)?;
        if default || same(&location)? == named_url {
            out.entry(location)
                .or_default()
                .insert(name.clone(), job.clone());
        }
    }
    if out.is_empty() {
        out.insert(named, BTreeMap::new());
    }
    Ok(out)
}

/// Every run recorded in the store at `location`, oldest first. Records
/// that cannot be read are warned about (naming them) and left out, so one
/// damaged record does not hide the rest.
pub fn runs_in(
    ctx: &Context,
    location: &str,
    passphrase_file: Option<std::path::PathBuf>,
) -> Result<Vec<Activity>> {
    let shown = kast_plugins::location::redact(location);
    let history = ctx
        .for_store(location, passphrase_file)
        .open_store()
        .and_then(|store| Ok(activity::history(&store)?))
        .with_context(|| format!("cannot read the activity log of {shown}"))?;
    for (id, e) in &history.unreadable {
        ctx.warn(&format!(
            "activity record {} in {shown} cannot be read ({e}); `kast check` names its pack",
            id.short()
        ));
    }
    Ok(history.runs)
}

/// Jobs in this machine's config file run on `here`; runs from elsewhere
/// are reported under their own host, without a schedule to be late for.
fn summarise(
    store: &str,
    here: &str,
    configured: &BTreeMap<String, Job>,
    history: &[Activity],
    from_ns: i64,
    now_ns: i64,
) -> Result<Vec<Summary>> {
    let mut by_job: BTreeMap<(String, String), Summary> = BTreeMap::new();
    for (name, job) in configured {
        let interval = job.expected_interval()?.map(|d| d.as_secs());
        by_job.insert(
            (name.clone(), here.to_string()),
            Summary::new(name, here, store, &job.sources(), interval),
        );
    }
    for a in history {
        let s = by_job
            .entry((a.job.clone(), a.host.clone()))
            .or_insert_with(|| Summary::new(&a.job, &a.host, store, &a.sources, None));
        if a.outcome != Outcome::Failure {
            s.last_success_ns = Some(a.started_ns);
        }
        if a.started_ns >= from_ns {
            s.runs += 1;
            s.bytes_added += a.bytes_added;
            match a.outcome {
                Outcome::Success => s.successes += 1,
                Outcome::Partial => s.partials += 1,
                Outcome::Failure => s.failures += 1,
            }
        }
        s.last_run = Some(a.clone());
    }
    for s in by_job.values_mut() {
        // Late: no success within twice the longest gap the schedule allows.
        s.stale = s.interval_s.is_some_and(|interval| {
            s.last_success_ns
                .is_none_or(|t| now_ns - t > 2 * interval as i64 * 1_000_000_000)
        });
    }
    Ok(by_job.into_values().collect())
}

/// Writes the figures for node_exporter's textfile collector, replacing
/// the file at once (the collector never reads half a file).
fn write_prometheus(path: &Path, summaries: &[Summary]) -> Result<()> {
    type Metric = (&'static str, &'static str, fn(&Summary) -> Option<f64>);
    let metrics: [Metric; 10] = [
        (
            "kast_job_last_success_timestamp_seconds",
            "When the job last succeeded (partial runs included).",
            |s| s.last_success_ns.map(|t| t as f64 / 1e9),
        ),
        (
            "kast_job_last_run_timestamp_seconds",
            "When the job last ran.",
            |s| s.last_run.as_ref().map(|a| a.started_ns as f64 / 1e9),
        ),
        (
            "kast_job_last_run_success",
            "1 if the last run made its snapshots, else 0.",
            |s| {
                s.last_run
                    .as_ref()
                    .map(|a| f64::from(u8::from(a.outcome != Outcome::Failure)))
            },
        ),
        (
            "kast_job_last_duration_seconds",
            "How long the last run took.",
            |s| s.last_run.as_ref().map(|a| a.duration_ms as f64 / 1e3),
        ),
        (
            "kast_job_last_bytes_read",
            "Bytes the last run read from its sources.",
            |s| s.last_run.as_ref().map(|a| a.bytes_read as f64),
        ),
        (
            "kast_job_last_bytes_added",
            "Bytes the last run added to the store.",
            |s| s.last_run.as_ref().map(|a| a.bytes_added as f64),
        ),
        (
            "kast_job_last_errors",
            "Entries the last run could not read.",
            |s| s.last_run.as_ref().map(|a| a.errors as f64),
        ),
        ("kast_job_runs", "Runs in the report's window.", |s| {
            Some(s.runs as f64)
        }),
        (
            "kast_job_failures",
            "Failed runs in the report's window.",
            |s| Some(s.failures as f64),
        ),
        (
            "kast_job_stale",
            "1 if the job has not succeeded within twice its schedule.",
            |s| Some(f64::from(u8::from(s.stale))),
        ),
    ];
    let mut text = String::new();
    for (name, help, value) in metrics {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for s in summaries {
            if let Some(v) = value(s) {
                text.push_str(&format!(
                    "{name}{{job=\"{}\",host=\"{}\",store=\"{}\"}} {v}\n",
                    label(&s.job),
                    label(&s.host),
                    label(&s.store)
                ));
            }
        }
    }
    let partial = path.with_extension("prom.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
