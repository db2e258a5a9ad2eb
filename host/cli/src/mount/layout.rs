//! The folders a mount shows above the snapshots' own trees, built from
//! the snapshot list alone (no tree is read): `ids/SHORTID`, `latest/NAME`,
//! `by-source/PATH…/DATE` and `by-tag/TAG/PATH…/DATE`. Every leaf is one
//! snapshot's root. docs/cli.md ("kast mount") describes the names; this
//! module is their one definition.

use kast_engine::crypto::Id;
use kast_engine::snapshot::Snapshot;
use std::collections::{BTreeMap, HashMap};

/// The virtual folders: `dirs[0]` is the mount's root.
#[derive(Debug, Default)]
pub struct Layout {
    dirs: Vec<BTreeMap<Vec<u8>, Child>>,
}

/// What a name in a virtual folder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    /// Another virtual folder (an index into the layout).
    Dir(usize),
    /// A snapshot: its root tree is shown here.
    Snapshot(Id),
}

impl Layout {
    /// The folders for `snapshots` (oldest first).
    pub fn build(snapshots: &[(Id, Snapshot)]) -> Layout {
        let mut layout = Layout {
            dirs: vec![BTreeMap::new()],
        };
        let ids = layout.dir_in(0, b"ids");
        let latest = layout.dir_in(0, b"latest");
        let by_source = layout.dir_in(0, b"by-source");
        let by_tag = layout.dir_in(0, b"by-tag");

        // Ids: the short form unless two snapshots share it.
        let mut shorts: HashMap<String, usize> = HashMap::new();
        for (id, _) in snapshots {
            *shorts.entry(id.short()).or_default() += 1;
        }
        for (id, _) in snapshots {
            let name = if shorts[&id.short()] == 1 {
                id.short()
            } else {
                id.to_hex()
            };
            layout.dirs[ids].insert(name.into_bytes(), Child::Snapshot(*id));
        }

        for (id, s) in snapshots {
            let folder = layout.source_dir(by_source, &s.source);
            layout.add_dated(folder, id, s);
            for tag in &s.tags {
                let tag_dir = layout.dir_in(by_tag, &clean(tag.as_bytes()));
                let folder = layout.source_dir(tag_dir, &s.source);
                layout.add_dated(folder, id, s);
            }
        }

        // Latest: the newest snapshot of each source (per host and writer,
        // as `kast ls` keeps them apart), named as plainly as stays unique.
        let mut newest: BTreeMap<(&str, &str, Option<&str>), &(Id, Snapshot)> = BTreeMap::new();
        for pair in snapshots {
            let s = &pair.1;
            newest.insert((&s.source, &s.host, s.writer.as_deref()), pair);
        }
        let groups: Vec<&(Id, Snapshot)> = newest.into_values().collect();
        let names = latest_names(&groups);
        for ((id, _), name) in groups.iter().zip(names) {
            layout.dirs[latest].insert(name, Child::Snapshot(*id));
        }
        layout
    }

    /// What `path` (relative to the mount, `/`-separated) names.
    pub fn resolve(&self, path: &[u8]) -> Option<Child> {
        let mut at = Child::Dir(0);
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            match at {
                Child::Dir(dir) => at = *self.dirs[dir].get(part)?,
                Child::Snapshot(_) => return None,
            }
        }
        Some(at)
    }

    /// The names in virtual folder `dir`, sorted.
    pub fn entries(&self, dir: usize) -> impl Iterator<Item = (&[u8], Child)> {
        self.dirs
            .get(dir)
            .into_iter()
            .flatten()
            .map(|(name, child)| (name.as_slice(), *child))
    }

    /// The folder `name` in `parent`, made if missing. A name a snapshot
    /// already holds (a source folder named like a date) gets a `~`.
    fn dir_in(&mut self, parent: usize, name: &[u8]) -> usize {
        let mut name = name.to_vec();
        loop {
            match self.dirs[parent].get(&name) {
                Some(Child::Dir(dir)) => return *dir,
                Some(Child::Snapshot(_)) => name.push(b'~'),
                None => {
                    self.dirs.push(BTreeMap::new());
                    let dir = self.dirs.len() - 1;
                    self.dirs[parent].insert(name, Child::Dir(dir));
                    return dir;
                }
            }
        }
    }

    /// The folder of a source under `parent`: one folder per part of its
    /// path (`fs:///home/me/docs` → `home/me/docs`, `sftp://h/srv` →
    /// `sftp:/h/srv`).
    fn source_dir(&mut self, parent: usize, source: &str) -> usize {
        source_parts(source)
            .iter()
            .fold(parent, |dir, part| self.dir_in(dir, part))
    }

    /// The snapshot under its date; two of one second share it only with
    /// their short ids added.
    fn add_dated(&mut self, folder: usize, id: &Id, s: &Snapshot) {
        let date = date_name(s.time_ns);
        let name = if self.dirs[folder].contains_key(date.as_bytes()) {
            format!("{date}.{}", id.short())
        } else {
            date
        };
        self.dirs[folder].insert(name.into_bytes(), Child::Snapshot(*id));
    }
}

/// A snapshot's time as a folder name: `2026-12-07T10:33:25Z`, sorted as
/// time goes and free of spaces.
pub fn date_name(time_ns: i64) -> String {
    format!(
        "{}Z",
        kast_engine::time::format_time(time_ns).replacen(' ', "T", 1)
    )
}

/// The parts of a source's path, each a valid name.
fn source_parts(source: &str) -> Vec<Vec<u8>> {
    // A local folder's location is `fs:///path`: shown as the path.
    source
        .strip_prefix("fs://")
        .unwrap_or(source)
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| clean(p.as_bytes()))
        .collect()
}

/// `name` made a valid file name: `.` and `..` and NUL bytes cannot be.
fn clean(name: &[u8]) -> Vec<u8> {
    match name {
        b"" => b"_".to_vec(),
        b"." | b".." => name.iter().map(|_| b'_').collect(),
        _ => name
            .iter()
            .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
            .collect(),
    }
}

/// Names for `latest/`: a source's last folder (`docs`); where two
/// sources share it, the whole path with `_` for `/` (`home_me_docs`);
/// then `@HOST`; then the snapshot's short id.
fn latest_names(groups: &[&(Id, Snapshot)]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = groups.iter().map(|g| latest_name(g, 0)).collect();
    for plainness in 1..=3 {
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        for name in &names {
            *seen.entry(name.clone()).or_default() += 1;
        }
        for (i, group) in groups.iter().enumerate() {
            if seen[&names[i]] > 1 {
                names[i] = latest_name(group, plainness);
            }
        }
    }
    names
}

/// One of the names [`latest_names`] tries, plainest (0) first.
fn latest_name((id, s): &(Id, Snapshot), plainness: u8) -> Vec<u8> {
    let mut parts = source_parts(&s.source);
    if parts.is_empty() {
        parts.push(b"root".to_vec());
    }
    if plainness == 0 {
        return parts.pop().unwrap_or_default();
    }
    let mut name = parts.join(&b'_');
    if plainness >= 2 {
        name.push(b'@');
        name.extend(clean(s.host.as_bytes()));
    }
    if plainness >= 3 {
        name.extend(format!(".{}", id.short()).into_bytes());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use kast_engine::snapshot::Summary;

    fn snapshot(n: u8, source: &str, host: &str, time_s: i64, tags: &[&str]) -> (Id, Snapshot) {
        (
            Id([n; 32]),
            Snapshot {
                time_ns: time_s * 1_000_000_000,
                host: host.into(),
                user: "me".into(),
                source: source.into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                job: String::new(),
                root: Id([0; 32]),
                summary: Summary::default(),
                writer: None,
            },
        )
    }

    fn names(layout: &Layout, path: &str) -> Vec<String> {
        let Some(Child::Dir(dir)) = layout.resolve(path.as_bytes()) else {
            panic!("{path} is not a folder");
        };
        layout
            .entries(dir)
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    #[test]
    fn every_view_leads_to_the_snapshots_it_should() {
        let all = vec![
            snapshot(1, "fs:///home/me/docs", "a", 0, &["daily"]),
            snapshot(2, "fs:///home/me/docs", "a", 86_400, &[]),
            snapshot(3, "/srv/docs", "b", 100, &["daily"]),
            snapshot(4, "sftp://h/srv", "a", 200, &[]),
            snapshot(5, "/", "a", 300, &[]),
        ];
        let layout = Layout::build(&all);
        assert_eq!(names(&layout, ""), ["by-source", "by-tag", "ids", "latest"]);
        assert_eq!(names(&layout, "ids").len(), 5);
        assert_eq!(
            layout.resolve(b"ids/01010101"),
            Some(Child::Snapshot(Id([1; 32])))
        );
        assert_eq!(
            names(&layout, "by-source/home/me/docs"),
            ["1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z"]
        );
        assert_eq!(
            layout.resolve(b"by-source/sftp:/h/srv/1970-01-01T00:03:20Z"),
            Some(Child::Snapshot(Id([4; 32])))
        );
        // A backup of `/` sits right in by-source, under its date.
        assert_eq!(
            layout.resolve(b"by-source/1970-01-01T00:05:00Z"),
            Some(Child::Snapshot(Id([5; 32])))
        );
        assert_eq!(names(&layout, "by-tag"), ["daily"]);
        assert_eq!(names(&layout, "by-tag/daily"), ["home", "srv"]);
        // Two sources end in "docs": each is named by its whole path.
        assert_eq!(
            names(&layout, "latest"),
            ["home_me_docs", "root", "srv", "srv_docs"]
        );
        assert_eq!(
            layout.resolve(b"latest/home_me_docs"),
            Some(Child::Snapshot(Id([2; 32]))),
            "the newest of the source"
        );
    }

    #[test]
    fn names_stay_unique_and_valid() {
        let all = vec![
            snapshot(1, "/x/docs", "a", 5, &["a/b", ".."]),
            snapshot(2, "/x/docs", "b", 5, &[]),
            snapshot(3, "/x/docs", "a", 5, &[]),
        ];
        let layout = Layout::build(&all);
        // Same second: dates get the short id.
        assert_eq!(
            names(&layout, "by-source/x/docs"),
            [
                "1970-01-01T00:00:05Z",
                "1970-01-01T00:00:05Z.02020202",
                "1970-01-01T00:00:05Z.03030303"
            ]
        );
        assert_eq!(names(&layout, "by-tag"), ["__", "a_b"]);
        // One source on two hosts.
        assert_eq!(names(&layout, "latest"), ["x_docs@a", "x_docs@b"]);
    }
}
