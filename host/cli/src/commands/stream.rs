//! `kast backup --from-command NAME -- CMD ARGS…`: a command's standard
//! output read as a stream, without a shell and without a temporary file.
//! The command runs in a process group of its own, so that stopping the
//! backup (Ctrl-C, SIGTERM, a job interrupted) stops it and whatever it
//! started; its standard error passes through to kast's. A command that
//! fails or is killed fails the read, and so the backup (no snapshot).

use crate::jobs::shell;
use anyhow::{Result, anyhow};
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a stopped command has between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running command's standard output; the end of it is the command's
/// exit, and an unsuccessful exit is a read error.
pub struct CommandOutput {
    child: Child,
    stdout: ChildStdout,
    shown: String,
    finished: Arc<AtomicBool>,
    _registered: shell::Registered,
}

impl CommandOutput {
    /// Starts `argv` (its first word is the program, looked up in PATH).
    /// When `cancel` is set, the command's group is asked to stop, then
    /// made to.
    pub fn start(argv: &[String], cancel: Arc<AtomicBool>) -> Result<CommandOutput> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("--from-command needs a command after `--`"))?;
        let shown = format!("`{}`", argv.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| anyhow!("the command {shown} could not start: {e}"))?;
        let group = child.id() as libc::pid_t;
        let registered = shell::Registered::new(group);
        let stdout = child.stdout.take().expect("piped");
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        std::thread::spawn(move || stop_when_cancelled(group, &cancel, &done));
        Ok(CommandOutput {
            child,
            stdout,
            shown,
            finished,
            _registered: registered,
        })
    }
}

/// Watches for a stop while the command runs: SIGTERM to its group, and
/// SIGKILL if it is still there after [`GRACE`].
fn stop_when_cancelled(group: libc::pid_t, cancel: &AtomicBool, finished: &AtomicBool) {
    let mut asked: Option<Instant> = None;
    while !finished.load(Ordering::SeqCst) {
        if cancel.load(Ordering::SeqCst) {
            let signal = match asked {
                None => Some(libc::SIGTERM),
                Some(when) if when.elapsed() >= GRACE => Some(libc::SIGKILL),
                Some(_) => None,
            };
            if let Some(signal) = signal {
                // SAFETY: signals a process group this process created,
                // which lives until `finished` is set (it is waited for).
                unsafe { libc::kill(-group, signal) };
                asked.get_or_insert_with(Instant::now);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a command ended, for people.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".into(),
    }
}

impl Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let status = self.child.wait()?;
        self.finished.store(true, Ordering::SeqCst);
        if status.success() {
            Ok(0)
        } else {
            Err(io::Error::other(format!(
                "the command {} {}; no snapshot was written",
                self.shown,
                describe(status)
            )))
        }
    }
}

impl Drop for CommandOutput {
    /// A backup that failed for its own reasons (the store) takes the
    /// command along rather than leaving it writing into a closed pipe.
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::SeqCst) {
            // SAFETY: signals the process group this value started.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}
