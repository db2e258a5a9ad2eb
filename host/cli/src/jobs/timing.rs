//! When jobs run: `every = "1h"` (an interval) or `calendar = "Mon..Fri
//! 02:00"` (a subset of systemd's calendar events that cron can say too,
//! so one job file means the same under systemd, cron and `kast agent`).

use anyhow::{Result, anyhow, bail};
use std::time::Duration;

/// Reads `90s`, `15m`, `1h`, `1h30m`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || anyhow!("cannot read the interval {text:?}: use e.g. 30s, 15m, 1h, 1h30m, 7d, 2w");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration as [`parse_duration`] reads it: `1h30m`, `45s`.
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_secs();
    let mut text = String::new();
    for (unit, seconds) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= seconds {
            text.push_str(&format!("{}{unit}", left / seconds));
            left %= seconds;
        }
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

/// Days of the week, Monday first (as systemd writes them).
pub const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A calendar event: on these weekdays, at this time (local), or at the
/// start of every hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Monday first.
    pub days: [bool; 7],
    /// `None`: every hour, on the hour.
    pub at: Option<(u32, u32)>,
}

impl Calendar {
    /// Reads `hourly`, `daily`, `weekly`, `HH:MM`, `DAYS HH:MM` where DAYS
    /// is `Mon`, `Mon,Thu` or `Mon..Fri`.
    pub fn parse(text: &str) -> Result<Calendar> {
        let bad = |why: &str| {
            anyhow!(
                "cannot read the calendar {text:?}: {why} (use e.g. \"daily\", \"02:30\" or \"Mon..Fri 02:00\")"
            )
        };
        let every_day = [true; 7];
        match text.trim() {
            "hourly" => {
                return Ok(Calendar {
                    days: every_day,
                    at: None,
                });
            }
            "daily" => {
                return Ok(Calendar {
                    days: every_day,
                    at: Some((0, 0)),
                });
            }
            "weekly" => {
                let mut days = [false; 7];
                days[0] = true;
                return Ok(Calendar {
                    days,
                    at: Some((0, 0)),
                });
            }
            _ => {}
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (days_text, time_text) = match parts.as_slice() {
            [time] => (None, *time),
            [days, time] => (Some(*days), *time),
            _ => return Err(bad("one time, optionally after the days")),
        };
        let (h, m) = time_text
            .split_once(':')
            .ok_or_else(|| bad("the time is HH:MM"))?;
        let (h, m): (u32, u32) = (
            h.parse().map_err(|_| bad("the time is HH:MM"))?,
            m.parse().map_err(|_| bad("the time is HH:MM"))?,
        );
        if h > 23 || m > 59 {
            return Err(bad("no such time of day"));
        }
        let days = match days_text {
            None => every_day,
            Some(list) => {
                let mut days = [false; 7];
                for item in list.split(',') {
                    let day = |name: &str| {
                        DAYS.iter()
                            .position(|d| d.eq_ignore_ascii_case(name))
                            .ok_or_else(|| bad("days are Mon, Tue, Wed, Thu, Fri, Sat, Sun"))
                    };
                    match item.split_once("..") {
                        Some((from, to)) => {
                            let (from, to) = (day(from)?, day(to)?);
                            if from > to {
                                bail!(bad("a range of days runs forward, as Mon..Fri"));
                            }
                            days[from..=to].iter_mut().for_each(|d| *d = true);
                        }
                        None => days[day(item)?] = true,
                    }
                }
                days
            }
        };
        Ok(Calendar {
            days,
            at: Some((h, m)),
        })
    }

    /// The longest wait between two runs: what "late" is measured against.
    pub fn longest_gap(&self) -> Duration {
        if self.at.is_none() {
            return Duration::from_secs(3600);
        }
        let chosen: Vec<usize> = (0..7).filter(|&d| self.days[d]).collect();
        let gap_days = chosen
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let next = chosen[(i + 1) % chosen.len()];
                (next + 7 - d - 1) % 7 + 1
            })
            .max()
            .unwrap_or(7);
        Duration::from_secs(gap_days as u64 * 86_400)
    }

    /// The same event in systemd's `OnCalendar=` syntax.
    pub fn systemd(&self) -> String {
        let Some((h, m)) = self.at else {
            return "hourly".to_string();
        };
        match self.day_list() {
            None => format!("*-*-* {h:02}:{m:02}:00"),
            Some(days) => format!("{days} *-*-* {h:02}:{m:02}:00"),
        }
    }

    /// The same event as a crontab line's five time fields.
    pub fn cron(&self) -> String {
        let Some((h, m)) = self.at else {
            return "0 * * * *".to_string();
        };
        let days = if self.days == [true; 7] {
            "*".to_string()
        } else {
            // cron counts Sunday as 0 and Monday as 1.
            (0..7)
                .filter(|&d| self.days[d])
                .map(|d| ((d + 1) % 7).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("{m} {h} * * {days}")
    }

    /// `Mon,Wed` for the chosen days, or `None` for every day.
    fn day_list(&self) -> Option<String> {
        if self.days == [true; 7] {
            return None;
        }
        Some(
            (0..7)
                .filter(|&d| self.days[d])
                .map(|d| DAYS[d])
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_people_write_them() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(1_209_600)
        );
        for bad in ["", "1", "h", "1x", "0s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for text in ["1h30m", "45s", "2d", "1d2h3m4s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn calendars_translate_to_systemd_and_cron() {
        let weekdays = Calendar::parse("Mon..Fri 02:00").unwrap();
        assert_eq!(weekdays.systemd(), "Mon,Tue,Wed,Thu,Fri *-*-* 02:00:00");
        assert_eq!(weekdays.cron(), "0 2 * * 1,2,3,4,5");
        assert_eq!(weekdays.longest_gap(), Duration::from_secs(3 * 86_400));
        let sunday = Calendar::parse("Sun 23:45").unwrap();
        assert_eq!(sunday.cron(), "45 23 * * 0");
        assert_eq!(sunday.longest_gap(), Duration::from_secs(7 * 86_400));
        assert_eq!(
            Calendar::parse("daily").unwrap().systemd(),
            "*-*-* 00:00:00"
        );
        assert_eq!(Calendar::parse("hourly").unwrap().cron(), "0 * * * *");
        assert_eq!(
            Calendar::parse("Mon,Thu 12:05").unwrap().longest_gap(),
            Duration::from_secs(4 * 86_400)
        );
        for bad in [
            "Fri..Mon 02:00",
            "Mon 25:00",
            "Someday 02:00",
            "02",
            "Mon 02:00 x",
        ] {
            assert!(Calendar::parse(bad).is_err(), "{bad}");
        }
    }
}
