//! Retrying: exponential backoff with jitter, and [`until_ok`], the one loop
//! that retries an operation until it succeeds or the service is stopping.
//!
//! Every "retry until the database answers" in the services goes through
//! [`until_ok`], so they all stop promptly on shutdown and log the same way
//! ([`LogPolicy`]): the first failure at `warn`, later ones as the policy
//! says, and the recovery once.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng as _;
use tokio_util::sync::CancellationToken;

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

/// Which failures of a retried operation are logged at `warn`; the others
/// go to `debug`. A success after failures is logged at `info` once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPolicy {
    /// Only the first failure of a run of failures.
    First,
    /// The first failure, then every `n`th.
    Every(u32),
}

impl LogPolicy {
    /// Whether failure number `failures` (from 1) is logged at `warn`.
    pub fn warns(self, failures: u32) -> bool {
        match self {
            Self::First => failures == 1,
            Self::Every(n) => failures == 1 || (n > 0 && failures.is_multiple_of(n)),
        }
    }
}

/// Runs `op` until it returns `Ok`, waiting `backoff.delay(n)` after the
/// `n`th failure; `None` when `shutdown` fires first (also while `op` runs:
/// the operation is dropped). `what` names the operation in the log lines,
/// which follow `log`.
pub async fn until_ok<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    log: LogPolicy,
    shutdown: &CancellationToken,
    mut op: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            result = op() => result,
        };
        match result {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(failures, "{what}: succeeded after retrying");
                }
                return Some(value);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                if log.warns(failures) {
                    tracing::warn!(failures, error = %error, "{what} failed; retrying");
                } else {
                    tracing::debug!(failures, error = %error, "{what} failed; retrying");
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff.delay(failures)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_always_warns_and_every_nth_after_it() {
        let first: Vec<u32> = (1..=5).filter(|&n| LogPolicy::First.warns(n)).collect();
        assert_eq!(first, [1]);
        let every: Vec<u32> = (1..=45)
            .filter(|&n| LogPolicy::Every(20).warns(n))
            .collect();
        assert_eq!(every, [1, 20, 40]);
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_retries_until_the_operation_succeeds() {
        let shutdown = CancellationToken::new();
        let mut calls = 0;
        let got = until_ok(
            "test op",
            Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
            LogPolicy::First,
            &shutdown,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 4 {
                        Err(format!("failure {n}"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(got, Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_gives_up_when_shutdown_fires_during_the_wait() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.cancel();
        });
        let got: Option<()> = until_ok(
            "never succeeds",
            Backoff::new(Duration::from_secs(1), Duration::from_secs(1)),
            LogPolicy::Every(20),
            &shutdown,
            || async { Err::<(), _>("down") },
        )
        .await;
        assert_eq!(got, None);
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_drops_an_operation_still_running_at_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let got = until_ok(
            "hangs",
            Backoff::new(Duration::from_secs(1), Duration::from_secs(1)),
            LogPolicy::First,
            &shutdown,
            std::future::pending::<Result<(), &str>>,
        )
        .await;
        assert_eq!(got, None);
    }

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
