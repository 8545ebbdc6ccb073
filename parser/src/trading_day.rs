//! Deciding which trading day a message is for.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::calendar::{DateReading, market_date, read_date, weekday_name};
use crate::message::TradingDayMethod;
use crate::warning::Warning;

/// The trading day of a message and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TradingDay {
    pub date: NaiveDate,
    pub method: TradingDayMethod,
    pub warnings: Vec<Warning>,
}

/// The header's date (year nearest to the post time when none is given), or
/// the post's calendar date in New York when the header has no readable date.
pub(crate) fn resolve(date_text: &str, posted_at: DateTime<Utc>) -> TradingDay {
    let reference = market_date(posted_at);
    let fallback = |warning| TradingDay {
        date: reference,
        method: TradingDayMethod::FallbackPostTimeEt,
        warnings: vec![warning],
    };
    match read_date(date_text, reference) {
        DateReading::Date { date, weekday } => {
            let warnings = weekday
                .filter(|&named| named != date.weekday())
                .map(|named| Warning::WeekdayMismatch {
                    header_weekday: weekday_name(named).to_owned(),
                    trading_day: date,
                })
                .into_iter()
                .collect();
            TradingDay {
                date,
                method: TradingDayMethod::Header,
                warnings,
            }
        }
        DateReading::Missing => fallback(Warning::HeaderDateMissing),
        DateReading::Unreadable => fallback(Warning::HeaderDateUnreadable {
            date_text: date_text
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap_or_default()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn a_header_date_wins_over_a_later_post_date() {
        let day = resolve(" — Friday May 16", at("2025-05-17T15:11:18Z"));
        assert_eq!(
            (day.date, day.method),
            (date(2025, 5, 16), TradingDayMethod::Header)
        );
        assert!(day.warnings.is_empty());
    }

    #[test]
    fn a_typo_month_falls_back_to_the_post_date_in_new_york() {
        let day = resolve(" — Jne 10", at("2025-06-12T14:30:00Z"));
        assert_eq!(day.date, date(2025, 6, 12));
        assert_eq!(day.method, TradingDayMethod::FallbackPostTimeEt);
        assert_eq!(
            day.warnings,
            [Warning::HeaderDateUnreadable {
                date_text: "Jne 10".to_owned()
            }]
        );
    }

    #[test]
    fn the_fallback_uses_new_york_not_utc_dates() {
        // 01:30 UTC on June 13 is the evening of June 12 in New York.
        let day = resolve("", at("2025-06-13T01:30:00Z"));
        assert_eq!(day.date, date(2025, 6, 12));
        assert_eq!(day.warnings, [Warning::HeaderDateMissing]);
    }

    #[test]
    fn a_wrong_weekday_is_reported_but_the_date_is_kept() {
        let day = resolve(" — Monday May 15", at("2025-05-15T13:00:00Z"));
        assert_eq!(day.date, date(2025, 5, 15));
        assert_eq!(
            day.warnings,
            [Warning::WeekdayMismatch {
                header_weekday: "Monday".to_owned(),
                trading_day: date(2025, 5, 15)
            }]
        );
    }
}
