//! The worker drain: a backlog of messages and events written while no
//! worker ran (as after a worker outage), then one worker with its default
//! settings started, and timed until every event has a processed inbox row.

use std::time::SystemTime;

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::measure::{Cpu, CpuPer10k, Statements, settle};
use crate::database::BenchDb;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::stats;
use crate::traffic::Traffic;
use crate::yardstick::Sample;

/// Ids of the seeded messages start here: far below any snowflake the
/// simulator hands out, so nothing collides.
const FIRST_ID: i64 = 1_000_000_000_000_000;
/// The seeded messages' channel: not one the bot watches, so its backfill
/// cursor never meets them.
const CHANNEL: i64 = 42;

/// What the drain measured.
#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    /// Events in the backlog.
    pub events: usize,
    /// Whether all were processed within the time allowed.
    pub complete: bool,
    /// Events / (last inbox commit - worker start).
    pub events_per_s: f64,
    /// Events per second between the 10th and 90th percentile commits.
    pub events_per_s_10_90: f64,
    /// CPU seconds per 10,000 events (the bot idles).
    pub cpu_per_10k: CpuPer10k,
    /// Statements per event (worker).
    pub statements: Statements,
}

/// Stops the running worker, seeds the backlog, starts a fresh worker and
/// times it.
///
/// # Errors
/// A database error, a worker that does not start, or cancellation.
pub async fn run(
    db: &BenchDb,
    pipeline: &Pipeline,
    settings: &Settings,
    sample: &Sample,
    traffic: &mut Traffic,
    cancel: &CancellationToken,
) -> Result<DrainResult> {
    pipeline.worker.process.stop().await;
    let raw: serde_json::Value =
        serde_json::from_str(&sample.raw).context("reading the sample's raw JSON")?;
    db.seed_backlog(FIRST_ID, CHANNEL, &traffic.texts(settings.drain), &raw)
        .await?;

    let worker = pipeline.fresh_worker("worker-drain")?;
    // The fresh worker is stopped however the measurement ends.
    let outcome = async {
        db.reset_statements().await?;
        let before = db.progress().await?;
        let cpu_before = Cpu::read(db, pipeline, &worker);
        let started = SystemTime::now();
        worker.process.launch();
        let complete = settle(
            db,
            before,
            0,
            settings.drain,
            settings.settle_timeout,
            cancel,
        )
        .await?;
        let cpu_after = Cpu::read(db, pipeline, &worker);
        let statements = Statements::read(db, 0, settings.drain).await?;
        let commits = db.drain_commits(FIRST_ID, settings.drain as i64).await?;
        let last = commits.iter().max().copied().unwrap_or(started);
        Ok(DrainResult {
            events: settings.drain,
            complete,
            events_per_s: stats::rate(commits.len(), started, last),
            events_per_s_10_90: stats::rate_10_90(commits),
            cpu_per_10k: cpu_before.per_10k(&cpu_after, settings.drain),
            statements,
        })
    }
    .await;
    worker.process.stop().await;
    outcome
}
