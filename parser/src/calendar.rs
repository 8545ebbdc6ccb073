//! Turning a header's date part (`Thursday May 15`, `Jun 2`, `December 31`,
//! `6/11`, `2025-06-11`) into a calendar date.
//!
//! Headers rarely give a year, so the year is the one that puts the date
//! nearest to the post time: `December 31` posted on January 1 is the
//! previous year's, not the next one's.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
];

/// Shortest accepted abbreviation of a month or weekday name (`Jun`, `Wed`).
const MIN_NAME_LEN: usize = 3;

/// What a header's date part says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateReading {
    /// No date part at all.
    Missing,
    /// There is a date part but no valid date could be read from it.
    Unreadable,
    /// A date, and the weekday the header named, if any.
    Date {
        date: NaiveDate,
        weekday: Option<Weekday>,
    },
}

/// The calendar date of an instant in New York, where US markets trade.
///
/// `DateTime::date_naive` would panic when the offset pushes an instant at the
/// very edge of chrono's range out of it, so the offset is added with checked
/// arithmetic; such an instant keeps its UTC date.
pub(crate) fn market_date(instant: DateTime<Utc>) -> NaiveDate {
    let utc = instant.naive_utc();
    let offset = New_York.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset).unwrap_or(utc).date()
}

/// The English name of a weekday (`"Thursday"`).
pub(crate) fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Whether a date falls on a Saturday or a Sunday.
pub(crate) fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The pieces found in a date part, before they are combined into a date.
#[derive(Debug, Default)]
struct Pieces {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    weekday: Option<Weekday>,
    full_date: Option<NaiveDate>,
    unknown: bool,
}

/// Reads a header's date part; `reference` is the post's market date, used to
/// choose the year when the header gives none.
pub(crate) fn read_date(text: &str, reference: NaiveDate) -> DateReading {
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|token| token.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|token| !token.is_empty())
        .collect();
    if tokens.is_empty() {
        return DateReading::Missing;
    }
    let mut pieces = Pieces::default();
    for token in tokens {
        read_token(token, &mut pieces);
    }
    let date = match (pieces.full_date, pieces.month, pieces.day) {
        (Some(date), _, _) => Some(date),
        (None, Some(month), Some(day)) => match pieces.year {
            Some(year) => NaiveDate::from_ymd_opt(year, month, day),
            None => nearest_year(month, day, reference),
        },
        _ => None,
    };
    match date {
        Some(date) => DateReading::Date {
            date,
            weekday: pieces.weekday,
        },
        None => DateReading::Unreadable,
    }
}

/// Records what one token of the date part is.
fn read_token(token: &str, pieces: &mut Pieces) {
    let lower = token.to_ascii_lowercase();
    if let Some(month) = month_number(&lower) {
        pieces.month = Some(month);
    } else if let Some(weekday) = weekday_of(&lower) {
        pieces.weekday = Some(weekday);
    } else if let Some(day) = day_number(&lower) {
        pieces.day = Some(day);
    } else if lower.len() == 4 && lower.bytes().all(|b| b.is_ascii_digit()) {
        pieces.year = lower.parse().ok();
    } else if let Some((month, day, year)) = slashed_date(&lower) {
        pieces.month = Some(month);
        pieces.day = Some(day);
        pieces.year = year.or(pieces.year);
    } else if let Some(date) = iso_date(&lower) {
        pieces.full_date = Some(date);
    } else {
        pieces.unknown = true;
    }
}

/// `jun`, `june`, `sept` -> month number. A typo such as `jne` is no month.
fn month_number(lower: &str) -> Option<u32> {
    if lower.len() < MIN_NAME_LEN {
        return None;
    }
    let index = MONTHS.iter().position(|name| name.starts_with(lower))?;
    u32::try_from(index + 1).ok()
}

/// `wed`, `thurs`, `thursday` -> weekday.
fn weekday_of(lower: &str) -> Option<Weekday> {
    if lower.len() < MIN_NAME_LEN {
        return None;
    }
    WEEKDAYS
        .iter()
        .find(|(name, _)| name.starts_with(lower))
        .map(|&(_, weekday)| weekday)
}

/// `15`, `2`, `15th`, `1st` -> day of month.
fn day_number(lower: &str) -> Option<u32> {
    let digits = lower.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &lower[digits..];
    if !(1..=2).contains(&digits) || !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    lower[..digits]
        .parse()
        .ok()
        .filter(|day| (1..=31).contains(day))
}

/// `6/11` or `6/11/25` or `6/11/2025` -> (month, day, year).
fn slashed_date(lower: &str) -> Option<(u32, u32, Option<i32>)> {
    let mut parts = lower.split('/');
    let month = small_number(parts.next()?)?;
    let day = small_number(parts.next()?)?;
    let year = match parts.next() {
        None => None,
        Some(text) => Some(full_year(text)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((month, day, year))
}

/// `2025-06-11` -> date.
fn iso_date(lower: &str) -> Option<NaiveDate> {
    let mut parts = lower.split('-');
    let year = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month = small_number(parts.next()?)?;
    let day = small_number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

/// A one- or two-digit number.
fn small_number(text: &str) -> Option<u32> {
    let ok = (1..=2).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if ok { text.parse().ok() } else { None }
}

/// `25` -> 2025, `2025` -> 2025.
fn full_year(text: &str) -> Option<i32> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.len() {
        2 => text.parse::<i32>().ok().map(|year| 2000 + year),
        4 => text.parse().ok(),
        _ => None,
    }
}

/// The date with this month and day nearest to `reference` (previous, same or
/// next year). `None` when the day does not exist in any of those years.
pub(crate) fn nearest_year(month: u32, day: u32, reference: NaiveDate) -> Option<NaiveDate> {
    let year = reference.year();
    [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|date| date.signed_duration_since(reference).num_days().abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn read(text: &str, reference: NaiveDate) -> DateReading {
        read_date(text, reference)
    }

    #[test]
    fn a_weekday_month_and_day_is_read() {
        assert_eq!(
            read("— Thursday May 15", date(2025, 5, 15)),
            DateReading::Date {
                date: date(2025, 5, 15),
                weekday: Some(Weekday::Thu)
            }
        );
    }

    #[test]
    fn december_31_posted_on_january_1_is_the_previous_year() {
        assert_eq!(
            read("– December 31", date(2026, 1, 1)),
            DateReading::Date {
                date: date(2025, 12, 31),
                weekday: None
            }
        );
    }

    #[test]
    fn january_2_posted_on_december_30_is_the_next_year() {
        assert_eq!(
            nearest_year(1, 2, date(2025, 12, 30)),
            Some(date(2026, 1, 2))
        );
    }

    #[test]
    fn a_typo_month_is_unreadable() {
        assert_eq!(read("— Jne 10", date(2025, 6, 12)), DateReading::Unreadable);
    }

    #[test]
    fn an_empty_date_part_is_missing() {
        assert_eq!(read(" — ", date(2025, 6, 12)), DateReading::Missing);
    }

    #[test]
    fn numeric_dates_are_read() {
        let expected = DateReading::Date {
            date: date(2025, 6, 11),
            weekday: None,
        };
        assert_eq!(read("6/11", date(2025, 6, 11)), expected);
        assert_eq!(read("6/11/25", date(2025, 1, 1)), expected);
        assert_eq!(read("2025-06-11", date(2020, 1, 1)), expected);
        assert_eq!(read("11th June", date(2025, 6, 11)), expected);
    }

    #[test]
    fn february_29_resolves_to_the_nearest_leap_year_or_not_at_all() {
        assert_eq!(
            nearest_year(2, 29, date(2028, 3, 1)),
            Some(date(2028, 2, 29))
        );
        assert_eq!(nearest_year(2, 29, date(2026, 6, 1)), None);
        assert_eq!(nearest_year(2, 30, date(2026, 6, 1)), None);
    }

    #[test]
    fn the_market_date_is_new_york_time() {
        // 02:00 UTC on January 1 is still December 31 in New York.
        let instant = date(2026, 1, 1)
            .and_hms_opt(2, 0, 0)
            .unwrap_or_default()
            .and_utc();
        assert_eq!(market_date(instant), date(2025, 12, 31));
    }
}
