//! `reconciler_runs`: the record each pass leaves, and the cursor the next
//! pass starts from.
//!
//! A pass that scanned up to its horizon writes `messages_scanned_through =
//! started_at`; one that ran out of page budget writes where it stopped. The
//! next pass tells the two apart with that equality, and only the first kind
//! is restarted a safety margin earlier: a pass that is catching up resumes
//! exactly where it stopped, so a burst bigger than one pass's budget is
//! worked through instead of rescanned forever.

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::error::Result;
use crate::sql::{count, float};

/// Where the previous pass's missing-event scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousScan {
    /// `messages_scanned_through` of the latest run that recorded one.
    pub through: DateTime<Utc>,
    /// Whether that scan reached its horizon.
    pub complete: bool,
}

/// Reads the latest recorded scan position, if any pass ever recorded one.
pub async fn previous_scan<C: ConnectionTrait>(db: &C) -> Result<Option<PreviousScan>> {
    let row = db
        .query_one_raw(stmt(
            "SELECT messages_scanned_through AS through, \
                    messages_scanned_through >= started_at AS complete \
             FROM reconciler_runs WHERE messages_scanned_through IS NOT NULL \
             ORDER BY finished_at DESC, id DESC LIMIT 1",
            [],
        ))
        .await?;
    match row {
        Some(row) => Ok(Some(PreviousScan {
            through: row.try_get_by("through")?,
            complete: row.try_get_by("complete")?,
        })),
        None => Ok(None),
    }
}

/// One row of `reconciler_runs`, as written and as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Identity of the row (0 before it is written).
    pub id: i64,
    /// The instance that ran the pass.
    pub instance: String,
    /// The pass's `now` (database clock).
    pub started_at: DateTime<Utc>,
    /// When the row was written (database clock).
    pub finished_at: Option<DateTime<Utc>>,
    pub missing_events_created: u64,
    pub orphans_refired: u64,
    pub retries_due: u64,
    pub dead_events: u64,
    pub pruned_events: u64,
    pub pruned_inbox: u64,
    pub backlog: u64,
    /// `event_message_ratio` of the last hour.
    pub ratio: Option<f64>,
    /// `processing_rate` of the last hour.
    pub processing_rate: Option<f64>,
    /// The missing-event scan's cursor.
    pub messages_scanned_through: Option<DateTime<Utc>>,
    /// Failed steps, one per line; `None` when every step succeeded.
    pub error: Option<String>,
}

/// Writes a run row and returns its id.
pub async fn insert<C: ConnectionTrait>(db: &C, run: &RunRecord) -> Result<i64> {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let row = db
        .query_one_raw(stmt(
            "INSERT INTO reconciler_runs (instance, started_at, missing_events_created, \
               orphans_refired, retries_due, dead_events, pruned_events, pruned_inbox, backlog, \
               ratio, processing_rate, messages_scanned_through, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
               round($10::float8::numeric, 4), round($11::float8::numeric, 4), $12, $13) \
             RETURNING id",
            [
                run.instance.clone().into(),
                run.started_at.into(),
                as_i64(run.missing_events_created).into(),
                as_i64(run.orphans_refired).into(),
                as_i64(run.retries_due).into(),
                as_i64(run.dead_events).into(),
                as_i64(run.pruned_events).into(),
                as_i64(run.pruned_inbox).into(),
                as_i64(run.backlog).into(),
                run.ratio.into(),
                run.processing_rate.into(),
                run.messages_scanned_through.into(),
                run.error.clone().into(),
            ],
        ))
        .await?;
    let row = crate::sql::one(row, "the run insert")?;
    Ok(row.try_get_by("id")?)
}

/// Deletes up to `limit` runs that finished before `before`, oldest first:
/// the table keeps the retention's worth of history, not every pass ever.
pub async fn prune<C: ConnectionTrait>(db: &C, before: DateTime<Utc>, limit: i64) -> Result<u64> {
    let result = db
        .execute_raw(stmt(
            "DELETE FROM reconciler_runs WHERE id IN ( \
               SELECT id FROM reconciler_runs WHERE finished_at < $1 \
               ORDER BY finished_at LIMIT $2)",
            [before.into(), limit.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// The most recent runs, newest first.
pub async fn recent<C: ConnectionTrait>(db: &C, limit: i64) -> Result<Vec<RunRecord>> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT id, instance, started_at, finished_at, missing_events_created, \
                    orphans_refired, retries_due, dead_events, pruned_events, pruned_inbox, \
                    backlog, ratio::float8 AS ratio, processing_rate::float8 AS processing_rate, \
                    messages_scanned_through, error \
             FROM reconciler_runs ORDER BY finished_at DESC, id DESC LIMIT $1",
            [limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(RunRecord {
                id: row.try_get_by("id")?,
                instance: row.try_get_by("instance")?,
                started_at: row.try_get_by("started_at")?,
                finished_at: row.try_get_by("finished_at")?,
                missing_events_created: count(row, "missing_events_created")?,
                orphans_refired: count(row, "orphans_refired")?,
                retries_due: count(row, "retries_due")?,
                dead_events: count(row, "dead_events")?,
                pruned_events: count(row, "pruned_events")?,
                pruned_inbox: count(row, "pruned_inbox")?,
                backlog: count(row, "backlog")?,
                ratio: float(row, "ratio")?,
                processing_rate: float(row, "processing_rate")?,
                messages_scanned_through: row.try_get_by("messages_scanned_through")?,
                error: row.try_get_by("error")?,
            })
        })
        .collect()
}
