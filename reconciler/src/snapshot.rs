//! The facts `diagnose`, the dashboard and `/api/health` judge.
//!
//! The numbers follow the definitions of the views (see [`crate::stats`] for
//! why they are not read through them), all in one `REPEATABLE READ, READ
//! ONLY` transaction, so the numbers on one screen describe one instant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{AccessMode, DatabaseConnection, IsolationLevel, TransactionTrait};
use serde::Serialize;

use crate::error::Result;
use crate::listeners::{self, StaleListener};
use crate::service::runs::{self, RunRecord};
use crate::stats;
use crate::sweeps::{self, Sweeps};

/// The pipeline at one instant. Durations are in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was read (database clock).
    pub observed_at: DateTime<Utc>,
    /// Events younger than this are in flight, not late.
    pub grace_secs: f64,

    /// Messages received in the last hour / day.
    pub messages_1h: u64,
    pub messages_24h: u64,
    /// `message.created` events written in the last hour / day.
    pub created_events_1h: u64,
    pub created_events_24h: u64,
    /// `event_message_ratio` for the last hour / day (`None`: events but no messages).
    pub ratio_1h: Option<f64>,
    pub ratio_24h: Option<f64>,
    /// Messages received in the last hour that have no `message.created` event.
    pub messages_without_event_1h: u64,

    /// `processing_rate`, last hour: events of every kind and what became of them.
    pub events_1h: u64,
    pub processed_1h: u64,
    pub failed_1h: u64,
    pub dead_1h: u64,
    pub pending_1h: u64,
    pub processing_rate_1h: Option<f64>,
    pub processing_rate_24h: Option<f64>,
    pub p50_latency_1h_secs: Option<f64>,
    pub p95_latency_1h_secs: Option<f64>,
    /// Longest created-to-processed time in the last hour.
    pub max_latency_1h_secs: Option<f64>,
    /// Events of the last hour older than the grace, and how many of them are processed.
    pub settled_events_1h: u64,
    pub settled_processed_1h: u64,

    /// Unclaimed events plus failed events awaiting retry.
    pub backlog: u64,
    pub unclaimed_events: u64,
    pub failed_events: u64,
    pub dead_events: u64,
    /// Age of the oldest unclaimed event.
    pub oldest_pending_secs: Option<f64>,
    /// Unclaimed events older than the grace.
    pub orphans: u64,
    /// Failed events whose retry is overdue by more than the grace.
    pub retries_overdue: u64,

    /// Sessions whose last statement is `LISTEN "events"`.
    pub listener_connections: u64,
    /// Whether this role can see other roles' sessions (`pg_read_all_stats`);
    /// without it, a worker under another role is invisible.
    pub sees_all_sessions: bool,
    /// `pg_notification_queue_usage()`, 0 to 1: notifications some listener
    /// has not read yet. At 1 every NOTIFY fails.
    pub notification_queue_usage: f64,
    /// Workers' LISTEN sessions that have not read a heartbeat back for
    /// longer than `listener_stale_after_secs`.
    pub stale_listeners: Vec<StaleListener>,
    pub listener_stale_after_secs: f64,

    pub last_message_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub last_processed_at: Option<DateTime<Utc>>,
    /// The latest `reconciler_runs` row.
    pub last_run: Option<RunRecord>,
    /// `outbox_watermark.processed_through`.
    pub watermark: Option<u64>,
    /// What the bot's history sweeps found (`upstream_sweeps`).
    pub sweeps: Sweeps,
}

impl Snapshot {
    /// Seconds since a moment, by the snapshot's clock.
    pub fn age_secs(&self, then: DateTime<Utc>) -> f64 {
        (self.observed_at - then).num_milliseconds() as f64 / 1000.0
    }
}

/// Reads a snapshot. `grace` separates in-flight events from late ones;
/// a worker's LISTEN session silent for longer than `listener_stale_after`
/// is stale.
pub async fn read(
    db: &DatabaseConnection,
    grace: Duration,
    listener_stale_after: Duration,
) -> Result<Snapshot> {
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let h = stats::health(&txn, grace).await?;
    let r = stats::ratios(&txn, true).await?;
    let p = stats::processing(&txn, grace, true).await?;
    let last_run = runs::recent(&txn, 1).await?.into_iter().next();
    let notification_queue_usage = listeners::queue_usage(&txn).await?;
    let stale_listeners = listeners::stale(&txn, listener_stale_after).await?;
    let sweeps = sweeps::read(&txn).await?;
    txn.commit().await?;
    Ok(Snapshot {
        observed_at: h.observed_at,
        grace_secs: grace.as_secs_f64(),
        messages_1h: r.hour.messages,
        messages_24h: r.day.messages,
        created_events_1h: r.hour.created_events,
        created_events_24h: r.day.created_events,
        ratio_1h: stats::ratio(r.hour.messages, r.hour.created_events),
        ratio_24h: stats::ratio(r.day.messages, r.day.created_events),
        messages_without_event_1h: r.missing_hour,
        events_1h: p.events,
        processed_1h: p.processed,
        failed_1h: p.failed,
        dead_1h: p.dead,
        pending_1h: p.pending,
        processing_rate_1h: stats::rate(p.events, p.processed),
        processing_rate_24h: stats::rate(p.day_events, p.day_processed),
        p50_latency_1h_secs: p.p50_secs,
        p95_latency_1h_secs: p.p95_secs,
        max_latency_1h_secs: p.max_secs,
        settled_events_1h: p.settled,
        settled_processed_1h: p.settled_processed,
        backlog: h.unclaimed + h.failed,
        unclaimed_events: h.unclaimed,
        failed_events: h.failed,
        dead_events: h.dead,
        oldest_pending_secs: h.oldest_pending_secs,
        orphans: h.orphans,
        retries_overdue: h.retries_overdue,
        listener_connections: h.listeners,
        sees_all_sessions: h.sees_all_sessions,
        notification_queue_usage,
        stale_listeners,
        listener_stale_after_secs: listener_stale_after.as_secs_f64(),
        last_message_at: h.last_message_at,
        last_event_at: h.last_event_at,
        last_processed_at: h.last_processed_at,
        last_run,
        watermark: Some(h.watermark),
        sweeps,
    })
}
