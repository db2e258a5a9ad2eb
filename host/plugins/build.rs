//! Builds the connector plugins (`plugins/`, a workspace of its own) for
//! `wasm32-wasip2` so that the built-in ones can be embedded in the binary
//! and the test-only ones found by the tests. Plain `cargo build` does it
//! all; the wasm target must be installed (`rust-toolchain.toml` asks rustup
//! for it, `scripts/setup` adds it explicitly).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let plugins = root.join("plugins");
    // The plugins' own sources, not all of plugins/ (examples/ holds
    // node_modules, which must not make every host build run this again).
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/fs",
        "plugins/ftp",
        "plugins/http",
        "plugins/http-client",
        "plugins/s3",
        "plugins/sftp",
        "plugins/testing",
        "sdk/src",
        "sdk/wit",
        "sdk/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Inside OUT_DIR, as Cargo asks of build scripts: a build with other
    // settings (another profile, clippy) builds the plugins again, about
    // two minutes cold, and nothing outside its own folder is touched.
    let target_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args([
            "build",
            // Reproducible: the versions plugins/Cargo.lock names, or an error.
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    // Settings meant for the host build must not leak into the wasm build
    // (clippy's wrapper, host rustflags, the outer profile).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO_PROFILE_") {
            command.env_remove(key);
        }
    }
    let status = command.status().expect("run cargo for the wasm plugins");
    assert!(
        status.success(),
        "building the wasm plugins failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
    let out = target_dir.join("wasm32-wasip2/release");
    println!("cargo:rustc-env=KAST_PLUGIN_WASM_DIR={}", out.display());
}
