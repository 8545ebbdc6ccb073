//! Claiming events and completing each with its inbox row and effects.
//!
//! One batch is one transaction: claim up to `batch_size` events with
//! `FOR UPDATE SKIP LOCKED` (so any number of workers share the work), then
//! handle each inside its own savepoint. An event's inbox row and its effects
//! commit together: a crash anywhere rolls both back, and a second delivery
//! finds the inbox row and applies nothing. A failing event rolls back to its
//! savepoint and records the failure (attempts, backoff, last error), so one
//! poison event never holds up the rest of its batch.
//!
//! The batch transaction is also the lease: the worker's sessions run with
//! `idle_in_transaction_session_timeout`, so a worker that stalls mid-batch
//! (paused, wedged) loses its session and its locks, and its late commit fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, QueryResult, TransactionTrait,
};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::record::stmt;
use crate::{Backoff, EventKind, OutboxError};

/// An event claimed by this worker for the length of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedEvent {
    pub id: Uuid,
    pub message_id: i64,
    pub kind: EventKind,
    pub payload: Json,
    pub created_at: DateTime<Utc>,
    /// Attempts before this one.
    pub attempts: i32,
    /// How long the event had waited when it was claimed (database clock).
    pub age_at_claim: Duration,
}

/// The error a handler returns: any error; its whole cause chain is recorded.
pub type HandlerError = anyhow::Error;

/// Applies an event's effects inside the given transaction (a savepoint of
/// the batch). It must not commit, and must be safe to run again after a
/// rollback: everything it writes rolls back with the inbox row.
pub trait Handler: Send + Sync {
    /// Handles one event.
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ClaimedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// How a consumer claims and retries.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Recorded in `inbox.worker`.
    pub worker: String,
    /// Events claimed per batch transaction.
    pub batch_size: u32,
    /// After this many failed attempts an event is `dead`.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub retry: Backoff,
}

impl ConsumerConfig {
    /// Defaults: batches of 100, 8 attempts, retries from 1 s to 5 min.
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            batch_size: 100,
            max_attempts: 8,
            retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Events claimed.
    pub claimed: usize,
    /// Events whose effects were applied.
    pub processed: usize,
    /// Events that failed and will be retried.
    pub failed: usize,
    /// Events that failed for the last time.
    pub dead: usize,
    /// Events another worker had completed meanwhile: nothing applied.
    pub duplicates: usize,
}

impl BatchReport {
    /// True when the batch was full, so more work is probably waiting.
    pub fn was_full(&self, config: &ConsumerConfig) -> bool {
        self.claimed >= config.batch_size as usize
    }
}

// The watermark comes from a stable function rather than a sub-select: the
// planner then walks `events_txid` from it and probes the inbox per event,
// instead of hashing the whole inbox (see migration m20261127_000006).
const CLAIM_NEW: &str = r#"
SELECT e.id, e.message_id, e.kind, e.payload, e.created_at, 0 AS attempts,
       extract(epoch FROM now() - e.created_at)::float8 AS age
FROM events e
WHERE e.txid >= outbox_processed_through()
  AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)
ORDER BY e.txid, e.id
LIMIT $1
FOR UPDATE OF e SKIP LOCKED
"#;

const CLAIM_DUE: &str = r#"
SELECT e.id, e.message_id, e.kind, e.payload, e.created_at, i.attempts,
       extract(epoch FROM now() - e.created_at)::float8 AS age
FROM inbox i
JOIN events e ON e.id = i.event_id
WHERE i.status = 'failed' AND i.next_attempt_at <= now()
ORDER BY i.next_attempt_at
LIMIT $1
FOR UPDATE OF i SKIP LOCKED
"#;

const MARK_NEW_PROCESSED: &str = r#"
INSERT INTO inbox (event_id, status, attempts, processed_at, worker)
VALUES ($1, 'processed', 1, now(), $2)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"#;

const MARK_RETRY_PROCESSED: &str = r#"
UPDATE inbox
   SET status = 'processed', attempts = attempts + 1, processed_at = now(),
       next_attempt_at = NULL, worker = $2
 WHERE event_id = $1 AND status = 'failed'
RETURNING event_id
"#;

const RECORD_FAILURE: &str = r#"
INSERT INTO inbox (event_id, status, attempts, last_error, next_attempt_at, worker)
VALUES ($1, $2, $3, $4,
        CASE WHEN $2 = 'dead' THEN NULL ELSE now() + make_interval(secs => $5) END, $6)
ON CONFLICT (event_id) DO UPDATE
   SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
       last_error = EXCLUDED.last_error, next_attempt_at = EXCLUDED.next_attempt_at,
       worker = EXCLUDED.worker
"#;

/// Longest error text kept in `inbox.last_error`.
const MAX_ERROR_LEN: usize = 2_000;

/// Which claim an event came from, which decides how its inbox row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    New,
    Due,
}

/// Claims one batch, handles every event in it, and commits. Returns what it
/// did; an `Err` means the whole batch rolled back (a database problem) and
/// its events will be claimed again.
#[tracing::instrument(level = "debug", skip_all, fields(worker = %config.worker), err)]
pub async fn process_batch<H: Handler>(
    db: &DatabaseConnection,
    config: &ConsumerConfig,
    handler: &H,
) -> Result<BatchReport, OutboxError> {
    let started = Instant::now();
    let txn = db.begin().await?;
    let limit = i64::from(config.batch_size.max(1));
    let mut claimed: Vec<(Claim, ClaimedEvent)> = txn
        .query_all_raw(stmt(CLAIM_NEW, [limit.into()]))
        .await?
        .iter()
        .map(|row| read_claimed(row).map(|e| (Claim::New, e)))
        .collect::<Result<_, _>>()?;
    let room = limit - claimed.len() as i64;
    if room > 0 {
        for row in txn.query_all_raw(stmt(CLAIM_DUE, [room.into()])).await? {
            claimed.push((Claim::Due, read_claimed(&row)?));
        }
    }
    if claimed.is_empty() {
        txn.commit().await?;
        return Ok(BatchReport::default());
    }

    let mut report = BatchReport {
        claimed: claimed.len(),
        ..BatchReport::default()
    };
    let mut latencies = Vec::with_capacity(claimed.len());
    for (claim, event) in &claimed {
        match process_one(&txn, config, handler, *claim, event).await? {
            Outcome::Processed => {
                report.processed += 1;
                latencies.push(event.age_at_claim + started.elapsed());
            }
            Outcome::Duplicate => report.duplicates += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::Dead => report.dead += 1,
        }
    }
    // Fault injection for the chaos suite: die with every effect applied but
    // nothing committed.
    fail::fail_point!("worker-before-commit", |_| std::process::abort());
    txn.commit().await?;

    metrics::histogram!("aplus_worker_batch_size").record(report.claimed as f64);
    metrics::counter!("aplus_worker_events_total", "outcome" => "processed")
        .increment(report.processed as u64);
    metrics::counter!("aplus_worker_events_total", "outcome" => "failed")
        .increment(report.failed as u64);
    metrics::counter!("aplus_worker_events_total", "outcome" => "dead")
        .increment(report.dead as u64);
    metrics::counter!("aplus_worker_events_total", "outcome" => "duplicate")
        .increment(report.duplicates as u64);
    for latency in latencies {
        metrics::histogram!("aplus_worker_event_latency_seconds").record(latency.as_secs_f64());
    }
    Ok(report)
}

enum Outcome {
    Processed,
    Duplicate,
    Failed,
    Dead,
}

async fn process_one<H: Handler>(
    txn: &DatabaseTransaction,
    config: &ConsumerConfig,
    handler: &H,
    claim: Claim,
    event: &ClaimedEvent,
) -> Result<Outcome, OutboxError> {
    let savepoint = txn.begin().await?;
    let mark = match claim {
        Claim::New => MARK_NEW_PROCESSED,
        Claim::Due => MARK_RETRY_PROCESSED,
    };
    let marked = savepoint
        .query_one_raw(stmt(mark, [event.id.into(), config.worker.clone().into()]))
        .await?;
    if marked.is_none() {
        // Another worker completed it between our scan and our lock.
        savepoint.rollback().await?;
        tracing::debug!(event_id = %event.id, "already processed elsewhere");
        return Ok(Outcome::Duplicate);
    }

    let result = AssertUnwindSafe(handler.handle(&savepoint, event))
        .catch_unwind()
        .await;
    let error = match result {
        Ok(Ok(())) => {
            fail::fail_point!("worker-after-effect", |_| std::process::abort());
            savepoint.commit().await?;
            return Ok(Outcome::Processed);
        }
        Ok(Err(error)) => format!("{error:#}"),
        Err(panic) => format!("handler panicked: {}", panic_text(&panic)),
    };
    savepoint.rollback().await?;

    let attempts = event.attempts.saturating_add(1);
    let dead = attempts as u32 >= config.max_attempts;
    let delay = config.retry.delay(attempts as u32);
    let error = truncate(&crate::sanitize::text(&error), MAX_ERROR_LEN);
    txn.execute_raw(stmt(
        RECORD_FAILURE,
        [
            event.id.into(),
            if dead { "dead" } else { "failed" }.into(),
            attempts.into(),
            error.clone().into(),
            delay.as_secs_f64().into(),
            config.worker.clone().into(),
        ],
    ))
    .await?;
    if dead {
        tracing::error!(event_id = %event.id, message_id = event.message_id, attempts, error = %error, "event is dead after its last attempt");
        Ok(Outcome::Dead)
    } else {
        tracing::warn!(event_id = %event.id, message_id = event.message_id, attempts, retry_in = ?delay, error = %error, "event failed; will retry");
        Ok(Outcome::Failed)
    }
}

fn read_claimed(row: &QueryResult) -> Result<ClaimedEvent, OutboxError> {
    let kind: String = row.try_get_by("kind")?;
    let age: f64 = row.try_get_by("age")?;
    Ok(ClaimedEvent {
        id: row.try_get_by("id")?,
        message_id: row.try_get_by("message_id")?,
        kind: kind.parse().map_err(OutboxError::Unreadable)?,
        payload: row.try_get_by("payload")?,
        created_at: row.try_get_by("created_at")?,
        attempts: row.try_get_by("attempts")?,
        age_at_claim: Duration::from_secs_f64(age.max(0.0)),
    })
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
