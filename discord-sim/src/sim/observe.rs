//! Observing the simulator: counters, sessions, the REST call log, the ground truth, and waiting
//! for a condition on them.

use std::time::{Duration, Instant};

use super::Sim;
use crate::error::WaitTimeout;
use crate::ground_truth::GroundTruth;
use crate::rest_log::RestCall;
use crate::session::SessionInfo;
use crate::state::State;
use crate::stats::SimStats;

impl Sim {
    /// Current counters.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.shared.read(|s| s.stats)
    }

    /// Current sessions, by shard.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.shared.read(State::sessions)
    }

    /// The REST calls received, oldest first (the last `rest_log_limit`).
    #[must_use]
    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.shared.read(State::rest_calls)
    }

    /// Every message emitted so far.
    #[must_use]
    pub fn ground_truth(&self) -> GroundTruth {
        self.shared.read(State::ground_truth)
    }

    /// When each of `ids` was first dispatched (see [`crate::EmittedMessage::dispatched_at`]),
    /// in the order given; `None` for unknown or never-dispatched ids. Cheaper than
    /// [`Sim::ground_truth`] when only a load run's own messages matter.
    #[must_use]
    pub fn dispatch_times(&self, ids: &[u64]) -> Vec<Option<std::time::SystemTime>> {
        self.shared.read(|s| {
            let truth = s.truth();
            ids.iter()
                .map(|id| truth.get(*id).and_then(|m| m.dispatched_at))
                .collect()
        })
    }

    /// How many MESSAGE_CREATE dispatches a message had (see
    /// [`crate::EmittedMessage::dispatches`]).
    #[must_use]
    pub fn dispatch_count(&self, id: u64) -> u32 {
        self.shared
            .read(|s| s.ground_truth().get(id).map_or(0, |m| m.dispatches))
    }

    /// Waits until `condition` holds for the counters, re-checking after every change.
    ///
    /// # Errors
    /// [`WaitTimeout`] when it does not hold within `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&SimStats) -> bool,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_until(what, timeout, |sim| {
            let stats = sim.stats();
            condition(&stats).then_some(stats)
        })
        .await
    }

    /// Waits until `condition` holds for the sessions.
    ///
    /// # Errors
    /// [`WaitTimeout`] when it does not hold within `timeout`.
    pub async fn wait_for_sessions(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[SessionInfo]) -> bool,
    ) -> Result<Vec<SessionInfo>, WaitTimeout> {
        self.wait_until(what, timeout, |sim| {
            let sessions = sim.sessions();
            condition(&sessions).then_some(sessions)
        })
        .await
    }

    /// Waits until at least `count` IDENTIFYs have succeeded in total.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_identifies(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} identifies"), timeout, |s| {
            s.identifies >= count
        })
        .await
    }

    /// Waits until at least `count` RESUMEs have succeeded in total.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_resumes(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} resumes"), timeout, |s| s.resumes >= count)
            .await
    }

    /// Waits until exactly `count` sessions have a connection attached.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_connected_sessions(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} connected sessions"), timeout, |s| {
            s.sessions_connected == count
        })
        .await
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Sim) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.subscribe();
        loop {
            // Mark the current version seen before checking, so a change right after the check
            // still wakes us.
            changes.borrow_and_update();
            if let Some(found) = check(self) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self.shared`, so it cannot be gone; treat it as a timeout.
                Ok(Err(_)) | Err(_) => {
                    if let Some(found) = check(self) {
                        return Ok(found);
                    }
                    return Err(WaitTimeout {
                        what: what.to_owned(),
                        waited: started.elapsed(),
                        last: self.stats(),
                    });
                }
            }
        }
    }
}
