//! Retention: which snapshots a policy keeps. Pure logic over snapshot
//! headers, so `rm --dry-run` and the real run decide identically.
//!
//! Snapshots are grouped by host, source and writer (a put-only key's
//! snapshots only claim their host and source, so they never push a full
//! key's out, nor another put-only key's); within a group, newest first,
//! a snapshot is kept if it is one of the `last` newest, or the newest of
//! its hour, day, ISO week, month or year while fewer than that many such
//! periods have been kept (restic's rule). Periods are in UTC.

use crate::crypto::Id;
use crate::snapshot::Snapshot;
use std::collections::{BTreeMap, HashSet};

/// How many of each to keep; zero keeps none by that rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The most recent snapshots.
    pub last: u32,
    /// The latest snapshot of each of this many hours.
    pub hourly: u32,
    /// The latest snapshot of each of this many days.
    pub daily: u32,
    /// The latest snapshot of each of this many ISO weeks.
    pub weekly: u32,
    /// The latest snapshot of each of this many months.
    pub monthly: u32,
    /// The latest snapshot of each of this many years.
    pub yearly: u32,
}

impl Policy {
    /// A policy that keeps nothing would delete everything: refuse it.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decision {
    id: Id,
    keep: bool,
    /// The rules that keep it ("last", "daily", …); empty when it goes.
    reasons: Vec<&'static str>,
}

/// What a policy does to a set of snapshots: the one answer `kast rm
/// --keep-*` and a job's `keep` both act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The snapshots kept, each with the rules that keep it ("last",
    /// "daily", …), newest first within each group.
    pub keep: Vec<(Id, Vec<&'static str>)>,
    /// The snapshots the policy lets go.
    pub remove: Vec<Id>,
}

/// The plan for `snapshots`, each group (host, source, writer) on its own.
pub fn plan(policy: &Policy, snapshots: &[(Id, Snapshot)]) -> Plan {
    let mut plan = Plan::default();
    for decision in apply(policy, snapshots) {
        if decision.keep {
            plan.keep.push((decision.id, decision.reasons));
        } else {
            plan.remove.push(decision.id);
        }
    }
    plan
}

/// The snapshots in the same groups (host, source, writer) as any of
/// `ids`: a job applies its policy to what it backs up, and to nothing else.
pub fn groups_of(ids: &[Id], snapshots: &[(Id, Snapshot)]) -> Vec<(Id, Snapshot)> {
    let groups: HashSet<Group> = snapshots
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(_, s)| group(s))
        .collect();
    snapshots
        .iter()
        .filter(|(_, s)| groups.contains(&group(s)))
        .cloned()
        .collect()
}

/// What a snapshot competes with: host, source and writer.
type Group<'a> = (&'a str, &'a str, Option<&'a str>);

fn group(s: &Snapshot) -> Group<'_> {
    (s.host.as_str(), s.source.as_str(), s.writer.as_deref())
}

/// Civil date (year, month, day, hour) and ISO week of a time in UTC.
fn periods(time_ns: i64) -> [(u8, i64); 5] {
    let secs = time_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let (year, month, _) = crate::time::civil_from_days(days);
    // ISO weeks start on Monday; 1970-01-01 was a Thursday.
    let week = (days + 3).div_euclid(7);
    [
        (0, days * 24 + hour),
        (1, days),
        (2, week),
        (3, year * 12 + month),
        (4, year),
    ]
}

/// Decides, for every snapshot, whether the policy keeps it.
fn apply(policy: &Policy, snapshots: &[(Id, Snapshot)]) -> Vec<Decision> {
    let mut groups: BTreeMap<Group, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group(&s.1)).or_default().push(s);
    }
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(b.0.cmp(&a.0)));
        let limits = [
            policy.hourly,
            policy.daily,
            policy.weekly,
            policy.monthly,
            policy.yearly,
        ];
        let names = ["hourly", "daily", "weekly", "monthly", "yearly"];
        let mut seen: [HashSet<i64>; 5] = Default::default();
        for (i, (id, snap)) in group.iter().map(|p| (&p.0, &p.1)).enumerate() {
            let mut reasons = Vec::new();
            if (i as u32) < policy.last {
                reasons.push("last");
            }
            for (rule, bucket) in periods(snap.time_ns) {
                let r = rule as usize;
                if (seen[r].len() as u32) < limits[r] && seen[r].insert(bucket) {
                    reasons.push(names[r]);
                }
            }
            out.push(Decision {
                id: *id,
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Summary;

    fn snap(n: u8, time_ns: i64, source: &str) -> (Id, Snapshot) {
        (
            Id([n; 32]),
            Snapshot {
                time_ns,
                host: "h".into(),
                user: "u".into(),
                source: source.into(),
                tags: vec![],
                job: String::new(),
                root: Id::default(),
                summary: Summary::default(),
                writer: None,
            },
        )
    }

    const HOUR: i64 = 3600 * 1_000_000_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn civil_dates_are_right() {
        // 2026-11-26 13:52 UTC, a Thursday.
        let t = 1_795_701_120 * 1_000_000_000;
        let p = periods(t);
        assert_eq!(p[4].1, 2026);
        assert_eq!(p[3].1, 2026 * 12 + 11);
        // 2000-03-01 is the day after a leap day.
        let leap = periods(951_868_800 * 1_000_000_000);
        assert_eq!(leap[3].1, 2000 * 12 + 3);
        assert_eq!(periods(951_782_400 * 1_000_000_000)[3].1, 2000 * 12 + 2);
    }

    #[test]
    fn keep_last_and_daily() {
        // Four snapshots a day for five days.
        let snaps: Vec<_> = (0..20u8)
            .map(|i| snap(i, i64::from(i) * 6 * HOUR + 5 * DAY, "/a"))
            .collect();
        let policy = Policy {
            last: 2,
            daily: 3,
            ..Default::default()
        };
        let decisions = apply(&policy, &snaps);
        let kept: Vec<u8> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.0[0])
            .collect();
        // The two newest, plus the newest of each of the three newest days.
        assert_eq!(kept, vec![19, 18, 15, 11]);
        assert_eq!(
            decisions.iter().find(|d| d.id.0[0] == 19).unwrap().reasons,
            vec!["last", "daily"]
        );
    }

    #[test]
    fn sources_are_kept_separately() {
        let snaps = vec![
            snap(1, DAY, "/a"),
            snap(2, 2 * DAY, "/a"),
            snap(3, DAY, "/b"),
        ];
        let decisions = apply(
            &Policy {
                last: 1,
                ..Default::default()
            },
            &snaps,
        );
        let kept: HashSet<u8> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.0[0])
            .collect();
        assert_eq!(kept, HashSet::from([2, 3]));
    }

    #[test]
    fn a_plan_splits_and_a_job_touches_only_its_groups() {
        let snaps = vec![
            snap(1, DAY, "/a"),
            snap(2, 2 * DAY, "/a"),
            snap(3, DAY, "/b"),
            snap(4, 2 * DAY, "/b"),
        ];
        let policy = Policy {
            last: 1,
            ..Default::default()
        };
        let plan = plan(&policy, &snaps);
        assert_eq!(
            plan.keep,
            vec![(Id([2; 32]), vec!["last"]), (Id([4; 32]), vec!["last"])]
        );
        assert_eq!(plan.remove, vec![Id([1; 32]), Id([3; 32])]);
        // A job that made snapshot 2 prunes /a only.
        let scope = groups_of(&[Id([2; 32])], &snaps);
        assert_eq!(super::plan(&policy, &scope).remove, vec![Id([1; 32])]);
    }
}
