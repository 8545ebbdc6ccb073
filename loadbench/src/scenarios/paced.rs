//! A paced load: messages posted at a steady rate, and each one's latency
//! from the simulator's dispatch to the commit of its `messages` row
//! (stored) and of its inbox row (processed).

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::measure::{Cpu, CpuPer10k, Statements, settle};
use crate::database::BenchDb;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::stats::{self, Percentiles};
use crate::traffic::Traffic;

/// The pacing tick. Each tick posts the messages that fell due since the
/// last (two at 400/s, ten at 2,000/s): tokio's timer resolution is a
/// millisecond, too coarse to post one message at a time at these rates.
const TICK: Duration = Duration::from_millis(5);

/// What one paced run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PacedResult {
    /// Target rate, messages per second.
    pub rate: f64,
    /// Messages posted.
    pub messages: usize,
    /// The rate actually posted (messages / posting time).
    pub posted_per_s: f64,
    /// Whether all were stored and processed within the time allowed.
    pub complete: bool,
    /// Dispatch -> `messages` row committed, ms.
    pub stored: Percentiles,
    /// Dispatch -> inbox row committed, ms.
    pub processed: Percentiles,
    /// CPU seconds per 10,000 messages.
    pub cpu_per_10k: CpuPer10k,
    /// Statements per message and per event.
    pub statements: Statements,
}

/// Posts at `rate` for the configured time and measures latencies.
///
/// # Errors
/// A database or simulator error, or cancellation.
pub async fn run(
    db: &BenchDb,
    pipeline: &Pipeline,
    settings: &Settings,
    rate: f64,
    traffic: &mut Traffic,
    cancel: &CancellationToken,
) -> Result<PacedResult> {
    db.reset_statements().await?;
    let before = db.progress().await?;
    let cpu_before = Cpu::read(db, pipeline, &pipeline.worker);

    let mut ids = Vec::new();
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => bail!("interrupted"),
            _ = ticker.tick() => {}
        }
        let elapsed = started.elapsed().min(settings.paced_duration);
        let due = (elapsed.as_secs_f64() * rate) as usize;
        if due > ids.len() {
            let posted = pipeline
                .sim
                .post_many(traffic.take(due - ids.len()))
                .context("posting the paced load")?;
            ids.extend(posted);
        }
        if elapsed >= settings.paced_duration {
            break;
        }
    }
    let posting = started.elapsed();

    let complete = settle(
        db,
        before,
        ids.len(),
        ids.len(),
        settings.settle_timeout,
        cancel,
    )
    .await?;
    let cpu_after = Cpu::read(db, pipeline, &pipeline.worker);
    let statements = Statements::read(db, ids.len(), ids.len()).await?;

    let dispatched = pipeline.sim.dispatch_times(&ids);
    let commits = db.commit_times(&ids_of(&ids)).await?;
    let by_id: std::collections::HashMap<i64, _> = commits.iter().map(|c| (c.id, *c)).collect();
    let (mut stored, mut processed) = (Vec::new(), Vec::new());
    for (id, at) in ids_of(&ids).iter().zip(dispatched) {
        let (Some(at), Some(commit)) = (at, by_id.get(id)) else {
            continue;
        };
        if let Some(t) = commit.stored {
            stored.push(stats::millis_between(at, t));
        }
        if let Some(t) = commit.processed {
            processed.push(stats::millis_between(at, t));
        }
    }
    Ok(PacedResult {
        rate,
        messages: ids.len(),
        posted_per_s: ids.len() as f64 / posting.as_secs_f64().max(1e-9),
        complete,
        stored: Percentiles::of(stored),
        processed: Percentiles::of(processed),
        cpu_per_10k: cpu_before.per_10k(&cpu_after, ids.len()),
        statements,
    })
}

/// Simulator ids as the database stores them. Snowflakes fit a positive
/// `bigint` (Discord's epoch leaves the top bit clear until 2084).
pub fn ids_of(ids: &[u64]) -> Vec<i64> {
    ids.iter()
        .map(|id| i64::try_from(*id).unwrap_or(i64::MAX))
        .collect()
}
