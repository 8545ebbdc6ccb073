//! Numbers, durations and times the way operators read them: `1,204`,
//! `350 ms`, `2 s`, `4 min`, `3 h`, `12 s ago`.
//!
//! Every human-facing report goes through these, so one screen never mixes
//! `240s` with `4 minutes`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A count with thousands separators: `1204` becomes `1,204`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with its noun, singular or plural: `1 event`, `37 events`.
pub fn counted(n: u64, singular: &str, plural: &str) -> String {
    format!("{} {}", count(n), if n == 1 { singular } else { plural })
}

/// A duration rounded to what matters at its size: `350 ms`, `1.2 s`,
/// `42 s`, `4 min`, `3 h`, `5 days`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", (secs * 1000.0).round() as u64)
    } else if secs < 10.0 {
        let tenths = (secs * 10.0).round() / 10.0;
        if tenths.fract() == 0.0 {
            format!("{} s", tenths as u64)
        } else {
            format!("{tenths:.1} s")
        }
    } else if secs < 90.0 {
        format!("{} s", secs.round() as u64)
    } else if secs < 90.0 * 60.0 {
        format!("{} min", (secs / 60.0).round() as u64)
    } else if secs < 48.0 * 3600.0 {
        format!("{} h", (secs / 3600.0).round() as u64)
    } else {
        format!("{} days", (secs / 86_400.0).round() as u64)
    }
}

/// [`duration`] of a number of seconds; negative values (a clock skew
/// between two readings) count as zero.
pub fn seconds(secs: f64) -> String {
    duration(Duration::from_secs_f64(if secs.is_finite() {
        secs.max(0.0)
    } else {
        0.0
    }))
}

/// How long before `now` a moment was: `12 s ago`, or `just now`.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_milliseconds() as f64 / 1000.0;
    if secs < 0.5 {
        "just now".to_owned()
    } else {
        format!("{} ago", seconds(secs))
    }
}

/// A share as a percentage with one decimal: `0.969` becomes `96.9%`.
pub fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct >= 99.95 && share < 1.0 {
        // Never round an incomplete share up to a reassuring 100%.
        "99.9%".to_owned()
    } else {
        format!("{pct:.1}%")
    }
}

/// A ratio with three decimals, or `n/a` when undefined.
pub fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.3}"),
        None => "n/a".to_owned(),
    }
}

/// A timestamp at second precision, in UTC.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Milliseconds with a precision that suits a benchmark table.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        count(ms.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_204), "1,204");
        assert_eq!(count(10_000_000), "10,000,000");
        assert_eq!(counted(1, "event", "events"), "1 event");
        assert_eq!(counted(37, "event", "events"), "37 events");
    }

    #[test]
    fn durations_are_rounded_to_the_unit_that_fits() {
        assert_eq!(duration(Duration::from_millis(350)), "350 ms");
        assert_eq!(duration(Duration::from_millis(1_230)), "1.2 s");
        assert_eq!(duration(Duration::from_secs(2)), "2 s");
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(240)), "4 min");
        assert_eq!(duration(Duration::from_secs(3 * 3600)), "3 h");
        assert_eq!(duration(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(seconds(-3.0), "0 ms");
    }

    #[test]
    fn an_incomplete_share_never_shows_as_one_hundred_percent() {
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(percent(0.9999), "99.9%");
        assert_eq!(percent(0.969), "96.9%");
    }
}
