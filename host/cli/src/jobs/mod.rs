//! Jobs: named, unattended work in the config file's `[jobs.NAME]` tables
//! (docs/jobs.md): a backup, then optionally retention, a check and a sync,
//! between `pre` and `post` hooks; each run recorded in the store's
//! activity log and, when asked, told to a webhook or a command.

pub mod agent;
pub mod notify;
pub mod run;
pub mod shell;
pub mod timing;

use crate::context::Dirs;
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use timing::Calendar;

/// One `[jobs.NAME]` table. Unknown keys are errors: a misspelt `keep`
/// must not silently keep everything.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Any store location, or `@name`.
    pub store: String,
    /// Locations to back up, as for `kast backup`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<String>,
    /// Commands whose standard output is backed up, as `kast backup
    /// --from-command NAME -- CMD…`: NAME → the command and its arguments
    /// (no shell), each its own snapshot of `stdin:NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// gitignore-style patterns, as `--exclude`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Run this often (`1h`, `30m`, `1d`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Or at these times (`Mon..Fri 02:00`, `daily`…), local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Retention after each backup, as `kast rm --keep-*`, among the job's
    /// own snapshots of each source on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<Keep>,
    /// `"source"`: retention looks at every snapshot of the source on this
    /// host, hand-made or by other jobs, not only the job's own.
    #[serde(default, skip_serializing_if = "KeepScope::is_job")]
    pub keep_scope: KeepScope,
    /// `fast`, `full`, or a share of packs read in full (`5%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// A second store the new snapshots are copied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// The second store's passphrase file (else its local key file, else
    /// `KAST_TO_PASSPHRASE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_passphrase_file: Option<PathBuf>,
    /// The store's passphrase file (else its local key file, else
    /// `--passphrase-file` / `KAST_PASSPHRASE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
    /// Run first with `sh -c`; failing aborts the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// Run last with `sh -c`, the outcome in `KAST_*` variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    /// How long `pre`, `post` and a notify command may each run before
    /// they are stopped (default [`HOOK_TIMEOUT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
}

/// A hook's time limit when the job names none: long enough for a large
/// database dump, short enough that a hung one does not stop `kast agent`
/// for a day.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Which snapshots a job's retention chooses among.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepScope {
    /// Those the job made (its name is in each).
    #[default]
    Job,
    /// Every snapshot of the same source and host.
    Source,
}

impl KeepScope {
    fn is_job(&self) -> bool {
        *self == KeepScope::Job
    }
}

/// How many snapshots of each kind to keep (as `kast rm --keep-*`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hourly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub daily: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weekly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub monthly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub yearly: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Who hears about a run.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// POSTed the run's JSON (retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Run with `sh -c`, the run's JSON on standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A PEM file of the CA the webhook's certificate must chain to (a
    /// private CA), instead of the Mozilla roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub on: NotifyOn,
}

/// Which runs are told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Failures and partial runs (the default: silence means all is well).
    #[default]
    Failure,
    Always,
}

/// What `check` after a backup does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CheckKind {
    Fast,
    Full,
    /// This share of packs (0–1] read in full, the rest checked fast.
    Sample(f64),
}

impl Job {
    /// The schedule, if the job has one: how long between runs at most.
    pub fn expected_interval(&self) -> Result<Option<Duration>> {
        match (&self.every, &self.calendar) {
            (Some(every), None) => Ok(Some(timing::parse_duration(every)?)),
            (None, Some(calendar)) => Ok(Some(Calendar::parse(calendar)?.longest_gap())),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => bail!("give `every` or `calendar`, not both"),
        }
    }

    /// How long each of the job's commands may run.
    pub fn hook_limit(&self) -> Result<Duration> {
        match &self.hook_timeout {
            Some(text) => timing::parse_duration(text).context("hook_timeout"),
            None => Ok(HOOK_TIMEOUT),
        }
    }

    pub fn check_kind(&self) -> Result<Option<CheckKind>> {
        let Some(text) = &self.check else {
            return Ok(None);
        };
        Ok(Some(match text.as_str() {
            "fast" => CheckKind::Fast,
            "full" => CheckKind::Full,
            share => CheckKind::Sample(crate::spec::parse_share(share).with_context(|| {
                format!("check = {share:?}: use \"fast\", \"full\" or a share such as \"5%\"")
            })?),
        }))
    }

    /// What the job backs up, as snapshots record it: its locations, then
    /// `stdin:NAME` for each command.
    pub fn sources(&self) -> Vec<String> {
        self.backup
            .iter()
            .cloned()
            .chain(
                self.commands
                    .keys()
                    .map(|name| kast_engine::stream::StreamSource::location_of(name)),
            )
            .collect()
    }

    /// Everything a run would trip over, found when the file is read.
    fn validate(&self) -> Result<()> {
        if self.store.trim().is_empty() {
            bail!("`store` is empty");
        }
        if self.backup.is_empty() && self.commands.is_empty() {
            bail!("`backup` lists no location and `commands` no command");
        }
        for (name, argv) in &self.commands {
            if argv.is_empty() {
                bail!("`commands.{name}` names no command");
            }
            if !kast_engine::tree::is_valid_name(name.as_bytes()) {
                bail!("`commands.{name}`: {name:?} cannot be a file name");
            }
        }
        self.expected_interval()?;
        self.check_kind()?;
        self.hook_limit()?;
        if let Some(keep) = &self.keep {
            let all = [
                keep.last,
                keep.hourly,
                keep.daily,
                keep.weekly,
                keep.monthly,
                keep.yearly,
            ];
            if all.iter().all(|&n| n == 0) {
                bail!("`keep` keeps nothing, which would remove every snapshot");
            }
        }
        if let Some(notify) = &self.notify {
            if notify.webhook.is_none() && notify.command.is_none() {
                bail!("`notify` names neither a webhook nor a command");
            }
            if let Some(url) = &notify.webhook {
                notify::Endpoint::parse(url)?;
            }
        }
        Ok(())
    }
}

/// The part of the config file jobs live in; other tables are ignored.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    jobs: BTreeMap<String, toml::Value>,
}

/// Every job in the config file, checked; none when there is no file.
pub fn load(dirs: &Dirs) -> Result<BTreeMap<String, Job>> {
    let path = &dirs.config_file;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&text, path)
}

/// The jobs of a config file's text (`path` names it in errors).
pub fn parse(text: &str, path: &std::path::Path) -> Result<BTreeMap<String, Job>> {
    let file: File =
        toml::from_str(text).with_context(|| format!("cannot read {}", path.display()))?;
    let mut jobs = BTreeMap::new();
    for (name, table) in file.jobs {
        let job: Job = table
            .try_into()
            .with_context(|| format!("job {name:?} in {}", path.display()))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "job {name:?} in {}: a job name is letters, digits, '-' and '_'",
                path.display()
            );
        }
        job.validate()
            .with_context(|| format!("job {name:?} in {}", path.display()))?;
        jobs.insert(name, job);
    }
    Ok(jobs)
}

/// One job by name.
pub fn find(dirs: &Dirs, name: &str) -> Result<Job> {
    let mut jobs = load(dirs)?;
    jobs.remove(name).with_context(|| {
        format!(
            "no job {name:?} in {}; `kast job list` shows the jobs",
            dirs.config_file.display()
        )
    })
}
