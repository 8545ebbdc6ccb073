//! What a fault script can reach while the load runs, and the record of
//! each fault it did: the scenarios' side of [`crate::scenario::run`].

use std::time::Duration;

use rand::rngs::StdRng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::facts::STABLE;
use crate::settings::Settings;
use crate::stack::Stack;
use crate::timeline::{Timeline, secs};

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What was done (`kill -9`, `pg_ctl restart -m fast`, ...).
    pub what: String,
    /// To whom.
    pub target: String,
    /// When it began, seconds into the scenario.
    #[serde(serialize_with = "as_secs")]
    pub start: Duration,
    /// When it was over (the service or server was let go again).
    #[serde(serialize_with = "as_secs")]
    pub end: Duration,
    /// Whether the fault landed where it was meant to (a kill inside a
    /// transaction, a pause that outlived the lease...).
    pub landed: bool,
    /// A time the scenario measured about this fault (how long the LISTEN
    /// session took to come back, say), in seconds.
    pub measured_s: Option<f64>,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(secs(*d))
}

/// What a fault script can reach.
#[derive(Debug)]
pub struct FaultCtx<'a> {
    /// The system under test.
    pub stack: &'a Stack,
    /// The scenario's clock.
    pub timeline: Timeline,
    /// The run's settings.
    pub settings: &'a Settings,
    /// When the planned load ends; scripts should be done by then.
    pub load_until: Duration,
    /// Random fault timings, seeded from the settings.
    pub rng: StdRng,
    /// Faults done so far.
    pub faults: Vec<FaultRecord>,
    pub(crate) cancel: CancellationToken,
}

impl FaultCtx<'_> {
    /// Time left until the planned end of the load.
    pub fn remaining(&self) -> Duration {
        self.load_until.saturating_sub(self.timeline.now())
    }

    /// Sleeps, unless the run is being cancelled. Returns false if it is.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    /// Waits until every launched service has answered ready for a couple
    /// of seconds (or `timeout` passes), so the next fault starts from a
    /// recovered system. Returns false if it never did.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        let mut ready_since: Option<std::time::Instant> = None;
        while started.elapsed() < timeout && !self.cancel.is_cancelled() {
            if self.stack.all_ready().await {
                let since = *ready_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= STABLE {
                    return true;
                }
            } else {
                ready_since = None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Records a fault that began at `start` and is over now.
    pub fn record(&mut self, what: &str, target: &str, start: Duration, landed: bool) {
        let end = self.timeline.now();
        self.record_at(what, target, start, end, landed, None);
    }

    /// Records a fault with its times and a measurement.
    pub fn record_at(
        &mut self,
        what: &str,
        target: &str,
        start: Duration,
        end: Duration,
        landed: bool,
        measured: Option<Duration>,
    ) {
        self.faults.push(FaultRecord {
            what: what.to_owned(),
            target: target.to_owned(),
            start,
            end,
            landed,
            measured_s: measured.map(secs),
        });
    }
}
