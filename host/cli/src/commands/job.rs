//! `kast job list|show|run`: the jobs of the config file (docs/jobs.md).

use crate::cli::JobCommand;
use crate::context::Context;
use crate::jobs::{self, Job, run::Ran};
use crate::spec::{count, format_bytes, format_time};
use anyhow::Result;
use kast_engine::activity::{Activity, Outcome};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Runs shown by `kast job show`.
const SHOWN_RUNS: usize = 5;

pub fn run(ctx: &Context, command: &JobCommand, cancel: Arc<AtomicBool>) -> Result<i32> {
    match command {
        JobCommand::List => list(ctx)?,
        JobCommand::Show { name } => show(ctx, name)?,
        JobCommand::Run { name } => {
            let job = jobs::find(&ctx.dirs, name)?;
            let Some(_held) = jobs::run::JobLock::try_acquire(&ctx.dirs, name)? else {
                anyhow::bail!(
                    "job {name} is running already (by `kast agent` or another `kast job run`)"
                );
            };
            let ran = jobs::run::run(ctx, name, &job, cancel);
            report_run(ctx, &ran)?;
            return Ok(ran.exit_code());
        }
    }
    Ok(0)
}

/// When a job runs, in words.
fn schedule(job: &Job) -> String {
    match (&job.every, &job.calendar) {
        (Some(every), _) => format!("every {every}"),
        (_, Some(calendar)) => format!("at {calendar}"),
        _ => "when run".to_string(),
    }
}

fn list(ctx: &Context) -> Result<()> {
    let all = jobs::load(&ctx.dirs)?;
    if ctx.json {
        return ctx.print_json(&json!(
            all.iter()
                .map(|(name, job)| {
                    let mut value = json!(job);
                    value["name"] = json!(name);
                    value
                })
                .collect::<Vec<_>>()
        ));
    }
    if all.is_empty() && !ctx.quiet {
        println!(
            "no jobs in {}; docs/jobs.md shows how to write one",
            ctx.dirs.config_file.display()
        );
    }
    for (name, job) in &all {
        println!(
            "{name}: {} → {} ({})",
            job.sources().join(", "),
            job.store,
            schedule(job)
        );
    }
    Ok(())
}

fn show(ctx: &Context, name: &str) -> Result<()> {
    let job = jobs::find(&ctx.dirs, name)?;
    let runs = super::report::runs_in(ctx, &job.store, job.passphrase_file.clone());
    let (runs, unreadable) = match runs {
        Ok(all) => (
            all.into_iter()
                .filter(|a| a.job == name)
                .rev()
                .take(SHOWN_RUNS)
                .collect::<Vec<_>>(),
            None,
        ),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    if ctx.json {
        let mut value = json!(job);
        value["name"] = json!(name);
        value["last_runs"] = json!(runs);
        if let Some(why) = &unreadable {
            value["last_runs_unreadable"] = json!(why);
        }
        return ctx.print_json(&value);
    }
    let as_in_file = json!({ "jobs": { name: job } });
    print!("{}", toml::to_string(&as_in_file)?);
    match unreadable {
        Some(why) => ctx.warn(&format!("cannot read the job's runs: {why}")),
        None if runs.is_empty() => println!("\nnot run yet"),
        None => {
            println!("\nlast runs, newest first:");
            for a in &runs {
                println!("  {}", run_line(a));
            }
        }
    }
    Ok(())
}

/// One run in one line, for people.
pub fn run_line(a: &Activity) -> String {
    let when = format_time(a.started_ns);
    let secs = a.duration_ms as f64 / 1000.0;
    match a.outcome {
        Outcome::Failure => format!(
            "{when}  failure after {secs:.1} s: {}",
            a.reason.as_deref().unwrap_or("no reason given")
        ),
        outcome => format!(
            "{when}  {}: {} new, {} changed, {} unchanged files, {} read, {} added, {secs:.1} s{}{}{}",
            if outcome == Outcome::Success {
                "success"
            } else {
                "partial"
            },
            a.files_new,
            a.files_changed,
            a.files_unchanged,
            format_bytes(a.bytes_read),
            format_bytes(a.bytes_added),
            if a.errors > 0 {
                format!(", {} not read", count(a.errors, "entry", "entries"))
            } else {
                String::new()
            },
            match a.removed.len() {
                0 => String::new(),
                n => format!(
                    ", retention removed {}",
                    count(n as u64, "snapshot", "snapshots")
                ),
            },
            match &a.check {
                None => String::new(),
                Some(c) if c.clean => format!(", check ({}) clean", c.kind),
                Some(c) => format!(
                    ", check ({}) found {} damaged",
                    c.kind,
                    count(c.damaged, "object", "objects")
                ),
            }
        ),
    }
}

fn report_run(ctx: &Context, ran: &Ran) -> Result<()> {
    for w in &ran.warnings {
        ctx.warn(w);
    }
    if let Some(why) = &ran.not_recorded {
        ctx.warn(why);
    }
    if ctx.json {
        return ctx.print_json(&jobs::notify::message(
            &ran.activity,
            ran.not_recorded.as_deref(),
        ));
    }
    if ran.activity.outcome == Outcome::Failure {
        eprintln!(
            "error: job {}: {}",
            ran.activity.job,
            run_line(&ran.activity)
        );
    } else if !ctx.quiet {
        println!("job {}: {}", ran.activity.job, run_line(&ran.activity));
    }
    if !ctx.quiet && !ran.activity.removed.is_empty() {
        // Every id, so what went is never a guess.
        println!("  removed by retention: {}", ran.activity.removed.join(" "));
    }
    if let Some(first) = ran
        .activity
        .check
        .as_ref()
        .and_then(|c| c.first_damage.as_ref())
    {
        eprintln!("  check: {first}");
    }
    Ok(())
}
