//! README's tour, run as written: the block marked `sh tour` in order, in
//! a fresh home holding `~/Documents` and `~/Pictures`, with the `kast`
//! under test first on `PATH`; then every command of `sh tour-elsewhere`
//! (servers, a browser, a scheduler) asked for `--help`, so each still
//! parses. A README that drifts from the binary fails here.

use kast_test_support::markdown;

use std::path::Path;
use std::process::{Command, Output};

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_readme_tour_works_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let blocks = markdown::blocks(&readme);
    let block = |info: &str| {
        blocks
            .iter()
            .find(|b| b.info == info)
            .unwrap_or_else(|| panic!("README has no ```{info} block"))
            .text
            .clone()
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("Documents")).unwrap();
    std::fs::create_dir_all(h.join("Pictures")).unwrap();
    std::fs::write(h.join("Documents/todo.txt"), "buy milk\n").unwrap();
    std::fs::write(h.join("Documents/draft.tmp"), "scratch").unwrap();
    std::fs::write(h.join("Pictures/cat.jpg"), vec![0xd8; 100_000]).unwrap();
    let bin = Path::new(kast_test_support::user::kast_binary())
        .parent()
        .unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let run = |script: &str| {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(h)
            .env_clear()
            .env("HOME", h)
            .env("PATH", &path)
            .env("KAST_PASSPHRASE", "tour")
            .env("KAST_NEW_PASSPHRASE", "a second one")
            .env("KAST_TO_PASSPHRASE", "tour")
            .output()
            .unwrap()
    };

    let tour = block("sh tour");
    let out = run(&tour);
    let text = said(&out);
    assert!(out.status.success(), "the tour failed:\n{tour}\n{text}");
    // What a reader would look at: the file shown, the change found, the
    // folder restored without the excluded file, and the copy made.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("buy milk"), "{text}");
    assert!(stdout.contains("todo.txt"), "{text}");
    assert_eq!(
        std::fs::read_to_string(h.join("restored/todo.txt")).unwrap(),
        "buy milk\ncall the bank\n"
    );
    assert!(!h.join("restored/draft.tmp").exists());
    assert!(h.join("usb-kast/config").is_file(), "{text}");
    assert!(stdout.contains("copied "), "{text}");

    // The rest: each command parses and has help.
    for line in block("sh tour-elsewhere").lines() {
        let command = line.split("  #").next().unwrap().trim();
        if command.is_empty() {
            continue;
        }
        let out = run(&format!("{command} --help"));
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{command}: {}",
            said(&out)
        );
    }
}

/// Every path ARCHITECTURE.md names (in backquotes, starting at a top
/// folder of the repository) exists: a code map that points nowhere is
/// worse than none.
#[test]
fn every_path_the_architecture_names_exists() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(repo.join("ARCHITECTURE.md")).unwrap();
    let tops = [
        "host/", "plugins/", "sdk/", "wit/", "tests/", "bench/", "docs/", "scripts/",
    ];
    let mut named = 0;
    for (i, quoted) in map.split('`').enumerate() {
        // Odd pieces are inside backquotes.
        if i % 2 == 0 || !tops.iter().any(|top| quoted.starts_with(top)) {
            continue;
        }
        named += 1;
        assert!(
            repo.join(quoted).exists(),
            "ARCHITECTURE.md names {quoted}, which does not exist"
        );
    }
    assert!(
        named >= 40,
        "only {named} paths found: is the test still reading them?"
    );
}

/// Every member of the two workspaces opts into its root's lint policy
/// (ARCHITECTURE.md, "Lints"): a crate without `[lints] workspace = true`
/// would be outside it without anyone noticing.
#[test]
fn every_crate_follows_the_lint_policy() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for root in ["Cargo.toml", "plugins/Cargo.toml"] {
        let manifest = std::fs::read_to_string(repo.join(root)).unwrap();
        assert!(
            manifest.contains("[workspace.lints.rust]\n")
                && manifest.contains("missing_docs = \"warn\""),
            "{root} sets no missing_docs policy"
        );
        let members = manifest
            .split("members = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap_or_else(|| panic!("{root} lists no members"));
        let dir = Path::new(root).parent().unwrap();
        for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
            if member.is_empty() {
                continue;
            }
            let path = repo.join(dir).join(member).join("Cargo.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{} does not opt into the workspace's lints",
                path.display()
            );
            checked += 1;
        }
    }
    let sdk = std::fs::read_to_string(repo.join("sdk/Cargo.toml")).unwrap();
    assert!(sdk.contains("[lints.rust]\nmissing_docs = \"warn\""));
    assert!(checked >= 13, "only {checked} crates found");
}
