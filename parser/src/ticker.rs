//! Recognising the line that opens a ticker block.

use crate::text::{is_blank, strip_leading_marker};

/// Longest ticker symbol accepted (`GOOGL` has five letters, some have six).
const MAX_SYMBOL_LEN: usize = 6;
/// Longest share-class suffix (`BRK.B`).
const MAX_CLASS_LEN: usize = 2;

/// Reads a ticker line — `SPY`, `SPY ` (trailing space), `✅ SPY`, `1) SPY`,
/// `2. SPY`, `$SPY`, `**SPY**`, `SPY:` or `BRK.B` — and returns the symbol.
///
/// Only upper-case symbols alone on their line count, so prose such as
/// `Also eyes on SAIL` never opens a block.
pub(crate) fn read_ticker(line: &str) -> Option<&str> {
    let symbol = strip_leading_marker(line)
        .trim_end_matches(|c: char| is_blank(c) || matches!(c, '*' | '_' | '~' | ':'));
    is_symbol(symbol).then_some(symbol)
}

fn is_symbol(text: &str) -> bool {
    let (root, class) = match text.split_once('.') {
        Some((root, class)) => (root, Some(class)),
        None => (text, None),
    };
    let upper = |part: &str, max: usize| {
        (1..=max).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_uppercase())
    };
    upper(root, MAX_SYMBOL_LEN) && class.is_none_or(|class| upper(class, MAX_CLASS_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ticker_line_style_of_the_real_posts_is_read() {
        for line in [
            "SPY", "SPY ", "SPY  ", "✅ SPY", "1) SPY", "2. SPY", "$SPY", "**SPY**", "SPY:",
        ] {
            assert_eq!(read_ticker(line), Some("SPY"), "{line:?}");
        }
        assert_eq!(read_ticker("BRK.B"), Some("BRK.B"));
    }

    #[test]
    fn prose_lowercase_and_long_words_are_not_tickers() {
        for line in [
            "Also eyes on SAIL",
            "spy",
            "SPYSPYSPY",
            "@everyone",
            "❤️=🐐",
            "SPY 500",
            "A+",
        ] {
            assert_eq!(read_ticker(line), None, "{line:?}");
        }
    }
}
