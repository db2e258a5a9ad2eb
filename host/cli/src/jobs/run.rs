//! One run of a job: `pre` hook, backup of each location, retention,
//! check, sync, then the record in the store's activity log, the `post`
//! hook and the notifications. Whatever fails, the run ends with a record
//! that says so (when the store can be reached at all) and the hooks and
//! notifications still hear about it.

use super::shell::Shell;
use super::{CheckKind, Job, KeepScope, NotifyOn};
use crate::context::{Context, read_secret};
use anyhow::{Context as _, Result, anyhow, bail};
use kast_engine::activity::{self, Activity, Outcome};
use kast_engine::crypto::Id;
use kast_engine::retention::{self, Policy};
use kast_engine::{BackupOptions, Store, browse, maintenance};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Holds a job for one run: an exclusive `flock` on a file in the data
/// directory, so two agents, or an agent and `kast job run`, never run one
/// job at once. Released when dropped (or when the process dies).
pub struct JobLock {
    _file: std::fs::File,
}

impl JobLock {
    /// The lock, or `None` when another process holds the job.
    pub fn try_acquire(dirs: &crate::context::Dirs, name: &str) -> Result<Option<JobLock>> {
        use std::os::fd::AsRawFd;
        let dir = dirs.data.join("jobs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        Ok(taken.then_some(JobLock { _file: file }))
    }
}

/// When job `name` last started on this machine (seconds since the epoch),
/// kept beside its lock, so that `kast agent` can catch up on a calendar
/// run it missed while it was down, as systemd's `Persistent=true` does.
pub fn last_started(dirs: &crate::context::Dirs, name: &str) -> Option<i64> {
    let text = std::fs::read_to_string(stamp_path(dirs, name)).ok()?;
    text.trim().parse().ok()
}

fn note_started(dirs: &crate::context::Dirs, name: &str, seconds: i64) -> Result<()> {
    let path = stamp_path(dirs, name);
    std::fs::create_dir_all(dirs.data.join("jobs"))
        .and_then(|()| std::fs::write(&path, format!("{seconds}\n")))
        .with_context(|| format!("cannot note the run's start in {}", path.display()))
}

fn stamp_path(dirs: &crate::context::Dirs, name: &str) -> std::path::PathBuf {
    dirs.data.join("jobs").join(format!("{name}.last"))
}

/// Per-file errors kept in a record, so one bad disk does not make it large.
const ERROR_SAMPLES: usize = 10;

/// How a run went, and what became of its record.
pub struct Ran {
    pub activity: Activity,
    /// `None` when the record is in the store; else why it is not.
    pub not_recorded: Option<String>,
    /// Hooks and notifications that failed (the run's outcome stands).
    pub warnings: Vec<String>,
}

impl Ran {
    /// `kast job run`'s exit code: 0 done, 4 done with unreadable entries,
    /// 1 failed.
    pub fn exit_code(&self) -> i32 {
        match self.activity.outcome {
            Outcome::Success => 0,
            Outcome::Partial => 4,
            Outcome::Failure => 1,
        }
    }
}

/// Runs the job `name`.
pub fn run(ctx: &Context, name: &str, job: &Job, cancel: Arc<AtomicBool>) -> Ran {
    let clock = Instant::now();
    let started_ns = kast_engine::time::now_ns();
    let mut warnings = Vec::new();
    if let Err(e) = note_started(&ctx.dirs, name, started_ns / 1_000_000_000) {
        warnings.push(reason(&e));
    }
    let job_ctx = ctx.for_store(&job.store, job.passphrase_file.clone());
    let mut activity = Activity {
        job: name.to_string(),
        sources: job
            .sources()
            .iter()
            .map(|l| crate::spec::source_name(&job_ctx, l).unwrap_or_else(|_| l.clone()))
            .collect(),
        host: kast_engine::host_name(),
        started_ns,
        duration_ms: 0,
        outcome: Outcome::Success,
        reason: None,
        snapshots: Vec::new(),
        bytes_read: 0,
        bytes_added: 0,
        files_new: 0,
        files_changed: 0,
        files_unchanged: 0,
        errors: 0,
        error_samples: Vec::new(),
        removed: Vec::new(),
        check: None,
    };
    let limit = job.hook_limit().unwrap_or(super::HOOK_TIMEOUT);
    let pre = match &job.pre {
        Some(command) => Shell {
            what: "pre hook",
            command,
            env: &[
                ("KAST_JOB", name.to_string()),
                ("KAST_STORE", job.store.clone()),
            ],
            input: None,
            limit,
            cancel: Some(&cancel),
        }
        .run(),
        None => Ok(()),
    };
    // Opened even when the `pre` hook failed: the failure is recorded there.
    let opened = job_ctx.open_store();
    let result = match (pre, &opened) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(anyhow!("{}", reason(e))),
        (Ok(()), Ok(store)) => steps(&job_ctx, name, job, store, cancel, &mut activity),
    };
    activity.duration_ms = clock.elapsed().as_millis() as u64;
    match result {
        // Steps skipped (a put-only key) leave a reason on a run that
        // otherwise went well.
        Ok(()) if activity.errors > 0 || activity.reason.is_some() => {
            activity.outcome = Outcome::Partial
        }
        Ok(()) => {}
        Err(e) => {
            activity.outcome = Outcome::Failure;
            activity.reason = Some(reason(&e));
        }
    }
    // A store that could not be opened cannot hold the record.
    let not_recorded = match &opened {
        Ok(store) => activity::record(store, &activity)
            .err()
            .map(|e| format!("cannot record the run in {}: {e}", job.store)),
        Err(e) => Some(format!("cannot record the run: {}", reason(e))),
    };
    if let Some(post) = &job.post {
        let told = Shell {
            what: "post hook",
            command: post,
            env: &environment(&activity, &not_recorded),
            input: None,
            limit,
            cancel: None,
        }
        .run();
        if let Err(e) = told {
            warnings.push(reason(&e));
        }
    }
    if let Some(notify) = &job.notify
        && (notify.on == NotifyOn::Always || activity.outcome != Outcome::Success)
    {
        let message = super::notify::message(&activity, not_recorded.as_deref());
        warnings.extend(super::notify::send(notify, &message, limit));
    }
    Ran {
        activity,
        not_recorded,
        warnings,
    }
}

/// An error and its causes on one line, for records and hooks.
fn reason(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// The work after the `pre` hook; fills `activity` as it goes.
fn steps(
    ctx: &Context,
    name: &str,
    job: &Job,
    store: &Store,
    cancel: Arc<AtomicBool>,
    activity: &mut Activity,
) -> Result<()> {
    let exclude = crate::commands::backup::excludes(&job.exclude, &[])?;
    let mut made: Vec<Id> = Vec::new();
    let options = |what: &str| BackupOptions {
        tags: job.tags.clone(),
        job: name.to_string(),
        exclude: exclude.clone(),
        progress: ctx.progress(&format!("{name}: backing up {what}"), None),
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let mut record = |outcome: kast_engine::BackupOutcome| {
        let s = &outcome.snapshot.summary;
        activity.snapshots.push(outcome.id.to_hex());
        activity.bytes_read += s.bytes_read;
        activity.bytes_added += s.bytes_added;
        activity.files_new += outcome.files_new;
        activity.files_changed += s.files_read - outcome.files_new;
        activity.files_unchanged += s.files_unchanged;
        activity.errors += outcome.warnings.len() as u64;
        let room = ERROR_SAMPLES.saturating_sub(activity.error_samples.len());
        activity
            .error_samples
            .extend(outcome.warnings.iter().take(room).cloned());
        made.push(outcome.id);
    };
    for location in &job.backup {
        let shown = kast_plugins::location::redact(location);
        let outcome = crate::commands::backup::back_up(ctx, store, location, &options(&shown))?;
        record(outcome);
    }
    for (stream, argv) in &job.commands {
        let output = crate::commands::stream::CommandOutput::start(argv, cancel.clone())?;
        let shown = kast_engine::stream::StreamSource::location_of(stream);
        let outcome = crate::commands::backup::back_up_stream(
            ctx,
            store,
            stream,
            Box::new(output),
            &options(&shown),
        )?;
        record(outcome);
    }
    if store.is_put_only() {
        // Retention, check and sync read the store; a put-only key backs
        // up and leaves them to a machine with a full key. Said, not hidden:
        // the run is partial and its reason names what was skipped.
        let skipped: Vec<&str> = [
            job.keep.as_ref().map(|_| "retention"),
            job.check.as_ref().map(|_| "check"),
            job.sync.as_ref().map(|_| "sync"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !skipped.is_empty() {
            activity.reason = Some(format!(
                "{} skipped: the store was opened with a put-only key, which can only add backups; run them where a full key is",
                skipped.join(", ")
            ));
        }
        return Ok(());
    }
    if let Some(keep) = &job.keep {
        let scope = (job.keep_scope == KeepScope::Job).then_some(name);
        let removed = apply_retention(store, keep, scope, &made)?;
        crate::seen::forget(ctx, store, &removed);
        activity.removed = removed.iter().map(Id::to_hex).collect();
    }
    if let Some(kind) = job.check_kind()? {
        let options = kast_engine::check::CheckOptions {
            fast: kind == CheckKind::Fast,
            pack_share: match kind {
                CheckKind::Sample(share) => share,
                _ => 1.0,
            },
            progress: ctx.progress(&format!("{name}: checking"), None),
            ..Default::default()
        };
        let report = kast_engine::check::check(store, &options).context("check failed")?;
        activity.check = Some(activity::CheckResult {
            kind: job.check.clone().unwrap_or_default(),
            clean: report.is_clean(),
            snapshots: report.snapshots,
            packs: report.packs,
            packs_read: report.packs_read,
            bytes: report.bytes,
            damaged: report.damage.len() as u64,
            first_damage: report
                .damage
                .first()
                .map(|d| format!("{}: {}", d.object, d.problem)),
        });
        if let Some(d) = report.damage.first() {
            bail!(
                "check found damage in {} objects, first {}: {}",
                report.damage.len(),
                d.object,
                d.problem
            );
        }
    }
    if let Some(to) = &job.sync {
        let location = ctx.location(to)?;
        let passphrase = match &job.sync_passphrase_file {
            Some(file) => Some(read_secret(Some(file), "", "sync passphrase", false)?),
            None => std::env::var("KAST_TO_PASSPHRASE")
                .ok()
                .map(String::into_bytes),
        };
        let to = kast_plugins::location::redact(to);
        let target = ctx
            .open_store_at(&location, passphrase.as_deref())
            .with_context(|| format!("cannot open the sync target {to}"))?;
        kast_engine::sync::sync(store, &target, &made, ctx.progress("syncing", None))
            .with_context(|| format!("sync to {to} failed"))?;
    }
    Ok(())
}

/// Keeps what the policy keeps among the snapshots of each source this run
/// backed up, taken on this host, and made by job `only_job` when given;
/// removes the rest (space comes back at the next `kast maintenance`).
fn apply_retention(
    store: &Store,
    keep: &super::Keep,
    only_job: Option<&str>,
    made: &[Id],
) -> Result<Vec<Id>> {
    let policy = Policy {
        last: keep.last,
        hourly: keep.hourly,
        daily: keep.daily,
        weekly: keep.weekly,
        monthly: keep.monthly,
        yearly: keep.yearly,
    };
    let all: Vec<_> = browse::snapshots(store)?
        .snapshots
        .into_iter()
        .filter(|(_, s)| only_job.is_none_or(|job| s.job == job))
        .collect();
    let remove = retention::plan(&policy, &retention::groups_of(made, &all)).remove;
    if !remove.is_empty() {
        maintenance::remove_snapshots(store, &remove).context("retention failed")?;
    }
    Ok(remove)
}

/// What a `post` hook is told, in `KAST_*` variables.
fn environment(a: &Activity, not_recorded: &Option<String>) -> Vec<(&'static str, String)> {
    let outcome = match a.outcome {
        Outcome::Success => "success",
        Outcome::Partial => "partial",
        Outcome::Failure => "failure",
    };
    vec![
        ("KAST_JOB", a.job.clone()),
        ("KAST_OUTCOME", outcome.to_string()),
        ("KAST_REASON", a.reason.clone().unwrap_or_default()),
        ("KAST_SNAPSHOTS", a.snapshots.join(" ")),
        ("KAST_DURATION_MS", a.duration_ms.to_string()),
        ("KAST_BYTES_READ", a.bytes_read.to_string()),
        ("KAST_BYTES_ADDED", a.bytes_added.to_string()),
        ("KAST_FILES_NEW", a.files_new.to_string()),
        ("KAST_FILES_CHANGED", a.files_changed.to_string()),
        ("KAST_FILES_UNCHANGED", a.files_unchanged.to_string()),
        ("KAST_ERRORS", a.errors.to_string()),
        ("KAST_REMOVED", a.removed.join(" ")),
        (
            "KAST_CHECK",
            match &a.check {
                None => String::new(),
                Some(c) if c.clean => "clean".to_string(),
                Some(_) => "damaged".to_string(),
            },
        ),
        ("KAST_RECORDED", not_recorded.is_none().to_string()),
    ]
}
