//! Things the parser noticed but did not let stop the parse.
//!
//! A warning never removes data silently: either the data is kept and the
//! warning says what looks wrong about it, or the line could not be read and
//! the warning carries the line so it can be inspected.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

/// One remark about a parsed message. Line numbers count from 1 and include the
/// header line; a line break written as U+2028 (optionally followed by `\n`)
/// counts as one break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// The header has no date part; the trading day is the post date in New York.
    HeaderDateMissing,
    /// The header's date part could not be read (e.g. a typo in the month); the
    /// trading day is the post date in New York.
    HeaderDateUnreadable {
        /// The date part as written.
        date_text: String,
    },
    /// The header names a weekday that is not the weekday of its date.
    WeekdayMismatch {
        /// The weekday the header names, in English (`"Thursday"`).
        header_weekday: String,
        /// The trading day the header resolved to.
        trading_day: NaiveDate,
    },
    /// A line looks like a setup but could not be read; it is not stored as a setup.
    UnparseableSetupLine {
        /// Line number in the message.
        line: usize,
        /// The line as written.
        text: String,
        /// What stopped the parse.
        problem: SetupProblem,
    },
    /// A setup appeared before any ticker line, so it belongs to no ticker.
    SetupWithoutTicker {
        /// Line number in the message.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A target is not beyond the trigger in the setup's direction (for a long
    /// setup it is not above the trigger's high, for a short one not below its
    /// low). The setup is kept as posted.
    TargetNotBeyondTrigger {
        /// Line number in the message.
        line: usize,
        /// The ticker of the setup.
        ticker: String,
        /// The setup's index in its ticker block.
        setup_index: u32,
        /// The offending target.
        target: Decimal,
    },
    /// The setup line names a direction that contradicts its label (e.g.
    /// `Breakout Short`); the label's direction is kept.
    DirectionConflict {
        /// Line number in the message.
        line: usize,
        /// The direction word as written.
        word: String,
    },
    /// Words after the trigger that are not targets were ignored.
    IgnoredText {
        /// Line number in the message.
        line: usize,
        /// The part of the line after the trigger.
        text: String,
    },
    /// A ticker appears twice; the second block's setups continue the first block.
    DuplicateTicker {
        /// Line number of the repeated ticker line.
        line: usize,
        /// The ticker.
        ticker: String,
    },
}

/// Why a setup-looking line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupProblem {
    /// The line does not start with a known setup kind (Rejection, Breakout, ...).
    UnknownLabel,
    /// An unexpected word stands between the label and the trigger price.
    UnexpectedWord,
    /// No price follows the label.
    MissingTrigger,
}
