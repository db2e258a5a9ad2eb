//! `docs/writing-a-plugin.md`, followed as a reader would: every block
//! marked `file=PATH` is written, every `sh` block is run in order, in an
//! empty scratch folder (no kast sources: the SDK and the contract come
//! out of the binary), with the `kast` under test first on `PATH` and a
//! fresh home. A tutorial that drifts from the code fails here.

use kast_test_support::markdown;

use markdown::blocks;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where rustup and cargo keep their state, before HOME changes.
fn tool_home(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(default))
}

#[test]
fn the_plugin_tutorial_works_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tutorial = std::fs::read_to_string(repo.join("docs/writing-a-plugin.md")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir(dir.join("home")).unwrap();
    let bin = Path::new(kast_test_support::user::kast_binary())
        .parent()
        .unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut said = String::new();
    let mut commands = 0;
    for block in blocks(&tutorial) {
        if let Some(file) = block
            .info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            let target = dir.join(file);
            let folder = target.parent().unwrap();
            std::fs::create_dir_all(folder).unwrap();
            std::fs::write(&target, &block.text).unwrap();
            if target.ends_with("Cargo.toml") {
                // A crate's build output is kept from run to run.
                let kept = repo.join("target/tutorial").join(file.replace('/', "-"));
                std::fs::create_dir_all(&kept).unwrap();
                std::os::unix::fs::symlink(kept, folder.join("target")).unwrap();
            }
        } else if block.info == "sh" {
            commands += 1;
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &block.text])
                .current_dir(dir)
                .env("HOME", dir.join("home"))
                .env("PATH", &path)
                .env("RUSTUP_HOME", tool_home("RUSTUP_HOME", ".rustup"))
                .env("CARGO_HOME", tool_home("CARGO_HOME", ".cargo"))
                .env("npm_config_cache", tool_home("npm_config_cache", ".npm"))
                .env("KAST_PASSPHRASE", "tutorial")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the tutorial's commands failed:\n{}\n{}{}",
                block.text,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            said.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    assert!(commands >= 3, "only {commands} command blocks found");
    // The three plugins were installed, backed up from, and read back.
    assert_eq!(said.matches("installed hello").count(), 3, "{said}");
    assert_eq!(said.lines().filter(|l| *l == "hello").count(), 3, "{said}");
}
