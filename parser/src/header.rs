//! Recognising the `A+ [Scalp] [Trade] Setups — <date> [(tag)]` header line.

use crate::message::HeaderVariant;
use crate::text::{is_blank, is_one_of, trim};

/// Words that mark a rehearsal post rather than real setups.
const TEST_WORDS: [&str; 5] = ["test", "tests", "testing", "draft", "check"];

/// Words that make a header the scalp variant.
const SCALP_WORDS: [&str; 2] = ["scalp", "scalps"];

/// Words that end the header's title.
const SETUP_WORDS: [&str; 2] = ["setup", "setups"];

/// At most this many words stand between `A+` and `Setups` (`Scalp Trade`), so
/// a chat line that happens to start with `A+` and mention setups much later
/// is not taken for a header.
const MAX_TITLE_WORDS: usize = 3;

/// A recognised A+ header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    /// Standard or scalp.
    pub variant: HeaderVariant,
    /// Text in the last pair of parentheses after the title, e.g. `Scalps`.
    pub tag: Option<&'a str>,
    /// Whether the header marks a test/draft post.
    pub is_test: bool,
    /// The date part: what follows the title, without the tag.
    pub date_text: &'a str,
}

/// Recognises an A+ header, or returns `None` for any other line.
pub(crate) fn recognise(line: &str) -> Option<Header<'_>> {
    // Leading emoji or Markdown (`**A+ ...`) may precede the header.
    let line = line.trim_start_matches(|c: char| !c.is_alphanumeric());
    let after_a = line.strip_prefix(['A', 'a'])?;
    let after_plus = after_a.trim_start_matches(is_blank).strip_prefix('+')?;
    let (title_words, rest) = split_title(after_plus)?;
    let (date_text, tag) = split_tag(rest);
    let is_test = words(line).any(|word| is_one_of(word, &TEST_WORDS));
    let variant = if title_words.iter().any(|word| is_one_of(word, &SCALP_WORDS)) {
        HeaderVariant::Scalp
    } else {
        HeaderVariant::Standard
    };
    Some(Header {
        variant,
        tag,
        is_test,
        date_text,
    })
}

/// Splits the text after `A+` into the title words before `Setups` and the
/// rest of the line after it.
fn split_title(text: &str) -> Option<(Vec<&str>, &str)> {
    let mut title = Vec::new();
    for (start, word) in word_spans(text) {
        if is_one_of(word, &SETUP_WORDS) {
            return Some((title, &text[start + word.len()..]));
        }
        if title.len() == MAX_TITLE_WORDS {
            return None;
        }
        title.push(word);
    }
    None
}

/// Splits off the tag in the last pair of parentheses: `Wed May 21 (Scalps)`.
fn split_tag(rest: &str) -> (&str, Option<&str>) {
    let Some(open) = rest.rfind('(') else {
        return (rest, None);
    };
    let inner_and_after = &rest[open + 1..];
    let inner = inner_and_after
        .find(')')
        .map_or(inner_and_after, |close| &inner_and_after[..close]);
    let tag = trim(inner);
    (&rest[..open], (!tag.is_empty()).then_some(tag))
}

/// The alphabetic words of a text.
fn words(text: &str) -> impl Iterator<Item = &str> {
    word_spans(text).map(|(_, word)| word)
}

/// The alphabetic words of a text with their byte offsets.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text[from..].find(char::is_alphabetic)?;
        let tail = &text[start..];
        let len = tail
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(tail.len());
        from = start + len;
        Some((start, &tail[..len]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(line: &str) -> Option<Header<'_>> {
        recognise(line)
    }

    #[test]
    fn the_standard_header_is_recognised_with_its_date_part() {
        let h = header("A+ Trade Setups — Thursday May 15");
        assert_eq!(
            h,
            Some(Header {
                variant: HeaderVariant::Standard,
                tag: None,
                is_test: false,
                date_text: " — Thursday May 15",
            })
        );
    }

    #[test]
    fn the_scalp_header_with_a_period_after_setups_is_recognised() {
        let h = header("A+ Scalp Trade Setups. — Wed Jun 11");
        assert_eq!(h.as_ref().map(|h| h.variant), Some(HeaderVariant::Scalp));
        assert_eq!(h.map(|h| h.date_text), Some(". — Wed Jun 11"));
    }

    #[test]
    fn a_tag_in_parentheses_is_split_off_and_does_not_change_the_variant() {
        let h = header("A+ Trade Setups — Wed May 21 (Scalps)");
        assert_eq!(h.as_ref().map(|h| h.tag), Some(Some("Scalps")));
        assert_eq!(h.as_ref().map(|h| h.variant), Some(HeaderVariant::Standard));
        assert_eq!(h.map(|h| h.date_text), Some(" — Wed May 21 "));
    }

    #[test]
    fn test_draft_and_check_headers_are_flagged() {
        for line in [
            "A+ Test Setups — Jun 10",
            "A+ Trade Setups — Jun 10 (draft)",
            "A+ Check Setups",
        ] {
            assert_eq!(header(line).map(|h| h.is_test), Some(true), "{line}");
        }
    }

    #[test]
    fn markdown_and_emoji_before_the_header_are_allowed() {
        assert!(header("**A+ Trade Setups — Jun 2**").is_some());
        assert!(header("🚨 A+ Scalp Trade Setups").is_some());
    }

    #[test]
    fn lines_that_only_start_with_a_plus_are_not_headers() {
        assert_eq!(
            header("A+ day today, going to post some setups later"),
            None
        );
        assert_eq!(header("Also eyes on SAIL"), None);
        assert_eq!(header("A+ Trade Ideas — Jun 2"), None);
        assert_eq!(header("Any setups today?"), None);
    }
}
