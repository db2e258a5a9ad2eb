//! Shared pieces of kast's benchmarks: deterministic datasets and memory
//! readings, so the criterion benches and the `kast-bench` runner measure
//! the same data the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use kast_test_support::common::Rng;

/// Incompressible bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Rng(seed).fill(&mut out);
    out
}

/// Text-like bytes that LZ4 compresses about 2–3×.
pub fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "backup ",
        "store ",
        "chunk ",
        "the ",
        "of ",
        "and ",
        "snapshot ",
        "pack ",
        "index ",
        "to ",
        "restore ",
        "file ",
        "a ",
        "in ",
        "data\n",
        "is ",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[(rng.next_u64() % 16) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

/// The 1 GiB benchmark tree: 8 files of 96 MiB of random data and 256
/// files of 1 MiB, half random and half text. Made once (deterministic)
/// under `root` and reused.
pub fn benchmark_tree(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join("tree-1gib");
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.join("small"))?;
    let mut rng = Rng(1);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..8 {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("large-{i}.bin")))?);
        for _ in 0..96 {
            rng.fill(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    for i in 0..256u64 {
        let data = if i % 2 == 0 {
            random_bytes(1 << 20, 1000 + i)
        } else {
            text_bytes(1 << 20, 1000 + i)
        };
        std::fs::write(dir.join("small").join(format!("f{i:03}")), data)?;
    }
    std::fs::write(&done, b"")?;
    Ok(dir)
}

/// Dataset (a) of the side-by-side comparison: 1 GiB of incompressible
/// data in 4 files of 256 MiB. Made once under `root` and reused.
pub fn large_files_tree(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join("large-1gib");
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng(2);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..4 {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("large-{i}.bin")))?);
        for _ in 0..256 {
            rng.fill(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    std::fs::write(dir.join(".complete"), b"")?;
    Ok(dir)
}

/// Files in the small-files dataset, in folders of 100.
pub const SMALL_FILES: u64 = 100_000;

/// The content of small file `i` in `generation` 0 (as made) or 1 (as
/// changed): 1 to 20 KiB, every other one text, the rest random.
fn small_file(i: u64, generation: u64) -> Vec<u8> {
    let seed = i * 2 + generation + 10_000;
    let len = 1024 + (Rng(seed).next_u64() % (19 * 1024)) as usize;
    if i.is_multiple_of(2) {
        text_bytes(len, seed)
    } else {
        random_bytes(len, seed)
    }
}

fn small_file_path(dir: &Path, i: u64) -> PathBuf {
    dir.join(format!("d{:04}", i / 100))
        .join(format!("f{:06}", i))
}

/// Dataset (b): 100,000 files of 1 to 20 KiB (about 1 GiB), mixed text and
/// binary, in 1,000 folders. Made once under `root` and reused.
pub fn small_files_tree(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join("small-100k");
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    for i in 0..SMALL_FILES {
        let path = small_file_path(&dir, i);
        if i % 100 == 0 {
            std::fs::create_dir_all(path.parent().expect("in a folder"))?;
        }
        std::fs::write(path, small_file(i, 0))?;
    }
    std::fs::write(dir.join(".complete"), b"")?;
    Ok(dir)
}

/// Files in the text dataset, in folders of 400.
pub const TEXT_FILES: u64 = 200_000;

/// Prose-like bytes: words of a 4,096-word vocabulary, drawn by Zipf's
/// law as in natural language and code, in lines of 4 to 15 words. A file
/// of a few KiB repeats little of itself, while files share their
/// vocabulary: what per-file compression misses and compressing files
/// together finds (the case of mail folders, source trees, notes).
pub fn prose_bytes(len: usize, seed: u64) -> Vec<u8> {
    static VOCABULARY: std::sync::OnceLock<(Vec<String>, Vec<f64>)> = std::sync::OnceLock::new();
    let (words, cumulative) = VOCABULARY.get_or_init(|| {
        const SYLLABLES: [&str; 24] = [
            "ka", "st", "ro", "me", "li", "on", "da", "ta", "ver", "sync", "pre", "ex", "in", "al",
            "ur", "em", "back", "up", "is", "at", "or", "ne", "co", "de",
        ];
        let mut rng = Rng(77);
        let words = (0..4096)
            .map(|rank: usize| {
                let syllables = 1 + rank.min(2000) / 700 + (rng.next_u64() % 2) as usize;
                (0..syllables)
                    .map(|_| SYLLABLES[(rng.next_u64() % 24) as usize])
                    .collect::<String>()
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=4096)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        (words, cumulative)
    });
    let total = cumulative[cumulative.len() - 1];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let line = 4 + rng.next_u64() % 12;
        for i in 0..line {
            let at = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cumulative.partition_point(|&c| c < at).min(words.len() - 1);
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(words[rank].as_bytes());
        }
        out.extend_from_slice(if rng.next_u64().is_multiple_of(8) {
            b".\n\n"
        } else {
            b"\n"
        });
    }
    out.truncate(len);
    out
}

/// Dataset (c): 200,000 prose-like text files of 0.5 to 5 KiB (about
/// 550 MB) in 500 folders: many small text files, where compressing
/// files together decides the store's size. Made once under `root`.
pub fn text_files_tree(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join("text-200k");
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    for i in 0..TEXT_FILES {
        let path = dir
            .join(format!("d{:03}", i / 400))
            .join(format!("note-{i:06}.txt"));
        if i % 400 == 0 {
            std::fs::create_dir_all(path.parent().expect("in a folder"))?;
        }
        let len = 512 + (Rng(i + 500_000).next_u64() % 4608) as usize;
        std::fs::write(path, prose_bytes(len, i + 900_000))?;
    }
    std::fs::write(dir.join(".complete"), b"")?;
    Ok(dir)
}

/// Rewrites 1 % of the small-files dataset (every 100th file) with new
/// content, or (with `back`) puts the original content back.
pub fn change_one_percent(dir: &Path, back: bool) -> std::io::Result<()> {
    for i in (0..SMALL_FILES).step_by(100) {
        std::fs::write(small_file_path(dir, i), small_file(i, u64::from(!back)))?;
    }
    Ok(())
}

/// Where benchmark data lives: `KAST_BENCH_DIR`, or `target/bench-data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("KAST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"))
}

/// Peak resident memory, and current anonymous resident memory, of this
/// process in KiB (VmHWM, RssAnon). Anonymous memory is what the process
/// itself needs; file-backed pages of a mapped index are page cache the
/// kernel can drop at any time.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"))
}

/// A source that exists only in memory, for the scale benchmark
/// (`bench/scale.sh`): `files` small files in folders of 1,000. Each
/// file's content names its generation and number, so every generation
/// adds `files` new blobs, and its metadata is fixed per generation, so a
/// second backup of one generation reads nothing: millions of files
/// without a disk.
pub struct SyntheticSource {
    /// How many files.
    pub files: u64,
    /// Which version of their contents.
    pub generation: u64,
}

/// Files per folder of a [`SyntheticSource`].
const SYNTHETIC_FOLDER: u64 = 1000;

impl SyntheticSource {
    fn content(&self, i: u64) -> Vec<u8> {
        format!("synthetic file {i} of generation {}\n", self.generation).into_bytes()
    }

    fn meta(&self, mode: u32, size: u64) -> kast_engine::tree::Metadata {
        kast_engine::tree::Metadata {
            mode,
            mtime_ns: self.generation as i64 * 1_000_000_000,
            ctime_ns: self.generation as i64 * 1_000_000_000,
            size,
            ..Default::default()
        }
    }
}

impl kast_engine::Source for SyntheticSource {
    fn location(&self) -> String {
        format!("synthetic:{}", self.files)
    }

    fn list(&self, path: &[u8]) -> std::io::Result<Vec<kast_engine::source::SourceEntry>> {
        use kast_engine::source::SourceEntry;
        use kast_engine::tree::EntryKind;
        let entry = |name: String, kind, meta| SourceEntry {
            name: name.into_bytes(),
            kind,
            meta,
            symlink_target: None,
            mount: None,
        };
        if path.is_empty() {
            let folders = self.files.div_ceil(SYNTHETIC_FOLDER);
            return Ok((0..folders)
                .map(|k| entry(format!("d{k:05}"), EntryKind::Dir, self.meta(0o40755, 0)))
                .collect());
        }
        let folder: u64 = std::str::from_utf8(path)
            .ok()
            .and_then(|p| p.strip_prefix('d'))
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"))?;
        let first = folder * SYNTHETIC_FOLDER;
        Ok((first..(first + SYNTHETIC_FOLDER).min(self.files))
            .map(|i| {
                let size = self.content(i).len() as u64;
                entry(
                    format!("f{i:08}"),
                    EntryKind::File,
                    self.meta(0o100644, size),
                )
            })
            .collect())
    }

    fn open(&self, path: &[u8]) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        let i: u64 = std::str::from_utf8(path)
            .ok()
            .and_then(|p| p.rsplit_once("/f"))
            .and_then(|(_, i)| i.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))?;
        Ok(Box::new(std::io::Cursor::new(self.content(i))))
    }
}
