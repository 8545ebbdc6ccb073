//! The reconciler's writes against `events` and `inbox`: creating missing
//! `message.created` events, re-firing orphans, replaying dead events and
//! pruning. Every function is one bounded page of work; the caller pages
//! with the returned cursor and passes time horizons in, so tests control
//! time while selection itself compares against the database clock.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use uuid::Uuid;

use crate::OutboxError;
use crate::payload::{self, MessageCreated, Source};
use crate::record::lock_message_ids;
use crate::sql::stmt;

/// A position in `messages` ordered by `(received_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCursor {
    pub received_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of the missing-event scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPage {
    /// Messages examined.
    pub scanned: u64,
    /// Events created, with their ids (to NOTIFY after commit).
    pub created: Vec<Uuid>,
    /// Where the next page starts; `None` when the range is exhausted.
    pub next: Option<MessageCursor>,
}

const SCAN_MISSING: &str = r#"
WITH page AS (
  SELECT m.id, m.channel_id, m.received_at
  FROM messages m
  WHERE (m.received_at, m.id) > ($1, $2) AND m.received_at < $3
  ORDER BY m.received_at, m.id
  LIMIT $4)
SELECT p.id, p.channel_id, p.received_at,
       NOT EXISTS (SELECT 1 FROM events e
                   WHERE e.message_id = p.id AND e.kind = 'message.created') AS missing
FROM page p
ORDER BY p.received_at, p.id
"#;

const INSERT_MISSING: &str = r#"
INSERT INTO events (id, message_id, kind, payload)
SELECT ev, mid, 'message.created', pl
FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[]) AS t(ev, mid, pl)
WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = mid)
ON CONFLICT (message_id) WHERE kind = 'message.created' DO NOTHING
RETURNING id
"#;

/// Examines one page of messages received in `(after, until)` and writes the
/// `message.created` event of each message that has none.
pub async fn create_missing_events(
    txn: &DatabaseTransaction,
    after: MessageCursor,
    until: DateTime<Utc>,
    page: i64,
) -> Result<MissingPage, OutboxError> {
    let rows = txn
        .query_all_raw(stmt(
            SCAN_MISSING,
            [
                after.received_at.into(),
                after.id.into(),
                until.into(),
                page.into(),
            ],
        ))
        .await?;
    let mut missing = Vec::new();
    let mut last = None;
    for row in &rows {
        let id: i64 = row.try_get_by("id")?;
        let received_at: DateTime<Utc> = row.try_get_by("received_at")?;
        last = Some(MessageCursor { received_at, id });
        if row.try_get_by::<bool, _>("missing")? {
            missing.push((id, row.try_get_by::<i64, _>("channel_id")?));
        }
    }
    let mut created = Vec::new();
    if !missing.is_empty() {
        let ids: Vec<i64> = missing.iter().map(|(id, _)| *id).collect();
        // The same lock the bot takes: a message being written right now is
        // either committed with its event before we look, or after our event.
        lock_message_ids(txn, &ids).await?;
        let event_ids: Vec<Uuid> = missing.iter().map(|_| Uuid::now_v7()).collect();
        let payloads: Vec<serde_json::Value> = missing
            .iter()
            .map(|(_, channel)| {
                payload::to_json(&MessageCreated::new(*channel, Source::Reconciler))
            })
            .collect();
        for row in txn
            .query_all_raw(stmt(
                INSERT_MISSING,
                [event_ids.into(), ids.into(), payloads.into()],
            ))
            .await?
        {
            created.push(row.try_get_by::<Uuid, _>("id")?);
        }
    }
    Ok(MissingPage {
        scanned: rows.len() as u64,
        created,
        next: if (rows.len() as i64) < page {
            None
        } else {
            last
        },
    })
}

/// Events due for a nudge: never claimed although older than the grace, or
/// failed with their retry due. Returns their ids, oldest first. "Never
/// claimed" is the SQL function `outbox_pending_events()`, which the planner
/// inlines, so this still walks `events_txid` from the watermark.
pub async fn orphans<C: ConnectionTrait>(
    db: &C,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, OutboxError> {
    let rows = db
        .query_all_raw(stmt(
            r#"
            (SELECT e.id FROM outbox_pending_events() e
             WHERE e.created_at < $1
             ORDER BY e.txid, e.id
             LIMIT $2)
            UNION ALL
            (SELECT i.event_id FROM inbox i
             WHERE i.status = 'failed' AND i.next_attempt_at <= now()
             ORDER BY i.next_attempt_at
             LIMIT $2)
            "#,
            [older_than.into(), limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<Uuid>(0).map_err(OutboxError::from))
        .collect()
}

/// Dead events an operator may replay, oldest first.
pub async fn dead_events<C: ConnectionTrait>(
    db: &C,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<Uuid>, OutboxError> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT event_id FROM inbox WHERE status = 'dead' \
             AND ($1::timestamptz IS NULL OR first_seen_at >= $1) \
             ORDER BY first_seen_at LIMIT $2",
            [since.into(), limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<Uuid>(0).map_err(OutboxError::from))
        .collect()
}

/// Gives dead events a fresh set of attempts, due now. Returns those replayed.
pub async fn replay_dead<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, OutboxError> {
    let rows = db
        .query_all_raw(stmt(
            "UPDATE inbox SET status = 'failed', attempts = 0, next_attempt_at = now(), \
                    last_error = 'replayed by operator; last error: ' || coalesce(last_error, '') \
             WHERE event_id = ANY($1::uuid[]) AND status = 'dead' RETURNING event_id",
            [ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<Uuid>(0).map_err(OutboxError::from))
        .collect()
}

/// What one prune page removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub inbox: u64,
}

/// Deletes up to `limit` processed events created before `before`, with
/// their inbox rows. Failed and dead events stay for operators; messages and
/// setups are never pruned.
pub async fn prune_processed<C: ConnectionTrait>(
    db: &C,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Pruned, OutboxError> {
    let row = db
        .query_one_raw(stmt(
            r#"
            WITH doomed AS (
              SELECT e.id FROM events e
              JOIN inbox i ON i.event_id = e.id
              WHERE e.created_at < $1 AND i.status = 'processed'
              ORDER BY e.created_at
              LIMIT $2),
            inbox_gone AS (
              DELETE FROM inbox WHERE event_id IN (SELECT id FROM doomed) RETURNING 1),
            events_gone AS (
              DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1)
            SELECT (SELECT count(*) FROM events_gone) AS events,
                   (SELECT count(*) FROM inbox_gone) AS inbox
            "#,
            [before.into(), limit.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Pruned {
            events: row.try_get_by::<i64, _>("events")? as u64,
            inbox: row.try_get_by::<i64, _>("inbox")? as u64,
        },
        None => Pruned::default(),
    })
}
