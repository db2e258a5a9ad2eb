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
            log: self.clone(),
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
fn escaped(bytes: &[u8]) -> String {
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

/// One instance's stdout or stderr: bytes gathered into lines.
#[derive(Clone)]
pub struct LogStream {
    log: Arc<PluginLog>,
    prefix: String,
    /// The line being written, until its newline.
    line: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    fn take(&self, mut bytes: &[u8]) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            keep(&mut line, &bytes[..end]);
            self.log.write_line(&self.prefix, &line);
            line.clear();
            bytes = &bytes[end + 1..];
        }
        keep(&mut line, bytes);
    }

    fn finish_line(&self) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if !line.is_empty() {
            self.log.write_line(&self.prefix, &line);
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
