//! Every parser of user input, fed a million random inputs each: not one
//! may panic. Inputs are drawn from each parser's own alphabet (digits,
//! units, separators, percent signs, brackets, multi-byte characters) so
//! they reach deep into it, not just its first check. `KAST_FUZZ_CASES`
//! sets the count.

use crate::jobs::notify::Endpoint;
use crate::jobs::timing::{Calendar, parse_duration};
use crate::spec::{parse_share, parse_time, split};
use kast_engine::browse::{SnapshotFilter, find_in};
use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;

fn cases() -> usize {
    std::env::var("KAST_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

/// SplitMix64, seeded per parser so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A string of up to `max` pieces, each from `alphabet`.
    fn text(&mut self, alphabet: &[&str], max: usize) -> String {
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

const COMMON: &[&str] = &[
    "0", "1", "9", "00", "99", "-", "+", ".", ":", "/", " ", "%", "é", "\u{0}", "\n", "ß", "😀",
    "a", "Z", "T", "",
];

fn run(seed: u64, alphabet: &[&str], max: usize, check: impl Fn(&str)) {
    let mut all: Vec<&str> = COMMON.to_vec();
    all.extend_from_slice(alphabet);
    let mut rng = Rng(seed);
    for _ in 0..cases() {
        let text = rng.text(&all, max);
        check(&text);
    }
}

#[test]
fn durations_never_panic() {
    run(
        1,
        &["s", "m", "h", "d", "w", "ms", "18446744073709551615"],
        8,
        |t| {
            let _ = parse_duration(t);
        },
    );
}

#[test]
fn calendars_never_panic() {
    let words = [
        "hourly", "daily", "weekly", "Mon", "Fri", "Sun", "..", ",", "24", "60", "23:59",
    ];
    run(2, &words, 8, |t| {
        let _ = Calendar::parse(t);
    });
}

#[test]
fn dates_never_panic() {
    run(
        3,
        &["2026", "-12-", "05", "T", "Z", "25", "61", "99999999999"],
        10,
        |t| {
            let _ = parse_time(t);
        },
    );
}

#[test]
fn sample_shares_never_panic() {
    run(4, &["%", "100", "0.5", "1e308", "NaN", "inf"], 6, |t| {
        let _ = parse_share(t);
    });
}

#[test]
fn webhook_urls_never_panic() {
    let parts = [
        "http://", "https://", "[", "]", "@", "::1", ":65536", "?", "#",
    ];
    run(5, &parts, 10, |t| {
        let _ = Endpoint::parse(t);
    });
}

#[test]
fn snapshot_specs_never_panic() {
    let snapshot = |time_ns| Snapshot {
        time_ns,
        host: "h".into(),
        user: "u".into(),
        source: "fs:///s".into(),
        tags: Vec::new(),
        job: String::new(),
        root: Id([0; 32]),
        summary: Default::default(),
        writer: None,
    };
    let list = [(Id([0xab; 32]), snapshot(1)), (Id([0xac; 32]), snapshot(2))];
    run(6, &["latest", "ab", "AB", "ac", "f", ":"], 6, |t| {
        let (name, _path) = split(t);
        let _ = find_in(list.to_vec(), name, &SnapshotFilter::default());
    });
}

#[test]
fn exclude_patterns_never_panic() {
    let parts = ["*", "**", "?", "[", "]", "!", "\\", "/", "#"];
    run(7, &parts, 8, |t| {
        if let Ok(Some(matcher)) = crate::commands::backup::excludes(&[t.to_string()], &[]) {
            let _ = matcher(b"a/b.tmp", false);
        }
    });
}

#[test]
fn config_files_never_panic() {
    let parts = [
        "[jobs.", "]", "\n", "=", "\"", "store", "backup", "every", "calendar", "keep", "{", "}",
        "last", "daily", "[", ",", "notify", "check", "5%",
    ];
    let path = std::path::Path::new("config.toml");
    run(8, &parts, 24, |t| {
        let _ = crate::jobs::parse(t, path);
    });
}

#[test]
fn retention_policies_never_panic() {
    use kast_engine::retention::{Policy, plan};
    let mut rng = Rng(9);
    let snapshots: Vec<(Id, Snapshot)> = (0..40u8)
        .map(|i| {
            let time_ns = (rng.next() as i64) >> (rng.next() % 64);
            let mut s = Snapshot {
                time_ns,
                host: "h".into(),
                user: "u".into(),
                source: "s".into(),
                tags: Vec::new(),
                job: String::new(),
                root: Id([0; 32]),
                summary: Default::default(),
                writer: (i % 5 == 0).then(|| "ab".repeat(16)),
            };
            s.host = if i % 3 == 0 { "a".into() } else { "b".into() };
            (Id([i; 32]), s)
        })
        .collect();
    for _ in 0..cases() / 100 {
        let mut n = || (rng.next() % 4) as u32 * (1 + (rng.next() % 2) as u32 * 1_000_000);
        let policy = Policy {
            last: n(),
            hourly: n(),
            daily: n(),
            weekly: n(),
            monthly: n(),
            yearly: n(),
        };
        let decided = plan(&policy, &snapshots);
        assert_eq!(decided.keep.len() + decided.remove.len(), snapshots.len());
    }
}

#[test]
fn locations_never_panic() {
    let parts = [
        "sftp://",
        "fs://",
        "s3+http://",
        "@",
        ":",
        "[",
        "]",
        "?",
        "&",
        "=",
        "%",
        "%a",
        "%41",
        "password=",
        "~",
        "//",
    ];
    run(10, &parts, 12, |t| {
        let _ = kast_plugins::Location::parse(t);
        let _ = kast_plugins::location::redact(t);
    });
}
