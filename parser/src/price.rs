//! Reading prices exactly, as [`Decimal`]s, out of free text.
//!
//! A price is `digits[.digits]` standing on its own: `4h` (a chart timeframe),
//! `1st` or `RSI2` are not prices, `125%` is not a price, but `130s` ("the
//! 130s") is the level 130. Overlong digit runs (ids, noise) are not prices
//! either, which also keeps every value far inside [`Decimal`]'s range.

use rust_decimal::Decimal;

use crate::text::is_blank;
use crate::trigger::{Trigger, Zone};

/// More integer digits than any quoted price has; longer runs are ids or noise.
const MAX_INT_DIGITS: usize = 12;
/// More decimals than any quoted price has.
const MAX_FRACTION_DIGITS: usize = 10;

/// Byte length of the `digits[.digits]` run at the start of `s` (0 if none).
fn number_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let int = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if int == 0 {
        return 0;
    }
    let fraction = match bytes.get(int) {
        Some(b'.') => bytes
            .iter()
            .skip(int + 1)
            .take_while(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    };
    // A trailing `.` without digits ends a sentence; it is not part of the number.
    if fraction == 0 {
        int
    } else {
        int + 1 + fraction
    }
}

/// Parses the number run at the start of `s`, if it is short enough to be a price.
fn read_number(s: &str) -> Option<(Decimal, usize)> {
    let len = number_len(s);
    if len == 0 {
        return None;
    }
    let token = &s[..len];
    let (int, fraction) = token.split_once('.').unwrap_or((token, ""));
    if int.len() > MAX_INT_DIGITS || fraction.len() > MAX_FRACTION_DIGITS {
        return None;
    }
    token.parse::<Decimal>().ok().map(|value| (value, len))
}

/// Whether what follows a number lets it stand as a price.
fn ends_a_price(after: &str) -> bool {
    let mut chars = after.chars();
    match chars.next() {
        None => true,
        Some('%') => false,
        // "the 130s": a plural of a level, not a unit.
        Some('s' | 'S') => !chars.next().is_some_and(char::is_alphanumeric),
        Some(c) => !c.is_alphanumeric(),
    }
}

/// Reads a price standing at the start of `s`; returns it and its byte length.
pub(crate) fn read_price(s: &str) -> Option<(Decimal, usize)> {
    let (value, len) = read_number(s)?;
    ends_a_price(&s[len..]).then_some((value, len))
}

/// Reads a trigger at the start of `s`: `a`, `a–b`, `a-b`, `a – b` or `a to b`.
/// Returns it and the byte length read.
///
/// An em dash (`—`) does not join a zone: posts use it between clauses, so
/// `Above 500 — 505` must not become a zone.
pub(crate) fn read_trigger(s: &str) -> Option<(Trigger, usize)> {
    let (first, first_len) = read_price(s)?;
    let single = Some((Trigger::Price(first), first_len));
    let after = &s[first_len..];
    let trimmed = after.trim_start_matches(is_blank);
    let Some(joined) = strip_zone_joiner(trimmed) else {
        return single;
    };
    let second_start = joined.trim_start_matches(is_blank);
    let Some((second, second_len)) = read_price(second_start) else {
        return single;
    };
    let consumed = s.len() - second_start.len() + second_len;
    Some((Trigger::Zone(Zone::new(first, second)), consumed))
}

/// Strips the `-`, `–` or `to` that joins the two edges of a zone.
fn strip_zone_joiner(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix(['-', '–']) {
        return Some(rest);
    }
    let rest = s.strip_prefix("to").or_else(|| s.strip_prefix("TO"))?;
    rest.starts_with(is_blank).then_some(rest)
}

/// Every price standing in `s`, in order.
pub(crate) fn scan_prices(s: &str) -> Vec<Decimal> {
    let mut prices = Vec::new();
    let mut prev: Option<char> = None;
    let mut at = 0;
    while let Some(c) = s[at..].chars().next() {
        let glued_to_word = prev.is_some_and(|p| p.is_alphanumeric() || p == '.' || p == '_');
        if !c.is_ascii_digit() || glued_to_word {
            prev = Some(c);
            at += c.len_utf8();
            continue;
        }
        let len = number_len(&s[at..]);
        if let Some((value, _)) = read_price(&s[at..]) {
            prices.push(value);
        }
        // Skip the whole token, including letters glued to it (`4h`, `130s`).
        let after = &s[at + len..];
        let glued = after
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(after.len());
        at += len + glued;
        prev = s[..at].chars().next_back();
    }
    prices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    fn ds(texts: &[&str]) -> Vec<Decimal> {
        texts.iter().map(|t| d(t)).collect()
    }

    #[test]
    fn prices_keep_their_exact_decimal_value() {
        assert_eq!(read_price("586.49 ("), Some((d("586.49"), 6)));
        assert_eq!(read_price("584.20,"), Some((d("584.2"), 6)));
    }

    #[test]
    fn a_timeframe_is_not_a_price_but_a_plural_level_is() {
        assert_eq!(
            scan_prices("momentum on 4h MACD — below 343.20, test 130s"),
            ds(&["343.20", "130"])
        );
    }

    #[test]
    fn percentages_ordinals_and_words_with_digits_are_not_prices() {
        assert_eq!(
            scan_prices("PT 125% on the 1st day, RSI2 at 70."),
            ds(&["70"])
        );
    }

    #[test]
    fn a_sentence_period_does_not_join_a_number() {
        assert_eq!(
            scan_prices("holds 606.75. Then 600"),
            ds(&["606.75", "600"])
        );
    }

    #[test]
    fn overlong_digit_runs_are_not_prices() {
        assert_eq!(scan_prices("<@&983210152759005245> 1.5"), ds(&["1.5"]));
        assert_eq!(scan_prices("1.12345678901234567890"), Vec::<Decimal>::new());
    }

    #[test]
    fn a_range_gives_both_edges_in_written_order() {
        assert_eq!(scan_prices("chop between 337–347"), ds(&["337", "347"]));
    }

    #[test]
    fn a_descending_zone_is_read_low_to_high() {
        let (trigger, len) =
            read_trigger("402.90–398.30 🔼").unwrap_or((Trigger::Price(d("0")), 0));
        assert_eq!(trigger, Trigger::Zone(Zone::new(d("398.30"), d("402.90"))));
        assert_eq!(len, "402.90–398.30".len());
    }

    #[test]
    fn zone_joiners_may_be_spaced_hyphens_or_to() {
        for text in ["496.10-497.50", "496.10 – 497.50", "496.10 to 497.50"] {
            let trigger = read_trigger(text).map(|(t, _)| t);
            assert_eq!(
                trigger,
                Some(Trigger::Zone(Zone::new(d("496.10"), d("497.50")))),
                "{text}"
            );
        }
    }

    #[test]
    fn an_em_dash_does_not_make_a_zone() {
        let trigger = read_trigger("500.00 — 505.00").map(|(t, _)| t);
        assert_eq!(trigger, Some(Trigger::Price(d("500.00"))));
    }
}
