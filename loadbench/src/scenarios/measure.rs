//! What every scenario measures around its load: CPU seconds of the bot, the
//! worker and the server, statements per service, and waiting until all
//! that was posted is processed.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::database::{BOT_ROLE, BenchDb, Progress, WORKER_ROLE};
use crate::pipeline::{Pipeline, Service};
use crate::procstat;

/// How often progress is polled while waiting. Only the end of a wait
/// depends on it (throughput and latency come from commit timestamps), and
/// the counts are the harness's own load on the server, inside the CPU
/// figures: once a second keeps them at about 1% of the server's time.
const POLL: Duration = Duration::from_secs(1);

/// CPU seconds used so far by each party.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    bot: f64,
    worker: f64,
    postgres: f64,
}

impl Cpu {
    /// Reads the counters now (zero for a process that is not running).
    pub fn read(db: &BenchDb, pipeline: &Pipeline, worker: &Service) -> Self {
        let of = |service: &Service| {
            service
                .process
                .pid()
                .and_then(procstat::cpu_seconds)
                .unwrap_or(0.0)
        };
        Self {
            bot: of(&pipeline.bot),
            worker: of(worker),
            postgres: db
                .postmaster_pid()
                .and_then(procstat::server_cpu_seconds)
                .unwrap_or(0.0),
        }
    }

    /// CPU seconds from `self` to `later`, per 10,000 of `items`.
    pub fn per_10k(&self, later: &Cpu, items: usize) -> CpuPer10k {
        let scale = if items == 0 {
            0.0
        } else {
            10_000.0 / items as f64
        };
        CpuPer10k {
            bot: (later.bot - self.bot).max(0.0) * scale,
            worker: (later.worker - self.worker).max(0.0) * scale,
            postgres: (later.postgres - self.postgres).max(0.0) * scale,
        }
    }
}

/// CPU seconds per 10,000 messages (or events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuPer10k {
    /// The bot process.
    pub bot: f64,
    /// The worker process.
    pub worker: f64,
    /// The postmaster and all its children.
    pub postgres: f64,
}

/// Statements per message (bot) and per event (worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Statements {
    /// The bot's statements per message stored.
    pub bot_per_message: f64,
    /// The worker's statements per event processed.
    pub worker_per_event: f64,
}

impl Statements {
    /// Reads `pg_stat_statements` (reset at the scenario's start).
    ///
    /// # Errors
    /// Any database error.
    pub async fn read(db: &BenchDb, messages: usize, events: usize) -> Result<Self> {
        let calls = db.statements_by_role().await?;
        let per = |role: &str, n: usize| {
            let calls = calls.get(role).copied().unwrap_or(0) as f64;
            if n == 0 { 0.0 } else { calls / n as f64 }
        };
        Ok(Self {
            bot_per_message: per(BOT_ROLE, messages),
            worker_per_event: per(WORKER_ROLE, events),
        })
    }
}

/// Waits until `stored` more messages are stored and `processed` more
/// events are processed than at `before`. Returns false when that did not
/// happen within `timeout` (the figures are then those of what did).
///
/// # Errors
/// A database error, or cancellation.
pub async fn settle(
    db: &BenchDb,
    before: Progress,
    stored: usize,
    processed: usize,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = db.progress().await?;
        if now.stored - before.stored >= stored as i64
            && now.processed - before.processed >= processed as i64
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            eprintln!(
                "loadbench:   not settled after {} s: {} of {stored} stored, {} of {processed} processed",
                timeout.as_secs(),
                now.stored - before.stored,
                now.processed - before.processed
            );
            return Ok(false);
        }
        tokio::select! {
            _ = cancel.cancelled() => bail!("interrupted"),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
