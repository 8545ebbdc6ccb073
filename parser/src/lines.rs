//! Splitting a message into lines.
//!
//! Discord clients and copy-pastes end lines with `\n`, `\r\n`, a bare U+2028
//! (LINE SEPARATOR) or U+2028 followed by `\n`. All of them are one line break
//! here, so line numbers match what a reader sees and no phantom blank line
//! appears between a setup and its continuation.

/// Iterator over the lines of a text, without their terminators.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    rest: Option<&'a str>,
}

/// Splits `text` into lines, treating `\n`, `\r`, U+2028, U+2029 and U+0085 as
/// breaks and a non-`\n` break directly followed by `\n` as a single break.
pub(crate) fn split_lines(text: &str) -> Lines<'_> {
    Lines { rest: Some(text) }
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{85}')
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let Some((at, brk)) = rest.char_indices().find(|&(_, c)| is_break(c)) else {
            self.rest = None;
            return Some(rest);
        };
        let line = &rest[..at];
        let mut after = &rest[at + brk.len_utf8()..];
        if brk != '\n' {
            // `\r\n` and `U+2028\n` are one break, not two.
            after = after.strip_prefix('\n').unwrap_or(after);
        }
        self.rest = Some(after);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Vec<&str> {
        split_lines(text).collect()
    }

    #[test]
    fn a_line_separator_before_a_newline_is_one_break() {
        assert_eq!(
            collect("SPY\u{2028}\n❌ Rejection"),
            ["SPY", "❌ Rejection"]
        );
    }

    #[test]
    fn a_bare_line_separator_is_a_break() {
        assert_eq!(collect("SPY\u{2028}TSLA"), ["SPY", "TSLA"]);
    }

    #[test]
    fn crlf_is_one_break_and_blank_lines_are_kept() {
        assert_eq!(collect("a\r\n\r\nb"), ["a", "", "b"]);
    }

    #[test]
    fn text_without_breaks_is_one_line() {
        assert_eq!(collect("just one"), ["just one"]);
        assert_eq!(collect(""), [""]);
    }
}
