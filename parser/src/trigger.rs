//! The price that activates a setup: one level, or a zone between two levels.

use rust_decimal::Decimal;
use serde::Serialize;

/// Where a setup triggers.
///
/// A zone is always stored low..high, whatever order the post wrote it in
/// (posts write `402.90–398.30` as often as `398.30–402.90`). Both edges belong
/// to the trigger: the upper edge of a zone is never a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A single price level, e.g. `Breakout Above 586.49`.
    Price(Decimal),
    /// A price band, e.g. `Bounce Zone 398.30–402.90`.
    Zone(Zone),
}

impl Trigger {
    /// The lowest price of the trigger (the price itself for a single level).
    #[must_use]
    pub fn trigger_low(&self) -> Decimal {
        match self {
            Self::Price(price) => *price,
            Self::Zone(zone) => zone.low(),
        }
    }

    /// The highest price of the trigger (the price itself for a single level).
    #[must_use]
    pub fn trigger_high(&self) -> Decimal {
        match self {
            Self::Price(price) => *price,
            Self::Zone(zone) => zone.high(),
        }
    }

    /// The zone, when the trigger is one.
    #[must_use]
    pub fn zone(&self) -> Option<Zone> {
        match self {
            Self::Price(_) => None,
            Self::Zone(zone) => Some(*zone),
        }
    }

    /// The single price, when the trigger is one.
    #[must_use]
    pub fn price(&self) -> Option<Decimal> {
        match self {
            Self::Price(price) => Some(*price),
            Self::Zone(_) => None,
        }
    }
}

/// A price band whose edges are kept in order: `low <= high` always holds.
///
/// The fields are private so that no code path can build an inverted zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Zone {
    low: Decimal,
    high: Decimal,
}

impl Zone {
    /// Builds a zone from its two edges given in any order.
    #[must_use]
    pub fn new(a: Decimal, b: Decimal) -> Self {
        if a <= b {
            Self { low: a, high: b }
        } else {
            Self { low: b, high: a }
        }
    }

    /// The lower edge.
    #[must_use]
    pub fn low(&self) -> Decimal {
        self.low
    }

    /// The upper edge.
    #[must_use]
    pub fn high(&self) -> Decimal {
        self.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn a_zone_given_high_to_low_is_stored_low_to_high() {
        let zone = Zone::new(d("402.90"), d("398.30"));
        assert_eq!(zone.low(), d("398.30"));
        assert_eq!(zone.high(), d("402.90"));
    }

    #[test]
    fn a_single_price_is_both_the_low_and_the_high() {
        let trigger = Trigger::Price(d("586.49"));
        assert_eq!(trigger.trigger_low(), d("586.49"));
        assert_eq!(trigger.trigger_high(), d("586.49"));
        assert_eq!(trigger.zone(), None);
    }
}
