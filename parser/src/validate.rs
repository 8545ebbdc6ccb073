//! Checking that targets lie beyond the trigger in the setup's direction.
//!
//! In every real post each target is beyond the trigger; one that is not is
//! almost always a typo or a misread line, so it is reported. The setup is
//! still kept as posted: the parser records, it does not correct.

use rust_decimal::Decimal;

use crate::setup::Direction;
use crate::trigger::Trigger;

/// The targets that are not beyond the trigger: for a long setup, not above
/// the trigger's high; for a short one, not below its low.
pub(crate) fn targets_not_beyond(
    direction: Direction,
    trigger: &Trigger,
    targets: &[Decimal],
) -> Vec<Decimal> {
    targets
        .iter()
        .copied()
        .filter(|&target| match direction {
            Direction::Long => target <= trigger.trigger_high(),
            Direction::Short => target >= trigger.trigger_low(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Zone;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn long_targets_must_be_above_the_zone_high() {
        let zone = Trigger::Zone(Zone::new(d("398.30"), d("402.90")));
        let bad = targets_not_beyond(
            Direction::Long,
            &zone,
            &[d("402.90"), d("410.10"), d("400")],
        );
        assert_eq!(bad, [d("402.90"), d("400")]);
    }

    #[test]
    fn short_targets_must_be_below_the_trigger() {
        let price = Trigger::Price(d("586.49"));
        let bad = targets_not_beyond(
            Direction::Short,
            &price,
            &[d("584.20"), d("586.49"), d("590")],
        );
        assert_eq!(bad, [d("586.49"), d("590")]);
    }
}
