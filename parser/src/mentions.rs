//! `@everyone` / `@here` pings.
//!
//! Both notify the whole channel, which is what `mentions_everyone` records
//! (Discord's own `mention_everyone` flag covers both too).

use std::borrow::Cow;

const CHANNEL_PINGS: [&str; 2] = ["@everyone", "@here"];

/// Byte ranges of whole-word channel pings in `text`.
fn ping_ranges(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    CHANNEL_PINGS.iter().flat_map(move |ping| {
        text.match_indices(ping)
            .map(|(at, _)| (at, at + ping.len()))
            // `@hereford` is not a ping.
            .filter(|&(_, end)| !text[end..].starts_with(char::is_alphanumeric))
    })
}

/// Whether the text pings `@everyone` or `@here`.
pub(crate) fn mentions_everyone(text: &str) -> bool {
    ping_ranges(text).next().is_some()
}

/// The line without its channel pings.
pub(crate) fn strip_pings(line: &str) -> Cow<'_, str> {
    if !line.contains('@') {
        return Cow::Borrowed(line);
    }
    let mut ranges: Vec<(usize, usize)> = ping_ranges(line).collect();
    if ranges.is_empty() {
        return Cow::Borrowed(line);
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut from = 0;
    for (start, end) in ranges {
        // Pings cannot overlap (each starts with `@` and contains no other `@`),
        // but `max` keeps the slicing in bounds regardless.
        out.push_str(&line[from..start.max(from)]);
        from = from.max(end);
    }
    out.push_str(&line[from..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_and_here_are_channel_pings_but_lookalikes_are_not() {
        assert!(mentions_everyone("text\n@everyone\n❤️=🐐"));
        assert!(mentions_everyone("BTO 1 COIN @here (Swing)"));
        assert!(!mentions_everyone(
            "@hereford cattle <@&983210152759005245>"
        ));
    }

    #[test]
    fn pings_are_removed_from_a_line() {
        assert_eq!(strip_pings("GL @everyone!"), "GL !");
        assert_eq!(strip_pings("@everyone"), "");
        assert_eq!(strip_pings("mail me @ home"), "mail me @ home");
    }
}
