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
