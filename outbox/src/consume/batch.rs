//! One batch: the inbox rows and the handler's effects, set-based on the
//! fast path, one event per savepoint after a failure.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt as _;
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, TransactionTrait as _,
};
use uuid::Uuid;

use super::claim::{Claim, claim};
use super::{BatchReport, ClaimedEvent, ConsumerConfig, Handler, Position};
use crate::OutboxError;
use crate::sql::stmt;

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

/// One batch from `cursor` (or the watermark); returns the report and where
/// the next claim may start.
// Errors are logged by the caller, which limits how often (one line per
// failed batch from each loop would flood the log during an outage).
#[tracing::instrument(level = "debug", skip_all, fields(worker = %config.worker), err(level = "debug"))]
pub(super) async fn run_batch<H: Handler>(
    db: &DatabaseConnection,
    config: &ConsumerConfig,
    handler: &H,
    cursor: Option<Position>,
) -> Result<(BatchReport, Option<Position>), OutboxError> {
    let started = Instant::now();
    let txn = db.begin().await?;
    let limit = i64::from(config.batch_size.max(1));
    let (claimed, next) = claim(&txn, limit, cursor).await?;
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
