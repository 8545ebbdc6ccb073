//! One trade setup of a ticker block, and the small vocabularies that describe it.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::trigger::Trigger;

/// One setup line of a ticker block, e.g.
/// `🔻 Aggressive Breakdown Below 584.20 (582.00, 579.70, 577.30)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setup {
    /// Position of the setup in its ticker block, starting at 1, in the order posted.
    pub index: u32,
    /// What kind of setup this is.
    pub label: Label,
    /// Which way the trade goes.
    pub direction: Direction,
    /// `Aggressive` / `Conservative`, when the post says so.
    pub strength: Option<Strength>,
    /// The word placed before the trigger (`Near`, `Below`, ...), when there is one.
    pub qualifier: Option<Qualifier>,
    /// The price or zone that activates the setup.
    pub trigger: Trigger,
    /// Profit targets in the order posted; may be empty (a zone often has none).
    pub targets: Vec<Decimal>,
    /// The line as posted, without its line terminator, so a reader can audit the parse.
    pub raw_line: String,
}

impl Setup {
    /// The lowest price of the trigger (see [`Trigger::trigger_low`]).
    #[must_use]
    pub fn trigger_low(&self) -> Decimal {
        self.trigger.trigger_low()
    }

    /// The highest price of the trigger (see [`Trigger::trigger_high`]).
    #[must_use]
    pub fn trigger_high(&self) -> Decimal {
        self.trigger.trigger_high()
    }
}

/// The kind of a setup.
///
/// A `Bounce` line becomes [`Label::BounceZone`] when its trigger is a zone and
/// [`Label::BounceFrom`] when it is a single price, whatever words the post used:
/// `Bounce Zone at 341.10` is a bounce from one level, `Bounce 596.50–598.10` a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Label {
    /// `Rejection [Short] Near X`.
    Rejection,
    /// `Aggressive Breakdown [Below] X`.
    AggressiveBreakdown,
    /// `Conservative Breakdown [Below] X`.
    ConservativeBreakdown,
    /// `Aggressive Breakout [Above] X`.
    AggressiveBreakout,
    /// `Conservative Breakout [Above] X`.
    ConservativeBreakout,
    /// `Breakdown [Below] X` without a strength.
    Breakdown,
    /// `Breakout [Above] X` without a strength.
    Breakout,
    /// A bounce from a single level.
    BounceFrom,
    /// A bounce from a zone.
    BounceZone,
}

impl Label {
    /// The label as serialised (`"AggressiveBreakdown"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejection => "Rejection",
            Self::AggressiveBreakdown => "AggressiveBreakdown",
            Self::ConservativeBreakdown => "ConservativeBreakdown",
            Self::AggressiveBreakout => "AggressiveBreakout",
            Self::ConservativeBreakout => "ConservativeBreakout",
            Self::Breakdown => "Breakdown",
            Self::Breakout => "Breakout",
            Self::BounceFrom => "BounceFrom",
            Self::BounceZone => "BounceZone",
        }
    }
}

/// Which way a setup trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Profits when the price rises: targets lie above the trigger.
    Long,
    /// Profits when the price falls: targets lie below the trigger.
    Short,
}

impl Direction {
    /// `"long"` or `"short"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }
}

/// How early a breakout or breakdown is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// Taken at the first level.
    Aggressive,
    /// Taken once the move has confirmed.
    Conservative,
}

impl Strength {
    /// `"aggressive"` or `"conservative"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aggressive => "aggressive",
            Self::Conservative => "conservative",
        }
    }
}

/// The preposition written before the trigger price.
///
/// It is kept as written (`Under` is not folded into `Below`) so the stored
/// setup says what the post said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifier {
    /// `Near X`.
    Near,
    /// `Below X`.
    Below,
    /// `Above X`.
    Above,
    /// `From X`.
    From,
    /// `At X`.
    At,
    /// `Under X`.
    Under,
    /// `Over X`.
    Over,
}

impl Qualifier {
    /// The qualifier as serialised (`"near"`, `"below"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Near => "near",
            Self::Below => "below",
            Self::Above => "above",
            Self::From => "from",
            Self::At => "at",
            Self::Under => "under",
            Self::Over => "over",
        }
    }
}
