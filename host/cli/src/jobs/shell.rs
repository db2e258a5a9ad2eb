//! The commands a job runs (`pre`, `post`, a notify command): `sh -c` in a
//! process group of its own, so one that hangs is stopped, with everything
//! it started, when its time is up or the job is interrupted. Without this
//! a stuck `pre` hook would hold `kast agent`, and every job behind it,
//! forever.

use anyhow::{Result, anyhow, bail};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a running command is looked at.
const POLL: Duration = Duration::from_millis(50);
/// How long a stopped command has between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// The process groups of commands running now, so that quitting at once
/// (a second Ctrl-C) takes them along instead of leaving them orphaned.
static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Kills every command a job is running now, with what each started; for a
/// process about to exit without waiting for them.
pub fn kill_running() {
    for group in RUNNING.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // SAFETY: signals a process group this process created.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// Keeps a running command's group in [`RUNNING`] while it lives (a
/// hook's here, a `--from-command` dump's in `commands::stream`).
pub(crate) struct Registered(libc::pid_t);

impl Registered {
    pub(crate) fn new(group: libc::pid_t) -> Registered {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(group);
        Registered(group)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&g| g != self.0);
    }
}

/// One command to run, and what bounds it.
pub struct Shell<'a> {
    /// Names it in errors: "pre hook", "notify command".
    pub what: &'a str,
    pub command: &'a str,
    pub env: &'a [(&'a str, String)],
    /// Written to its standard input (else it reads nothing).
    pub input: Option<&'a [u8]>,
    pub limit: Duration,
    /// Set when the job is interrupted; `None` for commands that must get
    /// to say so (the `post` hook, notifications).
    pub cancel: Option<&'a AtomicBool>,
}

impl Shell<'_> {
    /// Runs it to the end; an error says how it failed, was stopped, or
    /// could not start. What it prints goes to kast's standard error (the
    /// terminal, the journal, the agent's log), so `--json` output stays one
    /// JSON document.
    pub fn run(&self) -> Result<()> {
        let (what, command) = (self.what, self.command);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(if self.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(to_stderr()?)
            .process_group(0)
            .spawn()
            .map_err(|e| anyhow!("the {what} `{command}` could not start: {e}"))?;
        let _registered = Registered::new(child.id() as libc::pid_t);
        if let (Some(input), Some(mut stdin)) = (self.input, child.stdin.take()) {
            // A thread, so a command that never reads cannot block kast on a
            // full pipe; one that exits without reading is fine.
            let input = input.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let deadline = Instant::now() + self.limit;
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                let how = match status.code() {
                    Some(code) => format!("exited with status {code}"),
                    None => "was killed".to_string(),
                };
                bail!("the {what} `{command}` {how}");
            }
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                stop(&mut child);
                bail!("the {what} `{command}` was stopped: the job was interrupted");
            }
            if Instant::now() >= deadline {
                stop(&mut child);
                bail!(
                    "the {what} `{command}` ran past its limit of {} and was stopped \
                     (the job's `hook_timeout` sets the limit)",
                    super::timing::format_duration(self.limit)
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A child's standard output, sent to kast's standard error.
fn to_stderr() -> Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(std::io::stderr().as_fd().try_clone_to_owned()?.into())
}

/// Asks the command's whole process group to stop, then makes it.
fn stop(child: &mut Child) {
    let group = -(child.id() as libc::pid_t);
    // SAFETY: signals a process group this process created.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(POLL);
    }
    // Children it left behind go too.
    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}
