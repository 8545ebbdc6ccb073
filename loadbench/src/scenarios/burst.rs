//! The burst: thousands of messages put on the gateway at once, as after a
//! busy market open or a resumed session's replay. It shows whether the bot
//! keeps up or drops messages from memory (and reads them back from
//! history), how much memory that costs, and the end-to-end throughput
//! against the yardsticks.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::measure::{Cpu, CpuPer10k, Statements, settle};
use super::paced::ids_of;
use crate::database::BenchDb;
use crate::pipeline::Pipeline;
use crate::procstat;
use crate::settings::Settings;
use crate::stats;
use crate::traffic::Traffic;

/// Messages handed to the simulator per lock: large enough to be "at once"
/// (a chunk takes a few milliseconds), small enough that the gateway's
/// writer is not held off the simulator's lock for the whole burst.
const CHUNK: usize = 1_000;
/// How often the bot's resident memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(200);

/// What the burst measured.
#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    /// Messages posted.
    pub messages: usize,
    /// Whether all were stored and processed within the time allowed.
    pub complete: bool,
    /// Messages stored / (last `messages` commit - first dispatch).
    pub stored_per_s: f64,
    /// Messages processed / (last inbox commit - first dispatch): the
    /// end-to-end throughput.
    pub processed_per_s: f64,
    /// Stored per second between the 10th and 90th percentile commits.
    pub stored_per_s_10_90: f64,
    /// Processed per second between the 10th and 90th percentile commits.
    pub processed_per_s_10_90: f64,
    /// `aplus_bot_buffer_overflow_total` during the burst.
    pub buffer_overflow: f64,
    /// `aplus_bot_messages_stored_total{source="backfill"}` during the burst.
    pub read_back_from_history: f64,
    /// `aplus_bot_notify_failures_total` during the burst.
    pub notify_failures: f64,
    /// Messages the bot let go of: the larger of the two counters above.
    pub dropped: f64,
    /// `VmHWM` of the bot after the burst, MiB.
    pub bot_peak_rss_mib: f64,
    /// The largest `VmRSS` sampled during the burst, MiB.
    pub bot_max_sampled_rss_mib: f64,
    /// CPU seconds per 10,000 messages.
    pub cpu_per_10k: CpuPer10k,
    /// Statements per message and per event.
    pub statements: Statements,
    /// Service restarts during the burst (should be zero).
    pub restarts: u32,
}

/// Posts the burst and measures it.
///
/// # Errors
/// A database or simulator error, or cancellation.
pub async fn run(
    db: &BenchDb,
    pipeline: &Pipeline,
    settings: &Settings,
    traffic: &mut Traffic,
    cancel: &CancellationToken,
) -> Result<BurstResult> {
    let counters = BotCounters::read(pipeline).await;
    let starts = pipeline.bot.process.starts() + pipeline.worker.process.starts();
    db.reset_statements().await?;
    let before = db.progress().await?;
    let cpu_before = Cpu::read(db, pipeline, &pipeline.worker);
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pipeline.bot.process.clone(), sampling.clone()));

    let mut ids = Vec::with_capacity(settings.burst);
    let mut left = settings.burst;
    while left > 0 {
        let n = left.min(CHUNK);
        ids.extend(
            pipeline
                .sim
                .post_many(traffic.take(n))
                .context("posting the burst")?,
        );
        left -= n;
        tokio::task::yield_now().await;
    }

    let outcome = settle(
        db,
        before,
        ids.len(),
        ids.len(),
        settings.settle_timeout,
        cancel,
    )
    .await;
    sampling.cancel();
    let max_sampled_kib = sampler.await.unwrap_or(0);
    let complete = outcome?;
    let cpu_after = Cpu::read(db, pipeline, &pipeline.worker);
    let peak_kib = pipeline
        .bot
        .process
        .pid()
        .and_then(procstat::memory_kib)
        .map_or(0, |(_, peak)| peak);
    let statements = Statements::read(db, ids.len(), ids.len()).await?;
    let counters = BotCounters::read(pipeline).await.since(&counters);

    let first_dispatch = pipeline
        .sim
        .dispatch_times(&ids)
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(SystemTime::now);
    let commits = db.commit_times(&ids_of(&ids)).await?;
    let stored: Vec<SystemTime> = commits.iter().filter_map(|c| c.stored).collect();
    let processed: Vec<SystemTime> = commits.iter().filter_map(|c| c.processed).collect();
    let last = |times: &[SystemTime]| times.iter().max().copied().unwrap_or(first_dispatch);
    let buffer_overflow = counters.overflow;
    let read_back = counters.backfill;
    Ok(BurstResult {
        messages: ids.len(),
        complete,
        stored_per_s: stats::rate(stored.len(), first_dispatch, last(&stored)),
        processed_per_s: stats::rate(processed.len(), first_dispatch, last(&processed)),
        stored_per_s_10_90: stats::rate_10_90(stored),
        processed_per_s_10_90: stats::rate_10_90(processed),
        buffer_overflow,
        read_back_from_history: read_back,
        notify_failures: counters.notify_failures,
        dropped: buffer_overflow.max(read_back),
        bot_peak_rss_mib: peak_kib as f64 / 1024.0,
        bot_max_sampled_rss_mib: max_sampled_kib as f64 / 1024.0,
        cpu_per_10k: cpu_before.per_10k(&cpu_after, ids.len()),
        statements,
        restarts: (pipeline.bot.process.starts() + pipeline.worker.process.starts())
            .saturating_sub(starts),
    })
}

/// The bot's counters that say it let messages go.
#[derive(Debug, Clone, Copy, Default)]
struct BotCounters {
    overflow: f64,
    backfill: f64,
    notify_failures: f64,
}

impl BotCounters {
    async fn read(pipeline: &Pipeline) -> Self {
        let read = |name: &'static str, label: &'static str| async move {
            // A counter not yet incremented is absent from /metrics: zero.
            pipeline
                .counter(&pipeline.bot, name, label)
                .await
                .unwrap_or(0.0)
        };
        Self {
            overflow: read("aplus_bot_buffer_overflow_total", "").await,
            backfill: read("aplus_bot_messages_stored_total", r#"source="backfill""#).await,
            notify_failures: read("aplus_bot_notify_failures_total", "").await,
        }
    }

    fn since(&self, earlier: &Self) -> Self {
        Self {
            overflow: self.overflow - earlier.overflow,
            backfill: self.backfill - earlier.backfill,
            notify_failures: self.notify_failures - earlier.notify_failures,
        }
    }
}

/// Samples the bot's `VmRSS` until `stop`; returns the largest, KiB.
async fn sample_rss(bot: chaos::supervisor::Supervised, stop: CancellationToken) -> u64 {
    let mut max = 0;
    loop {
        if let Some((rss, _)) = bot.pid().and_then(procstat::memory_kib) {
            max = max.max(rss);
        }
        tokio::select! {
            _ = stop.cancelled() => return max,
            _ = tokio::time::sleep(RSS_EVERY) => {}
        }
    }
}
