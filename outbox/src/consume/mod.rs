//! Claiming events and completing each with its inbox row and effects.
//!
//! One batch is one transaction: claim up to `batch_size` events with
//! `FOR UPDATE SKIP LOCKED` (so any number of workers share the work), write
//! the inbox rows of the whole batch in one statement, and hand the batch to
//! [`Handler::handle_batch`], which applies the effects set-based. An event's
//! inbox row and its effects commit together: a crash anywhere rolls both
//! back, and a second delivery finds the inbox row and applies nothing.
//!
//! The fast path runs inside one savepoint. If it fails, the savepoint rolls
//! back and the batch is handled again one event at a time, each in its own
//! savepoint ([`Handler::handle`]); a failing event then records its failure
//! (attempts, backoff, last error), so one poison event never holds up the
//! rest of its batch.
//!
//! A [`Consumer`] remembers where its last claim ended, so the next claim does
//! not walk again over the events it just completed (see [`Consumer`]).
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

use crate::sql::stmt;
use crate::watermark::parse_xid;
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

    /// Handles a whole batch, in claim order. An error (or a panic) rolls the
    /// batch back and each event is then handled alone with
    /// [`Handler::handle`], so a batch implementation may simply fail on the
    /// first problem. The default handles the events one by one.
    fn handle_batch<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        events: &'a [ClaimedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            for event in events {
                self.handle(txn, event).await?;
            }
            Ok(())
        }
    }
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

// The watermark comes from a stable function rather than a sub-select, so
// the planner walks `events_txid` from it (see migration m20261127_000006).
// The inbox is probed per event through a scalar sub-select, which the
// planner cannot turn into a join: as `NOT EXISTS` it may hash the whole
// inbox instead, and does so whenever its statistics are stale (a table
// that grew fast since the last ANALYZE, as in a drained backlog). The
// cursor ($2, $3) starts the walk where this consumer's last claim ended;
// `('0', nil)` means "from the watermark". The snapshot's xmin tells the
// consumer how far its cursor may move (see `Consumer`).
const CLAIM_NEW: &str = r#"
SELECT e.id, e.message_id, e.kind, e.payload, e.created_at, 0 AS attempts,
       extract(epoch FROM now() - e.created_at)::float8 AS age,
       e.txid::text AS txid,
       pg_snapshot_xmin(pg_current_snapshot())::text AS xmin
FROM events e
WHERE e.txid >= outbox_processed_through()
  AND (e.txid, e.id) > ($2::text::xid8, $3::uuid)
  AND (SELECT true FROM inbox i WHERE i.event_id = e.id) IS NULL
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

/// The inbox rows of a whole batch of new events in one statement. An event
/// another consumer completed between our scan and our lock (its inbox row
/// exists) is not returned and is handled by nobody here.
const MARK_ALL_NEW_PROCESSED: &str = r#"
INSERT INTO inbox (event_id, status, attempts, processed_at, worker)
SELECT id, 'processed', 1, now(), $2 FROM unnest($1::uuid[]) AS id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"#;

/// [`MARK_ALL_NEW_PROCESSED`] when the batch also holds due retries, whose
/// rows are updated (unless no longer `failed`). Kept apart so the common
/// batch does not plan an UPDATE of the inbox at all.
const MARK_PROCESSED: &str = r#"
WITH new AS (
  INSERT INTO inbox (event_id, status, attempts, processed_at, worker)
  SELECT id, 'processed', 1, now(), $3 FROM unnest($1::uuid[]) AS id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id),
due AS (
  UPDATE inbox
     SET status = 'processed', attempts = attempts + 1, processed_at = now(),
         next_attempt_at = NULL, worker = $3
   WHERE event_id = ANY($2::uuid[]) AND status = 'failed'
  RETURNING event_id)
SELECT event_id FROM new UNION ALL SELECT event_id FROM due
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

/// How long a consumer follows its cursor before its next claim starts from
/// the watermark again.
///
/// The cursor skips events that another consumer had locked when the cursor
/// passed them. They are nearly always completed by that consumer; if its
/// batch rolls back instead, they wait below every other cursor until the
/// next claim from the watermark, at most this long.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// A position in the outbox: `(txid, event id)`, in claim order.
type Position = (u64, Uuid);

/// A consumer loop's claims, which resume where the previous one ended.
///
/// Claiming from the watermark alone walks again, at every claim, over every
/// event completed since the watermark last moved (it moves every second or
/// so): at thousands of events a second that walk is most of a claim's cost.
/// The cursor is exact for what it skips: after a claim whose snapshot had
/// `xmin` X, every event of a transaction below X is visible, so each event
/// the claim walked past was completed, or locked by another consumer, or
/// claimed here. The cursor moves to the last event claimed, but never past
/// X: an event of a transaction still running at X may commit later with a
/// smaller position. Events locked by others are covered by
/// [`RESCAN_INTERVAL`]; after a batch of ours fails, the next claim starts
/// from the watermark.
#[derive(Debug)]
pub struct Consumer {
    config: ConsumerConfig,
    cursor: Option<Position>,
    last_rescan: Option<Instant>,
}

impl Consumer {
    /// A consumer whose first claim starts from the watermark.
    pub fn new(config: ConsumerConfig) -> Self {
        Self {
            config,
            cursor: None,
            last_rescan: None,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Claims one batch, handles it and commits; see [`process_batch`].
    pub async fn next_batch<H: Handler>(
        &mut self,
        db: &DatabaseConnection,
        handler: &H,
    ) -> Result<BatchReport, OutboxError> {
        if self
            .last_rescan
            .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL)
        {
            self.cursor = None;
        }
        if self.cursor.is_none() {
            self.last_rescan = Some(Instant::now());
        }
        match run_batch(db, &self.config, handler, self.cursor).await {
            Ok((report, next)) => {
                if next.is_some() {
                    self.cursor = next;
                }
                Ok(report)
            }
            Err(error) => {
                self.cursor = None;
                Err(error)
            }
        }
    }
}

/// Claims one batch from the watermark, handles every event in it, and
/// commits. Returns what it did; an `Err` means the whole batch rolled back
/// (a database problem) and its events will be claimed again. A loop that
/// claims again and again should use a [`Consumer`].
pub async fn process_batch<H: Handler>(
    db: &DatabaseConnection,
    config: &ConsumerConfig,
    handler: &H,
) -> Result<BatchReport, OutboxError> {
    run_batch(db, config, handler, None)
        .await
        .map(|(report, _)| report)
}

/// One batch from `cursor` (or the watermark); returns the report and where
/// the next claim may start.
// Errors are logged by the caller, which limits how often (one line per
// failed batch from each loop would flood the log during an outage).
#[tracing::instrument(level = "debug", skip_all, fields(worker = %config.worker), err(level = "debug"))]
async fn run_batch<H: Handler>(
    db: &DatabaseConnection,
    config: &ConsumerConfig,
    handler: &H,
    cursor: Option<Position>,
) -> Result<(BatchReport, Option<Position>), OutboxError> {
    let started = Instant::now();
    let txn = db.begin().await?;
    let limit = i64::from(config.batch_size.max(1));
    let (from_txid, from_id) = cursor.unwrap_or((0, Uuid::nil()));
    let rows = txn
        .query_all_raw(stmt(
            CLAIM_NEW,
            [limit.into(), from_txid.to_string().into(), from_id.into()],
        ))
        .await?;
    let next = next_cursor(rows.last())?;
    let mut claimed: Vec<(Claim, ClaimedEvent)> = rows
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
        return Ok((BatchReport::default(), next));
    }

    let mut report = BatchReport {
        claimed: claimed.len(),
        ..BatchReport::default()
    };
    let handled = match handle_together(&txn, config, handler, &claimed).await? {
        Some(processed) => {
            report.processed = processed.len();
            report.duplicates = claimed.len() - processed.len();
            processed
        }
        None => {
            metrics::counter!("aplus_worker_batch_fallbacks_total").increment(1);
            handle_one_by_one(&txn, config, handler, &claimed, &mut report).await?
        }
    };
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
    let elapsed = started.elapsed();
    for event in handled {
        metrics::histogram!("aplus_worker_event_latency_seconds")
            .record((event.age_at_claim + elapsed).as_secs_f64());
    }
    Ok((report, next))
}

/// Where the next claim may start after a claim whose last row is `last`:
/// that row's position, but never past the claim snapshot's xmin.
fn next_cursor(last: Option<&QueryResult>) -> Result<Option<Position>, OutboxError> {
    let Some(row) = last else {
        return Ok(None);
    };
    let txid = parse_xid(&row.try_get_by::<String, _>("txid")?)?;
    let xmin = parse_xid(&row.try_get_by::<String, _>("xmin")?)?;
    let id: Uuid = row.try_get_by("id")?;
    Ok(Some(if txid < xmin {
        (txid, id)
    } else {
        (xmin, Uuid::nil())
    }))
}

/// The fast path: every inbox row in one statement, then the handler's
/// batch, all in one savepoint. Returns the events processed, or `None` when
/// the handler failed and the savepoint rolled back.
async fn handle_together<'c, H: Handler>(
    txn: &DatabaseTransaction,
    config: &ConsumerConfig,
    handler: &H,
    claimed: &'c [(Claim, ClaimedEvent)],
) -> Result<Option<Vec<&'c ClaimedEvent>>, OutboxError> {
    let ids = |wanted: Claim| -> Vec<Uuid> {
        claimed
            .iter()
            .filter(|(claim, _)| *claim == wanted)
            .map(|(_, e)| e.id)
            .collect()
    };
    let savepoint = txn.begin().await?;
    let due = ids(Claim::Due);
    let mark = if due.is_empty() {
        stmt(
            MARK_ALL_NEW_PROCESSED,
            [ids(Claim::New).into(), config.worker.clone().into()],
        )
    } else {
        stmt(
            MARK_PROCESSED,
            [
                ids(Claim::New).into(),
                due.into(),
                config.worker.clone().into(),
            ],
        )
    };
    let marked: std::collections::HashSet<Uuid> = savepoint
        .query_all_raw(mark)
        .await?
        .iter()
        .map(|row| row.try_get_by::<Uuid, _>("event_id"))
        .collect::<Result<_, _>>()?;
    let (events, refs): (Vec<ClaimedEvent>, Vec<&ClaimedEvent>) = claimed
        .iter()
        .filter(|(_, e)| marked.contains(&e.id))
        .map(|(_, e)| (e.clone(), e))
        .unzip();
    if events.len() < claimed.len() {
        tracing::debug!(
            duplicates = claimed.len() - events.len(),
            "events already processed elsewhere"
        );
    }
    if events.is_empty() {
        savepoint.commit().await?;
        return Ok(Some(refs));
    }
    let result = AssertUnwindSafe(handler.handle_batch(&savepoint, &events))
        .catch_unwind()
        .await;
    match result {
        Ok(Ok(())) => {
            fail::fail_point!("worker-after-effect", |_| std::process::abort());
            savepoint.commit().await?;
            Ok(Some(refs))
        }
        Ok(Err(error)) => {
            tracing::debug!(events = events.len(), error = %format!("{error:#}"), "batch failed; handling its events one by one");
            savepoint.rollback().await?;
            Ok(None)
        }
        Err(panic) => {
            tracing::debug!(events = events.len(), panic = %panic_text(&panic), "batch panicked; handling its events one by one");
            savepoint.rollback().await?;
            Ok(None)
        }
    }
}

/// The slow path after a failed batch: each event in its own savepoint, so
/// one failure is recorded without undoing the others.
async fn handle_one_by_one<'c, H: Handler>(
    txn: &DatabaseTransaction,
    config: &ConsumerConfig,
    handler: &H,
    claimed: &'c [(Claim, ClaimedEvent)],
    report: &mut BatchReport,
) -> Result<Vec<&'c ClaimedEvent>, OutboxError> {
    let mut processed = Vec::with_capacity(claimed.len());
    for (claim, event) in claimed {
        match process_one(txn, config, handler, *claim, event).await? {
            Outcome::Processed => {
                report.processed += 1;
                processed.push(event);
            }
            Outcome::Duplicate => report.duplicates += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::Dead => report.dead += 1,
        }
    }
    Ok(processed)
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
