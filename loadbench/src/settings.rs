//! What a run measures and with what: sizes of the full and the quick run,
//! the service binaries, and where logs go.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The two service binaries under test.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceBinaries {
    /// The capture bot.
    pub bot: PathBuf,
    /// The event consumer.
    pub worker: PathBuf,
}

impl ServiceBinaries {
    /// `bot` and `worker` in `dir` (a `cargo build --release` target
    /// directory, or a directory of older builds), or the `chaos-` names
    /// the chaos package gives them.
    ///
    /// # Errors
    /// A message naming what is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, String> {
        for [bot, worker] in [["bot", "worker"], ["chaos-bot", "chaos-worker"]] {
            let (bot, worker) = (dir.join(bot), dir.join(worker));
            if bot.is_file() && worker.is_file() {
                return Ok(Self { bot, worker });
            }
        }
        Err(format!(
            "no `bot` and `worker` executables in {} (build them with \
             `cargo build --release -p bot -p worker`)",
            dir.display()
        ))
    }
}

/// Sizes and durations of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// True for the few-minute run.
    pub quick: bool,
    /// The binaries under test.
    pub binaries: ServiceBinaries,
    /// The `pgbench` executable.
    pub pgbench: PathBuf,
    /// `pgbench -T` of each yardstick.
    pub pgbench_secs: u32,
    /// `pgbench -c` of the main yardsticks.
    pub pgbench_clients: u32,
    /// Messages posted at once in the burst.
    pub burst: usize,
    /// Rates of the paced runs, messages per second.
    pub paced_rates: Vec<f64>,
    /// How long each paced run posts.
    pub paced_duration: Duration,
    /// Messages and events seeded for the worker drain.
    pub drain: usize,
    /// How long a scenario may take to get everything processed before it
    /// is reported as incomplete.
    pub settle_timeout: Duration,
    /// Where the services' logs and the pgbench scripts go.
    pub log_dir: PathBuf,
}

impl Settings {
    /// The full run: 40,000-message burst, 25 s per paced rate, 30,000-event
    /// drain, 20 s per pgbench run (about 10-15 minutes in all).
    pub fn full(binaries: ServiceBinaries, pgbench: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            quick: false,
            binaries,
            pgbench,
            pgbench_secs: 20,
            pgbench_clients: 16,
            burst: 40_000,
            paced_rates: vec![100.0, 1_000.0, 2_000.0],
            paced_duration: Duration::from_secs(25),
            drain: 30_000,
            settle_timeout: Duration::from_secs(600),
            log_dir,
        }
    }

    /// The quick run (a few minutes): 10,000-message burst, 8 s per paced
    /// rate, 10,000-event drain, 5 s per pgbench run.
    pub fn quick(binaries: ServiceBinaries, pgbench: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            quick: true,
            pgbench_secs: 5,
            burst: 10_000,
            paced_duration: Duration::from_secs(8),
            drain: 10_000,
            settle_timeout: Duration::from_secs(300),
            ..Self::full(binaries, pgbench, log_dir)
        }
    }
}
