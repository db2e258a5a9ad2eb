//! `kast agent`: runs the config file's scheduled jobs in the foreground,
//! for containers and hosts without systemd or cron. One job at a time; a
//! failing job is recorded and the agent goes on; a job that another agent
//! (or `kast job run`) is running is skipped, not run twice; SIGTERM or
//! Ctrl-C stops a running backup cleanly (what was stored stays valid) and
//! ends the agent. Jobs with `every` run at start and then every interval;
//! `calendar` jobs wait for their next time (local), unless the job last
//! started before the latest such time (the agent, or the machine, was
//! down): then it runs at once, as systemd's `Persistent=true` would. The
//! config file is read once: restart the agent after editing it.

use super::run::{self, JobLock};
use super::timing::{self, Calendar};
use super::{Job, load};
use crate::context::Context;
use crate::spec::format_time;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a sleeping agent looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

/// A job's timing in the agent.
enum When {
    Every(Duration),
    Calendar(Calendar),
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn run(ctx: &Context, cancel: Arc<AtomicBool>) -> Result<()> {
    let mut scheduled: Vec<(String, Job, When)> = Vec::new();
    for (name, job) in load(&ctx.dirs)? {
        let when = match (&job.every, &job.calendar) {
            (Some(every), _) => When::Every(timing::parse_duration(every)?),
            (_, Some(calendar)) => When::Calendar(Calendar::parse(calendar)?),
            _ => continue,
        };
        scheduled.push((name, job, when));
    }
    if scheduled.is_empty() {
        bail!(
            "no job in {} has `every` or `calendar`: nothing to schedule",
            ctx.dirs.config_file.display()
        );
    }
    let start = now_secs();
    let mut next: BTreeMap<String, f64> = BTreeMap::new();
    for (name, _, when) in &scheduled {
        let due = match when {
            When::Every(_) => start,
            When::Calendar(c) => {
                let missed = previous_event(c, start);
                match run::last_started(&ctx.dirs, name) {
                    Some(last) if (last as f64) < missed => {
                        eprintln!(
                            "kast agent: job {name} missed its run at {} UTC; it runs now",
                            format_time((missed * 1e9) as i64)
                        );
                        start
                    }
                    _ => next_event(c, start),
                }
            }
        };
        eprintln!(
            "kast agent: job {name} next at {} UTC",
            format_time((due * 1e9) as i64)
        );
        next.insert(name.clone(), due);
    }
    while !cancel.load(Ordering::Relaxed) {
        let (name, due) = next
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(n, d)| (n.clone(), *d))
            .expect("at least one job");
        let now = now_secs();
        if due > now {
            std::thread::sleep(TICK.min(Duration::from_secs_f64(due - now)));
            continue;
        }
        let (_, job, when) = scheduled
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("scheduled");
        match JobLock::try_acquire(&ctx.dirs, &name)? {
            None => eprintln!("kast agent: job {name} is running elsewhere; this run is skipped"),
            Some(_held) => {
                let ran = run::run(ctx, &name, job, cancel.clone());
                eprintln!(
                    "kast agent: job {name}: {}",
                    crate::commands::job::run_line(&ran.activity)
                );
                for w in ran.warnings.iter().chain(&ran.not_recorded) {
                    eprintln!("kast agent: job {name}: warning: {w}");
                }
            }
        }
        let after = now_secs();
        let following = match when {
            // Keeps the cadence; a run longer than its interval is followed
            // at once rather than piling up.
            When::Every(d) => (due + d.as_secs_f64()).max(after),
            When::Calendar(c) => next_event(c, after),
        };
        next.insert(name, following);
    }
    eprintln!("kast agent: stopped");
    Ok(())
}

/// The first time after `after` (seconds since the epoch) that the
/// calendar names, in local time.
fn next_event(calendar: &Calendar, after: f64) -> f64 {
    let after = after as libc::time_t;
    let base = local(after);
    if calendar.at.is_none() {
        return (hour_start(base) + 3600) as f64;
    }
    (0..8)
        .filter_map(|offset| event_on_day(calendar, base, offset))
        .find(|&t| t > after)
        .unwrap_or(after + 7 * 86_400) as f64
}

/// The last time at or before `now` that the calendar names, in local time.
fn previous_event(calendar: &Calendar, now: f64) -> f64 {
    let now = now as libc::time_t;
    let base = local(now);
    if calendar.at.is_none() {
        return hour_start(base) as f64;
    }
    (0..8)
        .filter_map(|offset| event_on_day(calendar, base, -offset))
        .find(|&t| t <= now)
        .unwrap_or(now - 7 * 86_400) as f64
}

/// When a calendar with a time of day fires on the day `offset` days from
/// `base`, if it fires that day.
fn event_on_day(calendar: &Calendar, base: libc::tm, offset: i32) -> Option<libc::time_t> {
    let (hour, minute) = calendar.at?;
    let mut tm = base;
    tm.tm_mday += offset;
    tm.tm_hour = hour as i32;
    tm.tm_min = minute as i32;
    tm.tm_sec = 0;
    let t = from_local(tm);
    // tm_wday counts from Sunday; the calendar from Monday.
    let weekday = ((local(t).tm_wday + 6) % 7) as usize;
    calendar.days[weekday].then_some(t)
}

/// The start of the hour `tm` is in.
fn hour_start(mut tm: libc::tm) -> libc::time_t {
    tm.tm_min = 0;
    tm.tm_sec = 0;
    from_local(tm)
}

fn local(t: libc::time_t) -> libc::tm {
    // SAFETY: localtime_r writes only into the zeroed `tm` it is given.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

fn from_local(mut tm: libc::tm) -> libc::time_t {
    tm.tm_isdst = -1; // let mktime decide (the day may cross a DST change)
    // SAFETY: mktime reads and normalises the `tm` it is given.
    unsafe { libc::mktime(&mut tm) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_calendar_event_is_on_a_chosen_day_after_now() {
        let weekdays = Calendar::parse("Mon..Fri 02:00").unwrap();
        let mut t = now_secs();
        for _ in 0..10 {
            let next = next_event(&weekdays, t);
            assert!(
                next > t && next - t <= 3.0 * 86_400.0 + 3600.0,
                "{t} → {next}"
            );
            let tm = local(next as libc::time_t);
            assert_eq!((tm.tm_hour, tm.tm_min), (2, 0));
            assert!((1..=5).contains(&tm.tm_wday), "{}", tm.tm_wday);
            t = next;
        }
        // The previous event is the one before the next.
        for text in ["Mon..Fri 02:00", "Sun 23:45", "daily", "hourly"] {
            let calendar = Calendar::parse(text).unwrap();
            let now = now_secs();
            let before = previous_event(&calendar, now);
            assert!(before <= now, "{text}");
            assert_eq!(next_event(&calendar, before - 1.0), before, "{text}");
            assert!(next_event(&calendar, before) > now, "{text}");
        }
        let hourly = Calendar::parse("hourly").unwrap();
        let next = next_event(&hourly, t);
        assert!(next > t && next - t <= 3600.0);
        assert_eq!(local(next as libc::time_t).tm_min, 0);
    }
}
