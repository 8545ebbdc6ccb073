//! The parser for "A+ trade setup" messages.
//!
//! An A+ message is a daily post in a trading Discord:
//!
//! ```text
//! A+ Trade Setups — Thursday May 15
//!
//! SPY
//! ❌ Rejection Near 586.49 (584.20, 582.00, 579.70)
//! 🔻 Aggressive Breakdown Below 584.20 (582.00, 579.70, 577.30)
//! 🔄 Bounce Zone 579.40–580.20 🔼 583.00, 586.20, 589.00
//! ⚠️ Bull bias above 584.20, flips below 579.70
//!
//! @everyone
//! ```
//!
//! [`parse`] turns the text of such a message into a [`ParsedMessage`]: the
//! trading day, the ticker blocks with their bias and setups (prices as exact
//! [`rust_decimal::Decimal`]s), free-text lines, and warnings about anything
//! odd. Every other message — chatter, option alerts, embeds — parses as
//! [`Outcome::NotAplus`] with a [`NotAplusReason`]: that is a normal outcome,
//! never an error.
//!
//! The crate is pure: no IO, no clock, no global state. The caller passes the
//! message text (the content, the snapshot content of a forwarded message, or
//! an embed's text) and the post time; the same inputs always give the same
//! output, and no input makes it panic.
//!
//! The formats it accepts come from real posts, whose quirks are documented in
//! the repository's `fixtures/README.md`: ticker lines such as `✅ SPY` or
//! `1) SPY`, U+2028 line ends, `{edited}` markers inside lines, zones written
//! high–low, targets in parentheses or after `Targets:`, biases continued on a
//! line starting with `—`, headers without a year or with a typo.

mod bias;
mod body;
mod calendar;
mod header;
mod lines;
mod mentions;
mod message;
mod price;
mod setup;
mod setup_line;
mod text;
mod ticker;
mod trading_day;
mod trigger;
mod validate;
mod warning;

use chrono::{DateTime, Utc};

pub use message::{
    HeaderVariant, NotAplusReason, Outcome, ParsedMessage, TickerBlock, TradingDayMethod,
};
pub use setup::{Direction, Label, Qualifier, Setup, Strength};
pub use trigger::{Trigger, Zone};
pub use warning::{SetupProblem, Warning};

/// Version of the parsing rules, stored with every outcome so that messages
/// parsed by older rules can be found and parsed again. Bump it whenever the
/// output for some input changes.
pub const PARSER_VERSION: u32 = 1;

/// Parses the text of one message posted at `posted_at`.
///
/// The post time decides the year of a header date that has none (the year
/// nearest to the post) and is the fallback trading day (its calendar date in
/// New York) when the header's date is missing or unreadable.
///
/// The message is an A+ message when its first line with content is an
/// `A+ ... Setups` header that is not a test/draft/check, and at least one
/// setup line under it can be read. Otherwise the outcome says why not:
/// - [`NotAplusReason::Empty`]: nothing but whitespace;
/// - [`NotAplusReason::NoAplusHeader`]: the first line with content (channel
///   pings aside) is not an A+ header;
/// - [`NotAplusReason::TestHeader`]: the header contains `Test`, `Testing`,
///   `Draft` or `Check`;
/// - [`NotAplusReason::NoSetups`]: a real header but no readable setup (the
///   warnings then say what could not be read).
#[must_use]
pub fn parse(text: &str, posted_at: DateTime<Utc>) -> ParsedMessage {
    let mentions_everyone = mentions::mentions_everyone(text);
    if text::is_blank_text(text) {
        return ParsedMessage::not_aplus(NotAplusReason::Empty, mentions_everyone);
    }
    let mut numbered = lines::split_lines(text)
        .enumerate()
        .map(|(i, line)| (i + 1, line));
    let Some((_, first)) = numbered
        .by_ref()
        .find(|(_, line)| text::has_alphanumeric(&mentions::strip_pings(line)))
    else {
        return ParsedMessage::not_aplus(NotAplusReason::NoAplusHeader, mentions_everyone);
    };
    // Discord's "(edited)" pasted after the header must not become its tag.
    let unmarked = text::strip_edit_markers(first);
    let first = mentions::strip_pings(&unmarked);
    let Some(header) = header::recognise(&first) else {
        return ParsedMessage::not_aplus(NotAplusReason::NoAplusHeader, mentions_everyone);
    };
    if header.is_test {
        return ParsedMessage::not_aplus(NotAplusReason::TestHeader, mentions_everyone);
    }

    let day = trading_day::resolve(header.date_text, posted_at);
    let body = body::Body::read(numbered);
    let mut warnings = day.warnings;
    warnings.extend(body.warnings);
    if body.tickers.iter().all(|block| block.setups.is_empty()) {
        let mut message = ParsedMessage::not_aplus(NotAplusReason::NoSetups, mentions_everyone);
        message.warnings = warnings;
        return message;
    }
    ParsedMessage {
        parser_version: PARSER_VERSION,
        outcome: Outcome::Aplus,
        trading_day: Some(day.date),
        trading_day_method: Some(day.method),
        header_variant: Some(header.variant),
        header_tag: header.tag.map(str::to_owned),
        is_weekend: calendar::is_weekend(day.date),
        mentions_everyone,
        free_text_lines: body.free_text_lines,
        tickers: body.tickers,
        warnings,
    }
}
