//! The result of parsing one message.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::setup::Setup;
use crate::warning::Warning;

/// Everything the parser read from one message.
///
/// Invariants (checked by the property tests):
/// - a not-A+ message has no trading day, header data or tickers;
/// - an A+ message has a trading day, its method, a header variant and at
///   least one setup;
/// - in each ticker block the setup indexes run 1, 2, 3, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedMessage {
    /// The [`crate::PARSER_VERSION`] that produced this result.
    pub parser_version: u32,
    /// Whether this is an A+ setup message, and if not, why.
    pub outcome: Outcome,
    /// The trading day the setups are for.
    pub trading_day: Option<NaiveDate>,
    /// How [`Self::trading_day`] was found.
    pub trading_day_method: Option<TradingDayMethod>,
    /// `A+ Trade Setups` or `A+ Scalp Trade Setups`.
    pub header_variant: Option<HeaderVariant>,
    /// The text in parentheses after the header date, e.g. `Scalps`.
    pub header_tag: Option<String>,
    /// Whether the trading day is a Saturday or a Sunday (kept, only flagged).
    pub is_weekend: bool,
    /// Whether the text pings `@everyone` or `@here`.
    pub mentions_everyone: bool,
    /// Lines of prose that belong to no ticker block's structure.
    pub free_text_lines: Vec<String>,
    /// The ticker blocks in the order posted.
    pub tickers: Vec<TickerBlock>,
    /// What looked wrong but did not stop the parse.
    pub warnings: Vec<Warning>,
}

impl ParsedMessage {
    /// A message that is not an A+ setup message.
    #[must_use]
    pub fn not_aplus(reason: NotAplusReason, mentions_everyone: bool) -> Self {
        Self {
            parser_version: crate::PARSER_VERSION,
            outcome: Outcome::NotAplus(reason),
            trading_day: None,
            trading_day_method: None,
            header_variant: None,
            header_tag: None,
            is_weekend: false,
            mentions_everyone,
            free_text_lines: Vec::new(),
            tickers: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether this is an A+ setup message.
    #[must_use]
    pub fn is_aplus(&self) -> bool {
        matches!(self.outcome, Outcome::Aplus)
    }

    /// Why the message is not an A+ setup message, if it is not.
    #[must_use]
    pub fn reason(&self) -> Option<NotAplusReason> {
        match self.outcome {
            Outcome::Aplus => None,
            Outcome::NotAplus(reason) => Some(reason),
        }
    }

    /// The number of setups over all ticker blocks.
    #[must_use]
    pub fn setup_count(&self) -> usize {
        self.tickers.iter().map(|block| block.setups.len()).sum()
    }
}

/// Whether a message is an A+ setup message.
///
/// Serialised as `{"kind": "aplus"}` or `{"kind": "not_aplus", "reason": "test_header"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// An A+ setup message with at least one setup.
    Aplus,
    /// Any other message. This is a normal outcome, not an error: trading
    /// channels carry chatter and other alert formats too.
    NotAplus(NotAplusReason),
}

/// Why a message is not an A+ setup message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAplusReason {
    /// The text is empty or only whitespace.
    Empty,
    /// The first line with content is not an `A+ ... Setups` header.
    NoAplusHeader,
    /// The header says `Test`, `Testing`, `Draft` or `Check`: a rehearsal, not real setups.
    TestHeader,
    /// The header is real but no setup line could be read under it.
    NoSetups,
}

impl NotAplusReason {
    /// The reason as serialised (`"no_aplus_header"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NoAplusHeader => "no_aplus_header",
            Self::TestHeader => "test_header",
            Self::NoSetups => "no_setups",
        }
    }
}

/// How the trading day was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TradingDayMethod {
    /// From the header's date, with the year nearest to the post time when the
    /// header gives none.
    #[serde(rename = "header")]
    Header,
    /// The header's date was missing or unreadable: the calendar date of the
    /// post time in New York (`America/New_York`), where US markets trade.
    /// Serialised as `fallback_post_time_ET`, the name the stored outcomes use.
    #[serde(rename = "fallback_post_time_ET")]
    FallbackPostTimeEt,
}

impl TradingDayMethod {
    /// The method as serialised (`"header"` or `"fallback_post_time_ET"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::FallbackPostTimeEt => "fallback_post_time_ET",
        }
    }
}

/// Which A+ header the message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderVariant {
    /// `A+ Trade Setups`.
    Standard,
    /// `A+ Scalp Trade Setups`.
    Scalp,
}

impl HeaderVariant {
    /// `"standard"` or `"scalp"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Scalp => "scalp",
        }
    }
}

/// The setups posted under one ticker line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickerBlock {
    /// The ticker symbol in upper case, without markers (`✅ SPY` gives `SPY`).
    pub ticker: String,
    /// The bias text without its `⚠️` and `Bias:` prefix; continuation lines
    /// starting with `—` are joined with a space.
    pub bias: Option<String>,
    /// Every price mentioned in the bias, in order, each once.
    pub bias_levels: Vec<Decimal>,
    /// The setups, indexed from 1 in the order posted.
    pub setups: Vec<Setup>,
}
