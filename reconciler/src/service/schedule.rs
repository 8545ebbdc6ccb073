//! When passes run: a cron line, in any of the forms operators write.
//!
//! The `cron` crate reads 6 or 7 fields (seconds first, an optional year
//! last) and numbers weekdays 1 = Sunday. Operators mostly write the 5-field
//! crontab form, where weekdays run 0-7 with both 0 and 7 meaning Sunday. A
//! 5-field line gets `0` seconds prepended and its numeric weekdays rewritten
//! as names (`1-5` becomes `MON,TUE,WED,THU,FRI`), so `0 9 * * 1-5` means what
//! it means in crontab: weekdays at 09:00. Shorthands (`@hourly`, `@daily`,
//! ...) pass through.
//!
//! Times are UTC. The schedule only decides when to wake; what a pass selects
//! is decided by the database clock (see [`crate::horizon`]), so a host clock
//! that jumps can at worst move a pass, never widen what it touches.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A line that is not a schedule, with the reason in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule `{line}`: {reason}")]
pub struct ScheduleError {
    /// The line as given.
    pub line: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed schedule, keeping the line it was written as.
#[derive(Debug, Clone)]
pub struct Schedule {
    line: String,
    cron: cron::Schedule,
}

impl Schedule {
    /// Parses a 5-field crontab line, a 6- or 7-field cron line (seconds
    /// first), or an `@` shorthand.
    pub fn parse(line: &str) -> Result<Self, ScheduleError> {
        let trimmed = line.trim();
        let error = |reason: String| ScheduleError {
            line: line.to_owned(),
            reason,
        };
        let expression = if trimmed.starts_with('@') {
            trimmed.to_owned()
        } else {
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            match fields.len() {
                5 => {
                    let weekdays = crontab_weekdays(fields[4]).map_err(error)?;
                    format!(
                        "0 {} {} {} {} {weekdays}",
                        fields[0], fields[1], fields[2], fields[3]
                    )
                }
                6 | 7 => fields.join(" "),
                0 => return Err(error("the line is empty".to_owned())),
                n => {
                    return Err(error(format!(
                        "expected 5 fields (minute hour day month weekday), or 6-7 with \
                         seconds first and an optional year; found {n}"
                    )));
                }
            }
        };
        let cron = cron::Schedule::from_str(&expression)
            .map_err(|e| error(format!("{e} (read as `{expression}`)")))?;
        if cron.upcoming(Utc).next().is_none() {
            return Err(error("it never fires again".to_owned()));
        }
        Ok(Self {
            line: trimmed.to_owned(),
            cron,
        })
    }

    /// The line as the operator wrote it.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The first firing strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&now).next()
    }

    /// How long to wait from `now` until the next firing; `None` if the
    /// schedule has no firing left.
    pub fn delay_from(&self, now: DateTime<Utc>) -> Option<Duration> {
        let next = self.next_after(now)?;
        Some((next - now).to_std().unwrap_or(Duration::ZERO))
    }

    /// The usual gap between two firings after `now`, used to judge whether
    /// passes are overdue.
    pub fn period_after(&self, now: DateTime<Utc>) -> Option<Duration> {
        let mut upcoming = self.cron.after(&now);
        let first = upcoming.next()?;
        let second = upcoming.next()?;
        (second - first).to_std().ok()
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        Self::parse(line)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites a crontab weekday field (0-7, 0 and 7 = Sunday) as day names,
/// which mean the same to the `cron` crate. Items that are already names, or
/// `*` / `?`, are kept.
fn crontab_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut out: Vec<String> = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let numeric = range == "*" || range.split('-').all(|p| p.parse::<u32>().is_ok());
        if !numeric {
            // Names such as MON-FRI: the cron crate reads them as crontab does.
            out.push(item.to_owned());
            continue;
        }
        let day = |text: &str| -> Result<u32, String> {
            match text.parse::<u32>() {
                Ok(d) if d <= 7 => Ok(d),
                _ => Err(format!(
                    "weekday `{text}` is out of range: crontab weekdays are 0-7 (0 and 7 are Sunday)"
                )),
            }
        };
        let (first, last) = match range.split_once('-') {
            _ if range == "*" => (0, 6),
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(range)?;
                (d, if step.is_some() { 7 } else { d })
            }
        };
        if first > last {
            return Err(format!(
                "weekday range `{range}` runs backwards; write it as two ranges"
            ));
        }
        let step = match step {
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("weekday step `{s}` is not a positive number")),
            },
            None => 1,
        };
        for d in (first..=last).step_by(step as usize) {
            let name = DAY_NAMES[(d % 7) as usize];
            if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        // Literal dates in these tests are all valid.
        Utc.with_ymd_and_hms(y, m, d, h, min, s)
            .single()
            .expect("valid date")
    }

    #[test]
    fn the_default_schedule_fires_every_thirty_seconds() {
        let s = Schedule::parse(crate::config::defaults::SCHEDULE).expect("default parses");
        let now = at(2026, 1, 5, 10, 0, 1);
        assert_eq!(s.next_after(now), Some(at(2026, 1, 5, 10, 0, 30)));
        assert_eq!(s.delay_from(now), Some(Duration::from_secs(29)));
        assert_eq!(s.period_after(now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_five_field_crontab_line_means_what_it_means_in_crontab() {
        // 2026-01-03 is a Saturday; crontab's 1-5 is Monday to Friday.
        let s = Schedule::parse("0 9 * * 1-5").expect("crontab line");
        let next = s.next_after(at(2026, 1, 3, 12, 0, 0)).expect("next");
        assert_eq!(next, at(2026, 1, 5, 9, 0, 0));
        assert_eq!(next.weekday(), Weekday::Mon);
        // Both 0 and 7 are Sunday.
        for line in ["30 6 * * 0", "30 6 * * 7"] {
            let next = Schedule::parse(line)
                .expect("sunday")
                .next_after(at(2026, 1, 5, 0, 0, 0))
                .expect("next");
            assert_eq!(next.weekday(), Weekday::Sun, "{line}");
            assert_eq!((next.hour(), next.minute(), next.second()), (6, 30, 0));
        }
        assert!(Schedule::parse("*/5 * * * *").is_ok());
        assert!(Schedule::parse("0 0 * * MON-FRI").is_ok());
        assert!(Schedule::parse("0 0 * * 5-7").is_ok());
    }

    #[test]
    fn six_and_seven_field_lines_and_shorthands_are_accepted() {
        assert!(Schedule::parse("*/10 * * * * *").is_ok());
        assert!(Schedule::parse("0 0 3 * * Mon 2030-2040").is_ok());
        assert!(Schedule::parse("@hourly").is_ok());
    }

    #[test]
    fn garbage_is_rejected_with_a_clear_error() {
        for line in [
            "",
            "every minute",
            "* * *",
            "61 * * * *",
            "0 9 * * 8",
            "0 9 * * 5-1",
            "* * * * * * * *",
            "0 0 0 1 1 * 1999",
        ] {
            let error = Schedule::parse(line).expect_err(line);
            let text = error.to_string();
            assert!(text.starts_with("invalid schedule"), "{text}");
            assert!(!error.reason.is_empty(), "{line}");
        }
        let error = Schedule::parse("* * *").expect_err("three fields");
        assert!(error.reason.contains("found 3"), "{}", error.reason);
    }
}
