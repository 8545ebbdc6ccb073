//! The counts behind the pass's record, `diagnose` and the dashboard, with
//! the same definitions as the views (`pipeline_health`,
//! `event_message_ratio`, `processing_rate`, `orphaned_events`), written so
//! the planner can see their bounds.
//!
//! The views compare with values it only learns while executing (the
//! watermark from a sub-select, windows from a `VALUES` list), so it
//! assumes a third of the table matches and hashes all of `inbox`; at a
//! million events that takes seconds. Here every bound is a plan-time
//! constant: time windows are `now() - interval '...'`, which the planner
//! evaluates when estimating, and the watermark, read first, is written
//! into the statement as a literal (a `u64`, so nothing can be injected).
//! Each count then walks an index over only the rows it counts.

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;

use crate::error::Result;
use crate::sql::{count, float, one};
use crate::tools::orphans::OrphanRow;

/// Unclaimed, failed and dead events; the listener; the latest activity.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Health {
    pub observed_at: DateTime<Utc>,
    pub watermark: u64,
    pub unclaimed: u64,
    /// Unclaimed and older than the grace.
    pub orphans: u64,
    pub oldest_pending_secs: Option<f64>,
    pub failed: u64,
    /// Failed with the retry overdue by more than the grace.
    pub retries_overdue: u64,
    pub dead: u64,
    pub listeners: u64,
    pub sees_all_sessions: bool,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub last_processed_at: Option<DateTime<Utc>>,
}

/// `grace` in whole milliseconds, as SQL text.
fn grace_sql(grace: std::time::Duration) -> String {
    format!("interval '{} milliseconds'", grace.as_millis())
}

pub(crate) async fn health<C: ConnectionTrait>(
    db: &C,
    grace: std::time::Duration,
) -> Result<Health> {
    let watermark = outbox::watermark::current(db).await?;
    let grace = grace_sql(grace);
    let row = one(
        db.query_one_raw(stmt(
            &format!(
                "SELECT now() AS observed_at, \
                   u.unclaimed, u.orphans, \
                   extract(epoch FROM now() - u.oldest)::float8 AS oldest_pending, \
                   (SELECT count(*) FROM inbox WHERE status = 'failed') AS failed, \
                   (SELECT count(*) FROM inbox \
                    WHERE status = 'failed' AND next_attempt_at < now() - {grace}) AS overdue, \
                   (SELECT count(*) FROM inbox WHERE status = 'dead') AS dead, \
                   (SELECT count(*) FROM pg_stat_activity \
                    WHERE datname = current_database() AND query = 'LISTEN \"events\"') AS listeners, \
                   (pg_has_role('pg_read_all_stats', 'MEMBER') \
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)) AS sees_all, \
                   (SELECT max(received_at) FROM messages) AS last_message_at, \
                   (SELECT max(created_at) FROM events) AS last_event_at, \
                   (SELECT max(processed_at) FROM inbox) AS last_processed_at \
                 FROM (SELECT count(*) AS unclaimed, \
                              count(*) FILTER (WHERE e.created_at < now() - {grace}) AS orphans, \
                              min(e.created_at) AS oldest \
                       FROM events e \
                       WHERE e.txid >= '{watermark}'::xid8 \
                         AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)) u"
            ),
            [],
        ))
        .await?,
        "the health counts",
    )?;
    Ok(Health {
        observed_at: row.try_get_by("observed_at")?,
        watermark,
        unclaimed: count(&row, "unclaimed")?,
        orphans: count(&row, "orphans")?,
        oldest_pending_secs: float(&row, "oldest_pending")?,
        failed: count(&row, "failed")?,
        retries_overdue: count(&row, "overdue")?,
        dead: count(&row, "dead")?,
        listeners: count(&row, "listeners")?,
        sees_all_sessions: row
            .try_get_by::<Option<bool>, _>("sees_all")?
            .unwrap_or(false),
        last_message_at: row.try_get_by("last_message_at")?,
        last_event_at: row.try_get_by("last_event_at")?,
        last_processed_at: row.try_get_by("last_processed_at")?,
    })
}

/// `event_message_ratio`'s rule: 1.0 when both are zero, undefined when
/// there are events but no messages, else events per message (4 decimals).
pub(crate) fn ratio(messages: u64, events: u64) -> Option<f64> {
    match (messages, events) {
        (0, 0) => Some(1.0),
        (0, _) => None,
        (m, e) => Some((e as f64 / m as f64 * 10_000.0).round() / 10_000.0),
    }
}

/// `processing_rate`'s rule: 1.0 with no events, else the processed share.
pub(crate) fn rate(events: u64, processed: u64) -> Option<f64> {
    if events == 0 {
        Some(1.0)
    } else {
        Some((processed as f64 / events as f64 * 10_000.0).round() / 10_000.0)
    }
}

/// Messages and `message.created` events of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Window {
    pub messages: u64,
    pub created_events: u64,
}

/// The last hour and the last day, and the last hour's messages without an event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Ratios {
    pub hour: Window,
    pub day: Window,
    pub missing_hour: u64,
}

fn window_sql(interval: &str) -> String {
    format!(
        "(SELECT count(*) FROM messages WHERE received_at >= now() - interval '{interval}') AS m_{0}, \
         (SELECT count(*) FROM events WHERE kind = 'message.created' \
            AND created_at >= now() - interval '{interval}') AS e_{0}",
        interval.replace(' ', "_")
    )
}

pub(crate) async fn ratios<C: ConnectionTrait>(db: &C, with_day: bool) -> Result<Ratios> {
    let mut sql = format!(
        "SELECT {}, \
           (SELECT count(*) FROM messages m \
            WHERE m.received_at >= now() - interval '1 hour' \
              AND NOT EXISTS (SELECT 1 FROM events e \
                              WHERE e.message_id = m.id AND e.kind = 'message.created')) AS missing",
        window_sql("1 hour")
    );
    if with_day {
        sql.push_str(&format!(", {}", window_sql("24 hours")));
    }
    let row = one(db.query_one_raw(stmt(&sql, [])).await?, "the ratio counts")?;
    Ok(Ratios {
        hour: Window {
            messages: count(&row, "m_1_hour")?,
            created_events: count(&row, "e_1_hour")?,
        },
        day: if with_day {
            Window {
                messages: count(&row, "m_24_hours")?,
                created_events: count(&row, "e_24_hours")?,
            }
        } else {
            Window::default()
        },
        missing_hour: count(&row, "missing")?,
    })
}

/// What became of the last hour's events, and the last day's processed share.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Processing {
    pub events: u64,
    pub processed: u64,
    pub failed: u64,
    pub dead: u64,
    pub pending: u64,
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
    pub max_secs: Option<f64>,
    /// Events older than the grace, and how many of them are processed.
    pub settled: u64,
    pub settled_processed: u64,
    pub day_events: u64,
    pub day_processed: u64,
}

pub(crate) async fn processing<C: ConnectionTrait>(
    db: &C,
    grace: std::time::Duration,
    with_day: bool,
) -> Result<Processing> {
    let grace = grace_sql(grace);
    let row = one(
        db.query_one_raw(stmt(
            &format!(
                "SELECT count(*) AS events, \
                   count(*) FILTER (WHERE i.status = 'processed') AS processed, \
                   count(*) FILTER (WHERE i.status = 'failed') AS failed, \
                   count(*) FILTER (WHERE i.status = 'dead') AS dead, \
                   count(*) FILTER (WHERE i.event_id IS NULL) AS pending, \
                   extract(epoch FROM percentile_cont(0.5) WITHIN GROUP \
                     (ORDER BY i.processed_at - e.created_at) \
                     FILTER (WHERE i.status = 'processed'))::float8 AS p50, \
                   extract(epoch FROM percentile_cont(0.95) WITHIN GROUP \
                     (ORDER BY i.processed_at - e.created_at) \
                     FILTER (WHERE i.status = 'processed'))::float8 AS p95, \
                   extract(epoch FROM max(i.processed_at - e.created_at))::float8 AS max, \
                   count(*) FILTER (WHERE e.created_at < now() - {grace}) AS settled, \
                   count(*) FILTER (WHERE e.created_at < now() - {grace} \
                                      AND i.status = 'processed') AS settled_processed \
                 FROM events e LEFT JOIN inbox i ON i.event_id = e.id \
                 WHERE e.created_at >= now() - interval '1 hour'"
            ),
            [],
        ))
        .await?,
        "the processing counts",
    )?;
    let mut p = Processing {
        events: count(&row, "events")?,
        processed: count(&row, "processed")?,
        failed: count(&row, "failed")?,
        dead: count(&row, "dead")?,
        pending: count(&row, "pending")?,
        p50_secs: float(&row, "p50")?,
        p95_secs: float(&row, "p95")?,
        max_secs: float(&row, "max")?,
        settled: count(&row, "settled")?,
        settled_processed: count(&row, "settled_processed")?,
        ..Processing::default()
    };
    if with_day {
        let row = one(
            db.query_one_raw(stmt(
                "SELECT count(*) AS events, \
                        count(*) FILTER (WHERE i.status = 'processed') AS processed \
                 FROM events e LEFT JOIN inbox i ON i.event_id = e.id \
                 WHERE e.created_at >= now() - interval '24 hours'",
                [],
            ))
            .await?,
            "the day's processing counts",
        )?;
        p.day_events = count(&row, "events")?;
        p.day_processed = count(&row, "processed")?;
    }
    Ok(p)
}

/// `orphaned_events` with the given grace: never claimed for longer than
/// the grace, or failed with the retry overdue by more than it; created
/// since `since` if given; oldest first, at most `limit`.
pub(crate) async fn orphan_rows<C: ConnectionTrait>(
    db: &C,
    grace: std::time::Duration,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<OrphanRow>> {
    let watermark = outbox::watermark::current(db).await?;
    let grace = grace_sql(grace);
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT * FROM ( \
                   (SELECT e.id AS event_id, e.message_id, e.kind, e.created_at, \
                           extract(epoch FROM now() - e.created_at)::float8 AS age, \
                           'never_claimed'::text AS reason, 0 AS attempts, NULL::text AS last_error \
                    FROM events e \
                    WHERE e.txid >= '{watermark}'::xid8 \
                      AND e.created_at < now() - {grace} \
                      AND ($1::timestamptz IS NULL OR e.created_at >= $1) \
                      AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id) \
                    ORDER BY e.created_at, e.id LIMIT $2) \
                   UNION ALL \
                   (SELECT e.id, e.message_id, e.kind, e.created_at, \
                           extract(epoch FROM now() - e.created_at)::float8, \
                           'retry_overdue', i.attempts, i.last_error \
                    FROM inbox i JOIN events e ON e.id = i.event_id \
                    WHERE i.status = 'failed' AND i.next_attempt_at < now() - {grace} \
                      AND ($1::timestamptz IS NULL OR e.created_at >= $1) \
                    ORDER BY e.created_at, e.id LIMIT $2)) o \
                 ORDER BY created_at, event_id LIMIT $2"
            ),
            [since.into(), limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(OrphanRow {
                event_id: row.try_get_by("event_id")?,
                message_id: row.try_get_by("message_id")?,
                kind: row.try_get_by("kind")?,
                created_at: row.try_get_by("created_at")?,
                age_secs: row.try_get_by("age")?,
                reason: row.try_get_by("reason")?,
                attempts: row.try_get_by("attempts")?,
                last_error: row.try_get_by("last_error")?,
            })
        })
        .collect()
}
