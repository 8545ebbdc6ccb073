//! Character classes and line cleaning shared by the line readers.

use std::borrow::Cow;

/// Markers that Discord clients paste into copied text when a message was edited.
const EDIT_MARKERS: [&str; 2] = ["{edited}", "(edited)"];

/// Characters that render as nothing: emoji variation selectors, joiners,
/// zero-width spaces, byte-order marks and soft hyphens.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{FE0E}' | '\u{FE0F}' | '\u{AD}'
    )
}

/// Whether a character is whitespace or invisible.
pub(crate) fn is_blank(c: char) -> bool {
    c.is_whitespace() || is_invisible(c)
}

/// Trims whitespace and invisible characters from both ends.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(is_blank)
}

/// Whether the text holds nothing but whitespace and invisible characters.
pub(crate) fn is_blank_text(s: &str) -> bool {
    s.chars().all(is_blank)
}

/// Whether the text holds at least one letter or digit.
pub(crate) fn has_alphanumeric(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// Removes `{edited}` / `(edited)` markers wherever they sit in the line.
pub(crate) fn strip_edit_markers(line: &str) -> Cow<'_, str> {
    if !line.contains('{') && !line.contains('(') {
        return Cow::Borrowed(line);
    }
    let mut out = Cow::Borrowed(line);
    for marker in EDIT_MARKERS {
        while let Some(at) = find_ignore_ascii_case(&out, marker) {
            let mut owned = out.into_owned();
            owned.replace_range(at..at + marker.len(), "");
            out = Cow::Owned(owned);
        }
    }
    out
}

/// Byte offset of the first ASCII-case-insensitive match of an ASCII `needle`.
pub(crate) fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let pin = needle.as_bytes();
    if pin.is_empty() {
        return None;
    }
    // A match of an ASCII needle always starts and ends on char boundaries,
    // because ASCII bytes never occur inside a multi-byte UTF-8 sequence.
    haystack
        .as_bytes()
        .windows(pin.len())
        .position(|window| window.eq_ignore_ascii_case(pin))
}

/// Strips what may precede a line's real content: emoji, check marks, bullets,
/// Markdown and list numbering such as `1)` or `2.`.
pub(crate) fn strip_leading_marker(line: &str) -> &str {
    let line = line.trim_start_matches(|c: char| !c.is_alphanumeric());
    match strip_list_number(line) {
        Some(rest) => rest.trim_start_matches(|c: char| !c.is_alphanumeric()),
        None => line,
    }
}

/// Strips `1)` / `2.` / `12:` numbering followed by whitespace. A price such as
/// `596.90` is not numbering: the punctuation must be followed by a blank.
fn strip_list_number(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&digits) {
        return None;
    }
    let rest = line[digits..].strip_prefix([')', '.', ':'])?;
    rest.starts_with(is_blank).then_some(rest)
}

/// Whether the first visible character is a dash (`—`, `–` or `-`).
pub(crate) fn starts_with_dash(line: &str) -> bool {
    matches!(trim(line).chars().next(), Some('—' | '–' | '-'))
}

/// Whether `word` equals one of `words`, ignoring ASCII case.
pub(crate) fn is_one_of(word: &str, words: &[&str]) -> bool {
    words.iter().any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_marker_inside_a_line_is_removed() {
        let line = "🔻 Aggressive Breakdown Below 133.30 🔻 131.88, 130.41  {edited}";
        assert_eq!(
            strip_edit_markers(line),
            "🔻 Aggressive Breakdown Below 133.30 🔻 131.88, 130.41  "
        );
        assert_eq!(strip_edit_markers("a (Edited) b"), "a  b");
    }

    #[test]
    fn list_numbering_and_check_marks_are_stripped() {
        assert_eq!(strip_leading_marker("1) SPY"), "SPY");
        assert_eq!(strip_leading_marker("2. SPY"), "SPY");
        assert_eq!(strip_leading_marker("✅ SPY"), "SPY");
        assert_eq!(strip_leading_marker("**SPY**"), "SPY**");
    }

    #[test]
    fn a_price_is_not_list_numbering() {
        assert_eq!(strip_leading_marker("12.5 up"), "12.5 up");
        assert_eq!(strip_leading_marker("596.90 🔼"), "596.90 🔼");
    }

    #[test]
    fn invisible_characters_are_trimmed() {
        assert_eq!(trim("\u{FEFF} SPY\u{200B} \u{2028}"), "SPY");
    }
}
