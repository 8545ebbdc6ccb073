//! The one clock of a scenario: every sample, fault, restart and log line is
//! stamped with the time since the scenario began, so they can be lined up.

use std::time::{Duration, Instant};

/// Time since a scenario began. Cheap to copy into every task.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    start: Instant,
}

impl Timeline {
    /// Starts the clock now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The whole second of the scenario we are in (for per-second counts).
    pub fn second(&self) -> u64 {
        self.now().as_secs()
    }
}

/// Seconds with millisecond precision, for reports.
pub fn secs(duration: Duration) -> f64 {
    (duration.as_millis() as f64) / 1000.0
}
