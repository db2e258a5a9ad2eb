//! One session channel (RFC 4254) running the `sftp` subsystem, seen as a
//! byte stream with flow control: we grant the server a large window so
//! many reads can be in flight, and wait for its window before sending.

use crate::transport::Transport;
use crate::wire::{Reader, Writer};
use crate::{invalid, unavailable};
use kast_sdk::{Error, ErrorKind};

const MSG_CHANNEL_OPEN: u8 = 90;
const MSG_CHANNEL_OPEN_CONFIRMATION: u8 = 91;
const MSG_CHANNEL_OPEN_FAILURE: u8 = 92;
const MSG_CHANNEL_WINDOW_ADJUST: u8 = 93;
const MSG_CHANNEL_DATA: u8 = 94;
const MSG_CHANNEL_EXTENDED_DATA: u8 = 95;
const MSG_CHANNEL_EOF: u8 = 96;
const MSG_CHANNEL_CLOSE: u8 = 97;
const MSG_CHANNEL_REQUEST: u8 = 98;
const MSG_CHANNEL_SUCCESS: u8 = 99;
const MSG_CHANNEL_FAILURE: u8 = 100;

/// What we let the server send ahead of our reading.
const WINDOW: u32 = 16 << 20;
/// Largest data packet we accept.
const MAX_DATA: u32 = 256 * 1024;

/// The sftp subsystem's stdin and stdout.
pub struct Channel {
    pub t: Transport,
    remote_id: u32,
    remote_window: u64,
    remote_max: usize,
    /// Bytes received since the last window adjustment.
    consumed: u32,
    inbound: Vec<u8>,
    in_pos: usize,
    closed: bool,
    /// The end of what the server wrote to stderr, for error messages.
    stderr: Vec<u8>,
}

impl Channel {
    /// Opens a session and starts the `sftp` subsystem in it.
    pub fn open_sftp(t: Transport) -> Result<Channel, Error> {
        let mut c = Channel {
            t,
            remote_id: 0,
            remote_window: 0,
            remote_max: 0,
            consumed: 0,
            inbound: Vec::new(),
            in_pos: 0,
            closed: false,
            stderr: Vec::new(),
        };
        let mut w = Writer::message(MSG_CHANNEL_OPEN);
        w.string("session").u32(0).u32(WINDOW).u32(MAX_DATA);
        c.t.send(&w.buf)?;
        let reply = c.t.recv()?;
        let mut r = Reader::new(&reply[1..]);
        match reply[0] {
            MSG_CHANNEL_OPEN_CONFIRMATION => {
                r.u32()?;
                c.remote_id = r.u32()?;
                c.remote_window = r.u32()? as u64;
                c.remote_max = (r.u32()? as usize).clamp(1024, MAX_DATA as usize);
            }
            MSG_CHANNEL_OPEN_FAILURE => {
                r.u32()?;
                r.u32()?;
                return Err(unavailable(format!(
                    "{} refused a session: {}",
                    c.t.peer,
                    r.utf8()?
                )));
            }
            other => return Err(invalid(format!("unexpected message {other}"))),
        }
        let mut w = Writer::message(MSG_CHANNEL_REQUEST);
        w.u32(c.remote_id)
            .string("subsystem")
            .bool(true)
            .string("sftp");
        c.t.send(&w.buf)?;
        loop {
            let reply = c.t.recv()?;
            match reply[0] {
                MSG_CHANNEL_SUCCESS => return Ok(c),
                MSG_CHANNEL_FAILURE => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("{} has no sftp subsystem", c.t.peer),
                    ));
                }
                _ => c.handle(reply)?,
            }
        }
    }

    /// Handles one channel message.
    fn handle(&mut self, payload: Vec<u8>) -> Result<(), Error> {
        let mut r = Reader::new(&payload[1..]);
        r.u32()?;
        match payload[0] {
            MSG_CHANNEL_DATA => {
                let data = r.string()?;
                self.consumed += data.len() as u32;
                if self.in_pos == self.inbound.len() {
                    self.inbound.clear();
                    self.in_pos = 0;
                } else if self.in_pos >= 4 << 20 {
                    self.inbound.drain(..self.in_pos);
                    self.in_pos = 0;
                }
                self.inbound.extend_from_slice(data);
                if self.consumed >= WINDOW / 2 {
                    let mut w = Writer::message(MSG_CHANNEL_WINDOW_ADJUST);
                    w.u32(self.remote_id).u32(self.consumed);
                    self.t.send(&w.buf)?;
                    self.consumed = 0;
                }
            }
            MSG_CHANNEL_WINDOW_ADJUST => self.remote_window += r.u32()? as u64,
            MSG_CHANNEL_EXTENDED_DATA => {
                r.u32()?;
                self.stderr.extend_from_slice(r.string()?);
                let excess = self.stderr.len().saturating_sub(1024);
                self.stderr.drain(..excess);
            }
            MSG_CHANNEL_EOF | MSG_CHANNEL_CLOSE => self.closed = true,
            MSG_CHANNEL_REQUEST => {
                r.string()?;
                if r.bool()? {
                    let mut w = Writer::message(MSG_CHANNEL_FAILURE);
                    w.u32(self.remote_id);
                    self.t.send(&w.buf)?;
                }
            }
            MSG_CHANNEL_SUCCESS | MSG_CHANNEL_FAILURE => {}
            other => {
                return Err(invalid(format!(
                    "{} sent unexpected message {other}",
                    self.t.peer
                )));
            }
        }
        Ok(())
    }

    fn closed_error(&self) -> Error {
        let why = String::from_utf8_lossy(&self.stderr);
        unavailable(format!(
            "{} ended the sftp session{}",
            self.t.peer,
            if why.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", why.trim())
            }
        ))
    }

    /// Sends all of `data`, waiting for window as needed.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            while self.remote_window == 0 {
                if self.closed {
                    return Err(self.closed_error());
                }
                let message = self.t.recv()?;
                self.handle(message)?;
            }
            let n = data
                .len()
                .min(self.remote_max)
                .min(self.remote_window as usize);
            let mut w = Writer {
                buf: Vec::with_capacity(n + 9),
            };
            w.u8(MSG_CHANNEL_DATA)
                .u32(self.remote_id)
                .string(&data[..n]);
            self.t.send(&w.buf)?;
            self.remote_window -= n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// The next `n` bytes the server sent, waiting for them.
    pub fn read_exact(&mut self, n: usize) -> Result<&[u8], Error> {
        while self.inbound.len() - self.in_pos < n {
            if self.closed {
                return Err(self.closed_error());
            }
            let message = self.t.recv()?;
            self.handle(message)?;
        }
        let start = self.in_pos;
        self.in_pos += n;
        Ok(&self.inbound[start..start + n])
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.t.flush()
    }
}
