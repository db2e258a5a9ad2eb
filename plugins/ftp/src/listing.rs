//! Directory listings: `MLSD` with exact facts where the server offers it,
//! else `LIST -a` in the Unix `ls -l` form (the mode string parsed here,
//! the rest by suppaftp), with `MDTM` for each file's time to the second
//! (`LIST` shows minutes at best). A listing line kast cannot read is an
//! error naming the line: a server that lies in its listing is not trusted
//! silently.

use crate::Session;
use chrono::{DateTime, NaiveDateTime};
use kast_sdk::{EntryKind, Error, ErrorKind};
use std::io::{BufRead, BufReader};
use std::time::UNIX_EPOCH;
use suppaftp::Status;
use suppaftp::list::ListParser;

/// One listed entry.
pub struct Item {
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the Unix epoch, UTC.
    pub mtime: i64,
    pub symlink_target: Option<String>,
}

/// `YYYYMMDDHHMMSS` (UTC), as MFMT and MDTM take a time.
pub fn format_time(seconds: i64) -> Option<String> {
    DateTime::from_timestamp(seconds, 0).map(|t| t.format("%Y%m%d%H%M%S").to_string())
}

fn parse_time(text: &str) -> Option<i64> {
    let whole = text.split('.').next()?;
    NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn lying(s: &Session, line: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}: unreadable listing line ({why}): {line:?}", s.peer),
    )
}

/// Every entry of `dir` but `.` and `..`; `exact_times` asks MDTM for each
/// file when the listing's own times are coarse.
pub fn list(s: &mut Session, dir: &str, exact_times: bool) -> Result<Vec<Item>, Error> {
    let items = if s.mlsd {
        let lines = s
            .ftp
            .mlsd(Some(dir))
            .map_err(|e| s.error(&format!("MLSD {dir}"), e))?;
        let mut items = Vec::with_capacity(lines.len());
        for line in &lines {
            if let Some(item) = parse_mlsx(line).map_err(|why| lying(s, line, why))? {
                items.push(item);
            }
        }
        items
    } else {
        s.ftp
            .cwd(dir)
            .map_err(|e| s.error(&format!("CWD {dir}"), e))?;
        let (_, stream) = s
            .ftp
            .custom_data_command("LIST -a", &[Status::AboutToSend, Status::AlreadyOpen])
            .map_err(|e| s.error(&format!("LIST {dir}"), e))?;
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader
                .read_until(b'\n', &mut raw)
                .map_err(|e| Error::io(format!("{}: LIST {dir}", s.peer), e))?;
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            if !line.is_empty() {
                lines.push(line);
            }
        }
        reader
            .into_inner()
            .finish()
            .map_err(|e| s.error(&format!("LIST {dir}"), e))?;
        let mut items = Vec::with_capacity(lines.len());
        for line in &lines {
            if line.starts_with("total ") {
                continue;
            }
            let item = parse_list(line).map_err(|why| lying(s, line, why))?;
            if item.name == "." || item.name == ".." {
                continue;
            }
            items.push(item);
        }
        if exact_times {
            for item in items.iter_mut().filter(|i| i.kind == EntryKind::File) {
                let path = crate::join(dir, &item.name);
                if let Ok(t) = s.ftp.mdtm(&path) {
                    item.mtime = t.and_utc().timestamp();
                }
            }
        }
        items
    };
    Ok(items)
}

/// The one entry at `path` (a single-file location).
pub fn stat_file(s: &mut Session, path: &str) -> Result<Item, Error> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    list(s, dir, true)?
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{}: {path} does not exist", s.peer),
            )
        })
}

/// `fact=value;…; name` (RFC 3659); None for `.` and `..`.
fn parse_mlsx(line: &str) -> Result<Option<Item>, &'static str> {
    let (facts, name) = line.split_once(' ').ok_or("no name")?;
    let mut item = Item {
        name: name.to_string(),
        kind: EntryKind::Special,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        symlink_target: None,
    };
    let mut mode = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=').ok_or("a fact without '='")?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                let lower = value.to_ascii_lowercase();
                item.kind = match lower.as_str() {
                    "cdir" | "pdir" => return Ok(None),
                    "dir" => EntryKind::Dir,
                    "file" => EntryKind::File,
                    _ if lower.starts_with("os.unix=slink")
                        || lower.starts_with("os.unix=symlink") =>
                    {
                        item.symlink_target = value
                            .split_once(':')
                            .map(|(_, t)| t.to_string())
                            .filter(|t| !t.is_empty());
                        EntryKind::Symlink
                    }
                    _ => EntryKind::Special,
                };
            }
            "size" => item.size = value.parse().map_err(|_| "a bad size")?,
            "modify" => item.mtime = parse_time(value).ok_or("a bad time")?,
            "unix.mode" => mode = Some(u32::from_str_radix(value, 8).map_err(|_| "a bad mode")?),
            "unix.uid" | "unix.owner" => item.uid = value.parse().unwrap_or(0),
            "unix.gid" | "unix.group" => item.gid = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    let type_bits = match item.kind {
        EntryKind::Dir => 0o040000,
        EntryKind::File => 0o100000,
        EntryKind::Symlink => 0o120000,
        EntryKind::Special => 0,
    };
    item.mode = type_bits
        | mode.unwrap_or(if item.kind == EntryKind::Dir {
            0o755
        } else {
            0o644
        });
    Ok(Some(item))
}

/// One `ls -l` line.
fn parse_list(line: &str) -> Result<Item, &'static str> {
    let perms = line.split_whitespace().next().ok_or("empty")?;
    let (kind, mode) = parse_mode(perms).ok_or("not a Unix mode string")?;
    let file = ListParser::parse_posix(line).map_err(|_| "not a Unix listing line")?;
    let mtime = file
        .modified()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(Item {
        name: file.name().to_string(),
        kind,
        mode,
        uid: file.uid().unwrap_or(0),
        gid: file.gid().unwrap_or(0),
        size: file.size() as u64,
        mtime,
        symlink_target: file.symlink().map(|t| t.to_string_lossy().into_owned()),
    })
}

/// `drwxr-sr-t` as a kind and a full mode.
fn parse_mode(text: &str) -> Option<(EntryKind, u32)> {
    let b = text.as_bytes();
    if b.len() < 10 {
        return None;
    }
    let (kind, type_bits) = match b[0] {
        b'd' => (EntryKind::Dir, 0o040000),
        b'-' => (EntryKind::File, 0o100000),
        b'l' => (EntryKind::Symlink, 0o120000),
        b'b' | b'c' | b'p' | b's' => (EntryKind::Special, 0),
        _ => return None,
    };
    let mut mode = type_bits;
    for (i, special) in [(1usize, 0o4000u32), (4, 0o2000), (7, 0o1000)] {
        let shift = 6 - (i as u32 - 1);
        if b[i] == b'r' {
            mode |= 4 << shift;
        }
        if b[i + 1] == b'w' {
            mode |= 2 << shift;
        }
        match b[i + 2] {
            b'x' => mode |= 1 << shift,
            b's' | b't' => mode |= (1 << shift) | special,
            b'S' | b'T' => mode |= special,
            b'-' => {}
            _ => return None,
        }
    }
    Some((kind, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_parse_with_special_bits() {
        assert_eq!(parse_mode("drwxr-xr-x"), Some((EntryKind::Dir, 0o040755)));
        assert_eq!(parse_mode("-rw-------"), Some((EntryKind::File, 0o100600)));
        assert_eq!(parse_mode("-rwsr-sr-t"), Some((EntryKind::File, 0o107755)));
        assert_eq!(
            parse_mode("lrwxrwxrwx"),
            Some((EntryKind::Symlink, 0o120777))
        );
        assert_eq!(parse_mode("garbage!!!"), None);
    }

    #[test]
    fn list_and_mlsd_lines_parse() {
        let item =
            parse_list("-rw-r--r--    1 0        0            1234 Nov 26  2025 my file.txt")
                .unwrap();
        assert_eq!(
            (item.name.as_str(), item.size, item.mode, item.kind),
            ("my file.txt", 1234, 0o100644, EntryKind::File)
        );
        assert!(parse_list("this is not a listing").is_err());
        let m = parse_mlsx(
            "type=file;size=10;modify=20261126120000.123;unix.mode=0640;unix.uid=7; a b",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (m.name.as_str(), m.size, m.mode, m.uid),
            ("a b", 10, 0o100640, 7)
        );
        assert_eq!(format_time(m.mtime).unwrap(), "20261126120000");
        assert!(parse_mlsx("type=cdir; .").unwrap().is_none());
        assert!(parse_mlsx("size=x; f").is_err());
    }
}
