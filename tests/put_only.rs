//! Put-only keys through the real binary: `kast key add --put-only`, a
//! backup with the key (by hand and by a job), every read and delete
//! refused with exit code 2, and a full key restoring what it wrote.

use kast_test_support::common;
use kast_test_support::user;

use std::os::unix::ffi::OsStrExt;
use user::User;

const PUT_ONLY: &str = "only adds backups";

/// A store with a full key, a put-only key, and a tree with the awkward
/// cases (times before 1970 and after 2038, a hard link, an xattr, a name
/// that is not UTF-8, an empty file).
fn store_with_put_only_key() -> (User, std::path::PathBuf) {
    let u = User::new();
    u.create();
    let secret = u.path("put-only-passphrase");
    std::fs::write(&secret, PUT_ONLY).unwrap();
    let added = u.json(&[
        "key",
        "add",
        "--put-only",
        "--new-passphrase-file",
        secret.to_str().unwrap(),
    ]);
    assert_eq!(added["capability"], "put-only", "{added}");
    let src = u.path("src");
    common::generate_tree(&src, 21, 2 << 20);
    common::awkward_times_tree(&src.join("times"));
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::hard_link(src.join("empty"), src.join("empty-link")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    std::fs::write(src.join(odd), b"latin-1 name").unwrap();
    xattr::set(src.join("empty"), "user.note", b"kept").unwrap();
    (u, src)
}

/// The exit code and stderr of a command run with the put-only key.
fn as_put_only(u: &User, args: &[&str]) -> (Option<i32>, String) {
    let out = u.kast_with(args, PUT_ONLY);
    (out.status.code(), user::stderr(&out))
}

fn snapshot_ids(listing: &serde_json::Value) -> Vec<String> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_put_only_key_backs_up_and_a_full_key_restores_it_exactly() {
    let (u, src) = store_with_put_only_key();
    let by_full = u.json(&["backup", src.to_str().unwrap()]);
    let (code, err) = as_put_only(&u, &["--json", "backup", src.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let keys = u.json(&["key", "list"]);
    let capabilities: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["capability"].as_str().unwrap())
        .collect();
    assert_eq!(capabilities.len(), 2);
    assert!(capabilities.contains(&"full") && capabilities.contains(&"put-only"));

    // The put-only key lists only what it made; the full key lists both.
    let mine = u.kast_with(&["--json", "ls"], PUT_ONLY);
    assert!(mine.status.success(), "{}", user::stderr(&mine));
    let mine: serde_json::Value = serde_json::from_slice(&mine.stdout).unwrap();
    let mine = snapshot_ids(&mine);
    assert_eq!(mine.len(), 1);
    let listing = u.json(&["ls"]);
    let all = snapshot_ids(&listing);
    assert_eq!(all.len(), 2);
    // The full key sees which snapshot the put-only key wrote.
    let writers: Vec<bool> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["id"] == mine[0].as_str() && s["writer"].is_string()
                || s["id"] != mine[0].as_str() && s["writer"].is_null()
        })
        .collect();
    assert_eq!(writers, [true, true], "{listing}");
    assert!(all.contains(&mine[0]));
    let full_id = by_full["snapshots"][0]["id"].as_str().unwrap().to_string();
    assert!(all.contains(&full_id) && !mine.contains(&full_id));

    let out = u.path("out");
    u.ok(&["restore", &mine[0][..8], "--to", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
    let checked = u.json(&["check"]);
    assert_eq!(checked["clean"], true, "{checked}");
}

#[test]
fn a_put_only_key_is_refused_every_read_and_delete_with_exit_code_2() {
    let (u, src) = store_with_put_only_key();
    u.ok(&["backup", src.to_str().unwrap()]);
    let (code, err) = as_put_only(&u, &["backup", src.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let ids = u.snapshot_ids();
    let first = &ids[0][..8];
    let out = u.path("out");
    let other = u.path("other-store");
    let file = format!("{first}:empty");
    let refused: Vec<Vec<&str>> = vec![
        vec!["restore", first, "--to", out.to_str().unwrap()],
        vec!["cat", &file],
        vec!["ls", first],
        vec!["diff", first, &ids[1][..8]],
        vec!["rm", first],
        vec!["rm", "--keep-last", "1"],
        vec!["maintenance"],
        vec!["check"],
        vec!["info"],
        vec!["sync", "--to", other.to_str().unwrap()],
        vec!["key", "add"],
        vec!["key", "remove", &ids[0]],
        vec!["unlock"],
        vec!["ui", "--listen", "127.0.0.1:0"],
    ];
    for args in &refused {
        let (code, err) = as_put_only(&u, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("put-only"), "{args:?}: {err}");
    }
    // Nothing was removed or written.
    assert_eq!(u.snapshot_ids(), ids);
    assert_eq!(u.json(&["key", "list"]).as_array().unwrap().len(), 2);
    assert!(!out.exists() && !other.exists());
}

#[test]
fn a_put_only_key_runs_a_job_and_says_what_it_skipped() {
    let (u, src) = store_with_put_only_key();
    let dir = u.home.path().join(".config/kast");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[jobs.laptop]\nstore = \"{}\"\nbackup = [\"{}\"]\nkeep = {{ last = 1 }}\ncheck = \"fast\"\n",
            u.location,
            src.display()
        ),
    )
    .unwrap();
    let out = u.kast_with(&["--json", "job", "run", "laptop"], PUT_ONLY);
    let ran: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", user::stderr(&out)));
    assert_eq!(ran["outcome"], "partial", "{ran}");
    let reason = ran["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("retention, check skipped") && reason.contains("put-only"),
        "{ran}"
    );
    // The backup is there for a full key, and nothing was removed.
    assert_eq!(u.snapshot_ids().len(), 1);
    // Partial, so a scheduler sees it every run until the job leaves
    // retention and check to a machine with a full key.
    let (code, err) = as_put_only(&u, &["--json", "job", "run", "laptop"]);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(u.snapshot_ids().len(), 2);
    let report = u.json(&["report"]);
    assert!(report.to_string().contains("put-only"), "{report}");
}

#[test]
fn a_put_only_key_saved_locally_opens_as_put_only() {
    let (u, src) = store_with_put_only_key();
    let (code, err) = as_put_only(&u, &["key", "save-local"]);
    assert_eq!(code, Some(0), "{err}");
    // No passphrase any more: the local file is the put-only key.
    let (code, err) = as_put_only(&u, &["backup", src.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let out = u.path("out");
    let refused = u.kast_with(
        &["restore", "latest", "--to", out.to_str().unwrap()],
        "unused",
    );
    assert_eq!(refused.status.code(), Some(2), "{}", user::stderr(&refused));
    assert!(!out.exists());
    let keys = u.home.path().join(".config/kast/keys");
    let saved: Vec<_> = std::fs::read_dir(keys).unwrap().collect();
    assert_eq!(saved.len(), 1);
    let text = std::fs::read_to_string(saved[0].as_ref().unwrap().path()).unwrap();
    assert!(text.starts_with("put-only "), "{text}");
    // Forgotten again, the machine opens the store with the full key,
    // which sees the snapshot the saved put-only key made, marked as its.
    u.ok(&["key", "forget-local"]);
    let listed = u.json(&["ls"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["writer"].is_string(), "{listed:?}");
    assert!(u.json(&["check"])["clean"].as_bool().unwrap());
}
