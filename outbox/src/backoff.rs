//! Exponential backoff with jitter.

use std::time::Duration;

use rand::Rng as _;

/// Delays that double from `base` up to `max`, each drawn between half and
/// all of its nominal value so that many clients retrying together spread out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Nominal delay before the first retry.
    pub base: Duration,
    /// Largest nominal delay.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The nominal (jitter-free) delay before retry number `attempt` (from 1).
    pub fn nominal(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let factor = 2f64.powi(exponent as i32);
        let nominal = self.base.as_secs_f64() * factor;
        Duration::from_secs_f64(nominal.min(self.max.as_secs_f64()))
    }

    /// The delay before retry number `attempt` (from 1), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        let half = nominal / 2;
        half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_keep_within_their_jitter() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(backoff.nominal(1), Duration::from_secs(1));
        assert_eq!(backoff.nominal(2), Duration::from_secs(2));
        assert_eq!(backoff.nominal(4), Duration::from_secs(8));
        assert_eq!(backoff.nominal(5), Duration::from_secs(10));
        assert_eq!(backoff.nominal(500), Duration::from_secs(10));
        for attempt in 1..20 {
            let d = backoff.delay(attempt);
            let n = backoff.nominal(attempt);
            assert!(
                d >= n / 2 && d <= n,
                "attempt {attempt}: {d:?} outside {n:?}"
            );
        }
    }
}
