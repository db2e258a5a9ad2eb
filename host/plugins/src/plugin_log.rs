//! What plugins print, for their authors (`kast --plugin-log FILE`): each
//! instance's standard output and error go to one file, a line at a time,
//! prefixed with the plugin's name and stream, control characters escaped
//! (a plugin cannot drive the terminal of whoever reads the log), lines cut
//! at 4 KiB and the whole file at a budget. Off by default: without it a
//! plugin's output goes nowhere, as the sandbox grants no stdio.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The most one line keeps; the rest of it is dropped, said with `…`.
const LINE: usize = 4096;
/// The most a log takes, whatever the plugins print.
pub const BUDGET: u64 = 16 << 20;

/// The file every instance of this process writes to.
pub struct PluginLog {
    sink: Mutex<Sink>,
}

struct Sink {
    file: File,
    written: u64,
    full: bool,
}

impl PluginLog {
    /// Appends to `path` (created if missing).
    pub fn open(path: &Path) -> io::Result<Arc<PluginLog>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Arc::new(PluginLog {
            sink: Mutex::new(Sink {
                file,
                written: 0,
                full: false,
            }),
        }))
    }

    /// A stream for one instance's `stdout` or `stderr`.
    pub fn stream(self: &Arc<Self>, plugin: &str, which: &str) -> LogStream {
        LogStream {
            log: Some(self.clone()),
            tail: None,
            prefix: format!("{plugin} {which}: "),
            line: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Writes one line; one longer than [`LINE`] is cut there, with `…`.
    fn write_line(&self, prefix: &str, line: &[u8]) {
        let cut = line.len() > LINE;
        let line = &line[..line.len().min(LINE)];
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if sink.full {
            return;
        }
        let mut text = format!("{prefix}{}", escaped(line));
        if cut {
            text.push('…');
        }
        text.push('\n');
        // Room is always kept for the line that says the log is full.
        const FULL: &str = "kast: the plugin log is full; later output is dropped\n";
        if sink.written + (text.len() + FULL.len()) as u64 > BUDGET {
            sink.full = true;
            text = FULL.into();
        }
        sink.written += text.len() as u64;
        // A log that cannot be written must not fail the plugin's call.
        let _ = sink.file.write_all(text.as_bytes());
    }
}

/// The text of `bytes` with control characters (escape sequences, bells,
/// carriage returns) written as Rust escapes and invalid UTF-8 as U+FFFD.
pub fn escaped(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The last bytes an instance wrote to stderr, always kept (bounded), so
/// that a crash is reported with the plugin's own last words: a Rust
/// panic's message, an exception's.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<Vec<u8>>>);

/// How much of its stderr an instance leaves for its crash report.
const TAIL: usize = 4096;

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        let extra = tail.len().saturating_sub(TAIL);
        tail.drain(..extra);
    }

    /// From the last panic report on, or else the last line, escaped, on
    /// one line and at most 1 KiB; `None` when nothing was written.
    pub fn last_words(&self) -> Option<String> {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let from = lines
            .iter()
            .rposition(|l| l.contains("panicked at"))
            .unwrap_or(lines.len().checked_sub(1)?);
        let words = escaped(lines[from..].join(" ").as_bytes());
        Some(match words.char_indices().nth(1024) {
            Some((cut, _)) => format!("{}…", &words[..cut]),
            None => words,
        })
    }
}

/// The most of a plugin's message kast prints, records or stores.
pub const MESSAGE: usize = 4096;

/// A plugin's message as kast shows it: control characters escaped (it
/// cannot drive a terminal or forge a line of its own), at most
/// [`MESSAGE`] bytes, and said when cut.
pub fn plain(message: &str) -> String {
    let mut text = escaped(message.as_bytes());
    if text.len() > MESSAGE {
        let mut cut = MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = message.len();
        text.truncate(cut);
        text.push_str(&format!("… (cut: the plugin said {total} bytes)"));
    }
    text
}

/// One instance's stdout or stderr: bytes gathered into lines for the log,
/// and (stderr) the tail kept for a crash report.
#[derive(Clone)]
pub struct LogStream {
    log: Option<Arc<PluginLog>>,
    tail: Option<Tail>,
    prefix: String,
    /// The line being written, until its newline.
    line: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    /// An instance's stderr: kept in `tail`, and logged when there is a log.
    pub fn stderr(log: Option<&Arc<PluginLog>>, plugin: &str, tail: Tail) -> LogStream {
        LogStream {
            log: log.cloned(),
            tail: Some(tail),
            prefix: format!("{plugin} stderr: "),
            line: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn take(&self, mut bytes: &[u8]) {
        if let Some(tail) = &self.tail {
            tail.push(bytes);
        }
        let Some(log) = &self.log else {
            return;
        };
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            keep(&mut line, &bytes[..end]);
            log.write_line(&self.prefix, &line);
            line.clear();
            bytes = &bytes[end + 1..];
        }
        keep(&mut line, bytes);
    }

    fn finish_line(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = &self.log
            && !line.is_empty()
        {
            log.write_line(&self.prefix, &line);
            line.clear();
        }
    }
}

/// Adds to a line up to one byte past [`LINE`] (the mark that it was cut).
fn keep(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = (LINE + 1).saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Drop for LogStream {
    fn drop(&mut self) {
        // The last clone (the instance ended) writes what has no newline.
        if Arc::strong_count(&self.line) == 1 {
            self.finish_line();
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.take(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_escaped_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = PluginLog::open(&path).unwrap();
        let out = log.stream("evil", "stderr");
        out.take(b"hello\n\x1b[2Jwiped\npart");
        out.take(b"ial\n");
        out.take(&vec![b'x'; 10_000]);
        drop(out);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "evil stderr: hello");
        assert_eq!(lines[1], "evil stderr: \\u{1b}[2Jwiped");
        assert_eq!(lines[2], "evil stderr: partial");
        assert_eq!(lines[3], format!("evil stderr: {}…", "x".repeat(LINE)));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn messages_are_escaped_and_cut() {
        assert_eq!(plain("fine"), "fine");
        assert_eq!(
            plain("\x1b[2Jwarning: fake\nline"),
            "\\u{1b}[2Jwarning: fake\\nline"
        );
        let long = plain(&"é".repeat(100_000));
        assert!(long.len() < MESSAGE + 64, "{}", long.len());
        assert!(
            long.ends_with("… (cut: the plugin said 200000 bytes)"),
            "{long}"
        );
    }

    #[test]
    fn a_crash_report_keeps_the_panic_message() {
        let tail = Tail::default();
        let err = LogStream::stderr(None, "p", tail.clone());
        assert_eq!(tail.last_words(), None);
        err.take(&b"noise\n".repeat(2000));
        err.take(b"thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom \x1b[2J\n");
        assert_eq!(
            tail.last_words().unwrap(),
            "thread '<unnamed>' panicked at src/lib.rs:9:5: boom \\u{1b}[2J"
        );
        err.take(b"just a last line\n");
        assert!(tail.last_words().unwrap().ends_with("just a last line"));
    }

    #[test]
    fn the_log_stops_at_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = PluginLog::open(&path).unwrap();
        let out = log.stream("chatty", "stdout");
        let line = [b"y".repeat(1000), b"\n".to_vec()].concat();
        for _ in 0..(BUDGET / 1000 + 100) {
            out.take(&line);
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= BUDGET, "{len}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("later output is dropped\n"));
    }
}
