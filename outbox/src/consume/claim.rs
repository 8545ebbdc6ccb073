//! The claim: which events a batch takes, locked for the batch's length.
//!
//! New events come from the consumer's cursor (or the watermark), due
//! retries from the inbox; the batch's transaction holds their row locks,
//! so other consumers skip them (`SKIP LOCKED`).

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, DatabaseTransaction, QueryResult};
use uuid::Uuid;

use super::{ClaimedEvent, Position};
use crate::OutboxError;
use crate::sql::stmt;
use crate::watermark::parse_xid;

// The watermark comes from a stable function rather than a sub-select, so
// the planner walks `events_txid` from it (see migration m20261127_000006).
// The inbox is probed per event through a scalar sub-select, which the
// planner cannot turn into a join: as `NOT EXISTS` it may hash the whole
// inbox instead, and does so whenever its statistics are stale (a table
// that grew fast since the last ANALYZE, as in a drained backlog). The
// cursor ($2, $3) starts the walk where this consumer's last claim ended;
// `('0', nil)` means "from the watermark". The snapshot's xmin tells the
// consumer how far its cursor may move (see `Consumer`).
//
// This is the one place that does not read pending events through the
// SQL function `outbox_pending_events()` (migration m20261205_000010).
// PostgreSQL refuses `FOR UPDATE` on a function in `FROM` ("FOR UPDATE
// cannot be applied to a function") before it would inline it, and locking
// `events e` joined to the function (`WHERE e.id IN (SELECT id FROM
// outbox_pending_events() ...)`) brings back the function's `NOT EXISTS`:
// with 200,000 inbox rows and 10,000 events above the watermark that claim
// hashed the whole inbox and took 198 ms for 500 events, against 28 ms for
// this form's index walk; its `LIMIT` would also count rows another
// consumer holds, so batches would come out short. A test
// (`the_claim_takes_exactly_the_pending_events`) checks that this claim and
// the function select the same events.
pub(super) const CLAIM_NEW: &str = r#"
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

/// Which claim an event came from, which decides how its inbox row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    New,
    Due,
}

/// Claims up to `limit` events in `txn`: new ones from `cursor` (or the
/// watermark) first, then due retries to fill the batch. Returns them in
/// claim order with where the next claim may start.
pub(super) async fn claim(
    txn: &DatabaseTransaction,
    limit: i64,
    cursor: Option<Position>,
) -> Result<(Vec<(Claim, ClaimedEvent)>, Option<Position>), OutboxError> {
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
    Ok((claimed, next))
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
