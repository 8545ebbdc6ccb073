//! The scheduled history sweep: what the gateway never delivered.
//!
//! Backfills follow what the bot can see go wrong: a reconnect, a resume,
//! a database outage. Discord can also stop delivering events on a session
//! that stays connected, with heartbeats acknowledged; nothing then tells
//! the bot that anything is missing, and a backfill, which starts at the
//! largest stored id, would not look below it anyway. So on a cron schedule
//! the bot reads each watched channel's (and known thread's) history for a
//! trailing window and compares it with what is stored, through the same
//! page-and-diff code as a backfill (`Backfiller::sweep_channel`):
//! missing messages are stored with their events (source `sweep`), newer
//! edits applied, stored messages Discord no longer lists marked deleted.
//!
//! A sweep never competes with a live backfill: it reads one page at a time
//! through the same REST client (and so the same rate-limit buckets), waits
//! before each page while any backfill runs, and spreads its channels over
//! the first half of the interval. A channel whose last backfill finished
//! recently and started below the window was just read: it is skipped.
//!
//! Every sweep of a channel is recorded in `upstream_sweeps` (what Discord
//! listed, per hour too, what was missing, the edits and deletes applied,
//! how long it took, the error if it failed), which `upstream_coverage` and
//! `reconciler diagnose` read, and counted in `aplus_bot_sweep_*` metrics.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone as _, Utc};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::backfill::{BackfillError, BackfillReport, Backfiller};
use crate::channels::Channels;
use crate::convert;
use crate::error::error_chain;
use crate::rest::RestError;
use crate::writer::Writer;

/// A message this recent may still be on its way through the gateway: one
/// the sweep stores is not counted as missing.
const SETTLE: Duration = Duration::from_secs(5);

/// When sweeps run, parsed from a cron line (or off).
#[derive(Debug, Clone)]
pub struct SweepSchedule {
    line: String,
    cron: Option<cron::Schedule>,
}

impl SweepSchedule {
    /// Parses a 5-field crontab line (minutes first), a 6- or 7-field cron
    /// line (seconds first) or an `@` shorthand; `off` (or `none`,
    /// `disabled`): no sweeps.
    pub fn parse(line: &str) -> Result<Self, String> {
        let trimmed = line.trim();
        if matches!(
            trimmed.to_ascii_lowercase().as_str(),
            "off" | "none" | "disabled"
        ) {
            return Ok(Self {
                line: "off".to_owned(),
                cron: None,
            });
        }
        let expression = if !trimmed.starts_with('@') && trimmed.split_whitespace().count() == 5 {
            format!("0 {trimmed}")
        } else {
            trimmed.to_owned()
        };
        cron::Schedule::from_str(&expression)
            .map(|cron| Self {
                line: trimmed.to_owned(),
                cron: Some(cron),
            })
            .map_err(|error| {
                format!("invalid sweep schedule `{line}`: {error} (a cron line, or `off`)")
            })
    }

    /// The next time after `after`, and the time between it and the one
    /// that follows (at least a second).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<(DateTime<Utc>, Duration)> {
        let mut upcoming = self.cron.as_ref()?.after(&after);
        let next = upcoming.next()?;
        let interval = upcoming
            .next()
            .and_then(|then| (then - next).to_std().ok())
            .unwrap_or(Duration::from_secs(600))
            .max(Duration::from_secs(1));
        Some((next, interval))
    }
}

impl SweepSchedule {
    /// Whether sweeps are off.
    pub fn is_off(&self) -> bool {
        self.cron.is_none()
    }
}

impl std::fmt::Display for SweepSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// What the sweep does and when.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// When (or off).
    pub schedule: SweepSchedule,
    /// How far back each sweep reads.
    pub window: Duration,
    /// A channel whose backfill finished this recently, from below the
    /// window's start, is skipped.
    pub skip_after_backfill: Duration,
}

/// Sweep totals since start, for tests and the log.
#[derive(Debug, Default)]
pub struct SweepCounts {
    /// Channel sweeps that finished.
    pub swept: AtomicU64,
    /// Channel sweeps that failed.
    pub failed: AtomicU64,
    /// Channel sweeps skipped (a recent backfill covered the window, or the
    /// database was down).
    pub skipped: AtomicU64,
    /// Messages found missing and stored.
    pub missing: AtomicU64,
    /// Newer edits applied.
    pub edits: AtomicU64,
    /// Deletes applied.
    pub deletes: AtomicU64,
}

/// One channel's sweep, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    /// The channel.
    pub channel_id: u64,
    /// What the pages held and what was applied.
    pub report: BackfillReport,
    /// How long it took.
    pub duration: Duration,
}

/// Runs the sweeps.
#[derive(Debug)]
pub struct Sweeper {
    backfiller: Arc<Backfiller>,
    channels: Arc<Channels>,
    writer: Arc<Writer>,
    /// Where each sweep is recorded (the shared pool).
    db: DatabaseConnection,
    settings: SweepSettings,
    counts: Arc<SweepCounts>,
    shutdown: CancellationToken,
}

impl Sweeper {
    /// A sweeper that stops when `shutdown` fires; it skips while `writer`
    /// is in an outage and records each sweep on `db`.
    pub fn new(
        backfiller: Arc<Backfiller>,
        channels: Arc<Channels>,
        writer: Arc<Writer>,
        db: DatabaseConnection,
        settings: SweepSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            backfiller,
            channels,
            writer,
            db,
            settings,
            counts: Arc::new(SweepCounts::default()),
            shutdown,
        }
    }

    /// The running totals.
    pub fn counts(&self) -> Arc<SweepCounts> {
        Arc::clone(&self.counts)
    }

    /// Sweeps on the schedule until shutdown (returns at once when off).
    pub async fn run(self: Arc<Self>) {
        let schedule = self.settings.schedule.clone();
        if schedule.is_off() {
            tracing::info!("history sweep off");
            return;
        }
        tracing::info!(schedule = %schedule, window_s = self.settings.window.as_secs(), "history sweep scheduled");
        loop {
            let Some((next, interval)) = schedule.next_after(Utc::now()) else {
                tracing::warn!(schedule = %schedule, "the sweep schedule has no next time; sweeps stop");
                return;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            self.sweep_all(interval / 2).await;
            if self.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Sweeps every watched channel once, spread over `spread`.
    pub async fn sweep_all(&self, spread: Duration) {
        let channels = self.channels.watched();
        let gap = spread / u32::try_from(channels.len().max(1)).unwrap_or(u32::MAX);
        for (index, channel_id) in channels.into_iter().enumerate() {
            if index > 0 {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(gap) => {}
                }
            }
            let _ = self.sweep(channel_id).await;
        }
    }

    /// Sweeps one channel now: `Ok(None)` when skipped.
    pub async fn sweep(&self, channel_id: u64) -> Result<Option<SweepOutcome>, BackfillError> {
        let now = Utc::now();
        let window_start =
            now - chrono::Duration::from_std(self.settings.window).unwrap_or_default();
        let start = convert::snowflake_at(window_start.timestamp_millis());
        if self.writer.is_down() {
            self.skipped(channel_id, "database down");
            return Ok(None);
        }
        if self
            .backfiller
            .covered_since(channel_id, start, self.settings.skip_after_backfill)
        {
            self.skipped(channel_id, "backfilled recently");
            return Ok(None);
        }
        let settled = now - chrono::Duration::from_std(SETTLE).unwrap_or_default();
        let settled_before = convert::snowflake_at(settled.timestamp_millis());
        let began = Instant::now();
        let result = self
            .backfiller
            .sweep_channel(channel_id, start, settled_before)
            .await;
        let duration = began.elapsed();
        metrics::histogram!("aplus_bot_sweep_duration_seconds").record(duration.as_secs_f64());
        match result {
            Ok(report) => {
                let outcome = SweepOutcome {
                    channel_id,
                    report,
                    duration,
                };
                self.finished(&outcome, window_start, now).await;
                Ok(Some(outcome))
            }
            Err(error) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("aplus_bot_sweeps_total", "outcome" => "failed").increment(1);
                match &error {
                    BackfillError::Rest(RestError::Cancelled) => {}
                    // The writer has begun an outage: nothing can be recorded.
                    BackfillError::Database(_) => {
                        tracing::debug!(channel_id, error = %error_chain(&error), "sweep stopped: database unavailable");
                    }
                    BackfillError::Rest(_) => {
                        tracing::warn!(channel_id, error = %error_chain(&error), "sweep failed; the next one reads the window again");
                        let report = BackfillReport::default();
                        let failed = SweepOutcome {
                            channel_id,
                            report,
                            duration,
                        };
                        self.record(&failed, window_start, now, Some(&error_chain(&error)))
                            .await;
                    }
                }
                Err(error)
            }
        }
    }

    fn skipped(&self, channel_id: u64, reason: &'static str) {
        self.counts.skipped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("aplus_bot_sweeps_total", "outcome" => "skipped").increment(1);
        tracing::debug!(channel_id, reason, "sweep skipped");
    }

    async fn finished(&self, outcome: &SweepOutcome, from: DateTime<Utc>, to: DateTime<Utc>) {
        let r = &outcome.report;
        let c = &self.counts;
        c.swept.fetch_add(1, Ordering::Relaxed);
        c.missing.fetch_add(r.missing, Ordering::Relaxed);
        c.edits.fetch_add(r.edits, Ordering::Relaxed);
        c.deletes.fetch_add(r.deletes, Ordering::Relaxed);
        metrics::counter!("aplus_bot_sweeps_total", "outcome" => "swept").increment(1);
        metrics::counter!("aplus_bot_sweep_listed_total").increment(r.seen);
        metrics::counter!("aplus_bot_sweep_missing_total").increment(r.missing);
        metrics::counter!("aplus_bot_sweep_edits_total").increment(r.edits);
        metrics::counter!("aplus_bot_sweep_deletes_total").increment(r.deletes);
        metrics::gauge!("aplus_bot_sweep_last_timestamp_seconds").set(to.timestamp() as f64);
        if r.missing > 0 || r.changes > 0 {
            tracing::warn!(
                channel_id = outcome.channel_id,
                listed = r.seen,
                missing = r.missing,
                edits = r.edits,
                deletes = r.deletes,
                "history sweep found what the gateway never delivered; stored and applied"
            );
        } else {
            tracing::debug!(
                channel_id = outcome.channel_id,
                listed = r.seen,
                "history sweep: nothing missing"
            );
        }
        self.record(outcome, from, to, None).await;
    }

    /// Writes the sweep's row (a failure to do so is logged, not retried).
    async fn record(
        &self,
        outcome: &SweepOutcome,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        error: Option<&str>,
    ) {
        let r = &outcome.report;
        let by_hour: Map<String, Value> = r
            .listed_by_hour
            .iter()
            .filter_map(|(hour, count)| {
                let at = Utc.timestamp_opt(*hour, 0).single()?;
                Some((at.to_rfc3339(), Value::from(*count)))
            })
            .collect();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let statement = stmt(
            "INSERT INTO upstream_sweeps (channel_id, window_start, window_end, listed, missing, \
             edits, deletes, duration_ms, listed_by_hour, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                count(outcome.channel_id).into(),
                from.into(),
                to.into(),
                count(r.seen).into(),
                count(r.missing).into(),
                count(r.edits).into(),
                count(r.deletes).into(),
                i64::try_from(outcome.duration.as_millis())
                    .unwrap_or(i64::MAX)
                    .into(),
                Value::Object(by_hour).into(),
                error.map(str::to_owned).into(),
            ],
        );
        if let Err(error) = self.db.execute_raw(statement).await {
            tracing::warn!(channel_id = outcome.channel_id, %error, "could not record a sweep");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_crontab_lines_cron_lines_and_off() {
        let every_ten =
            SweepSchedule::parse(crate::config::defaults::SWEEP_SCHEDULE).expect("valid");
        let at = Utc
            .with_ymd_and_hms(2026, 12, 5, 7, 3, 0)
            .single()
            .expect("time");
        let (next, interval) = every_ten.next_after(at).expect("a next time");
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 12, 5, 7, 10, 0)
                .single()
                .expect("time")
        );
        assert_eq!(interval, Duration::from_secs(600));
        let seconds = SweepSchedule::parse("*/5 * * * * *").expect("valid");
        assert_eq!(
            seconds.next_after(at).expect("next").1,
            Duration::from_secs(5)
        );
        assert!(SweepSchedule::parse("off").expect("valid").is_off());
        assert!(SweepSchedule::parse(" Disabled ").expect("valid").is_off());
        assert!(
            SweepSchedule::parse("off")
                .expect("valid")
                .next_after(at)
                .is_none()
        );
        let error = SweepSchedule::parse("every ten minutes").expect_err("invalid");
        assert!(error.contains("every ten minutes"), "{error}");
    }
}
