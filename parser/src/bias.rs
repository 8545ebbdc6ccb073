//! Recognising a ticker's bias line and its continuation lines.
//!
//! A bias is written `⚠️ Bias: text`, `⚠️ Bias — text`, or just `⚠️ text`
//! (the word "Bias" is often left out), and may go on over following lines
//! that start with a dash: `— breakdown retest is more likely`.

use crate::text::{is_blank, trim};

/// The warning sign that opens most bias lines.
const BIAS_SIGN: char = '⚠';

/// Reads a bias line and returns its text without the sign and the `Bias:` prefix.
pub(crate) fn read_bias(line: &str) -> Option<&str> {
    let line = trim(line);
    if let Some(body) = line.strip_prefix(BIAS_SIGN) {
        let body = body.trim_start_matches(is_blank);
        return Some(strip_bias_word(body).unwrap_or(body));
    }
    // Without the sign, only an explicit `Bias:` / `Bias —` makes a bias line.
    strip_bias_word(line.trim_start_matches(|c: char| !c.is_alphanumeric()))
}

/// Strips a leading `Bias` followed by `:` or a dash; `None` if there is none.
fn strip_bias_word(text: &str) -> Option<&str> {
    let head = text.get(..4)?;
    if !head.eq_ignore_ascii_case("bias") {
        return None;
    }
    let after = text[4..].trim_start_matches(is_blank);
    if !after.starts_with([':', '—', '–', '-']) {
        return None;
    }
    Some(trim(after.trim_start_matches(|c: char| {
        is_blank(c) || matches!(c, ':' | '—' | '–' | '-')
    })))
}

/// The text of a continuation line, without its leading dash.
pub(crate) fn continuation_text(line: &str) -> &str {
    trim(trim(line).trim_start_matches(['—', '–', '-']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_and_the_bias_word_are_stripped() {
        assert_eq!(read_bias("⚠️ Bias — price is weak"), Some("price is weak"));
        assert_eq!(
            read_bias("⚠️ Bias: Leaning bearish under 135.95 "),
            Some("Leaning bearish under 135.95")
        );
        assert_eq!(read_bias("Bias: up"), Some("up"));
    }

    #[test]
    fn a_bias_line_without_the_word_bias_keeps_all_its_text() {
        assert_eq!(
            read_bias("⚠️ Bull bias above 584.20, flips below 579.70"),
            Some("Bull bias above 584.20, flips below 579.70")
        );
        assert_eq!(read_bias("⚠️ Bias above 500"), Some("Bias above 500"));
    }

    #[test]
    fn prose_mentioning_bias_is_not_a_bias_line() {
        assert_eq!(read_bias("Bearish bias under 368.11"), None);
        assert_eq!(read_bias("Biased traders"), None);
    }

    #[test]
    fn a_continuation_loses_its_dash() {
        assert_eq!(
            continuation_text("—  breakdown retest is more likely"),
            "breakdown retest is more likely"
        );
    }
}
