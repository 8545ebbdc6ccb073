//! Checks the invariants that must hold at every instant (I1, I2, and that
//! committed rows never disappear) once a second, on a connection of its own,
//! while the faults happen.
//!
//! A sample that cannot be taken because the database is down on purpose is
//! recorded as failed, not as a violation: the promise is about what the
//! database holds whenever it can be asked.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::sqlx::postgres::PgConnection;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::database::connect_url;
use crate::invariants::{self, Counts};
use crate::timeline::{Timeline, secs};

/// Time between samples.
const INTERVAL: Duration = Duration::from_secs(1);

/// One broken promise, with when it was seen.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Seconds into the scenario.
    pub at_s: f64,
    /// What was wrong.
    pub what: String,
}

/// What the sampler saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SampleLog {
    /// Samples taken.
    pub taken: u64,
    /// Samples that could not be read (database down).
    pub failed: u64,
    /// Invariants found broken.
    pub violations: Vec<Violation>,
    /// The counts of each successful sample, on the timeline.
    #[serde(skip)]
    pub series: Vec<(Duration, Counts)>,
}

/// The running sampler.
#[derive(Debug)]
pub struct Sampler {
    log: Arc<Mutex<SampleLog>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling.
    pub fn start(db_url: String, timeline: Timeline) -> Self {
        let log = Arc::new(Mutex::new(SampleLog::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample(db_url, timeline, Arc::clone(&log), stop.clone()));
        Self { log, stop, task }
    }

    /// Stops and returns what was seen.
    pub async fn finish(self) -> SampleLog {
        self.stop.cancel();
        // A panic in the loop would leave the log as it was; report that.
        let _ = self.task.await;
        lock(&self.log).clone()
    }
}

fn lock(log: &Mutex<SampleLog>) -> MutexGuard<'_, SampleLog> {
    // Updates are plain pushes; a poisoned lock still guards a consistent log.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn sample(
    db_url: String,
    timeline: Timeline,
    log: Arc<Mutex<SampleLog>>,
    stop: CancellationToken,
) {
    let mut conn: Option<PgConnection> = None;
    let mut previous: Option<Counts> = None;
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if conn.is_none() {
            conn = connect_url(&db_url, "aplus-chaos-sampler").await.ok();
        }
        let read = match conn.as_mut() {
            Some(c) => tokio::time::timeout(Duration::from_secs(5), invariants::read(c))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let at = timeline.now();
        let mut log = lock(&log);
        log.taken += 1;
        let Some(now) = read else {
            log.failed += 1;
            // The connection is suspect after any failure; open a new one next time.
            conn = None;
            continue;
        };
        for what in now.i1_i2_violations() {
            log.violations.push(Violation {
                at_s: secs(at),
                what,
            });
        }
        if let Some(before) = previous {
            // Nothing is deleted while the suite runs (the retention is
            // days), so a count going down is a committed row lost.
            if now.messages < before.messages {
                log.violations.push(Violation {
                    at_s: secs(at),
                    what: format!(
                        "I0: committed messages disappeared ({} then {})",
                        before.messages, now.messages
                    ),
                });
            }
            if now.processed < before.processed {
                log.violations.push(Violation {
                    at_s: secs(at),
                    what: format!(
                        "I3: processed inbox rows disappeared ({} then {})",
                        before.processed, now.processed
                    ),
                });
            }
        }
        previous = Some(now);
        log.series.push((at, now));
    }
}
