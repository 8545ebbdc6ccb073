//! The outbox watermark: every event whose transaction id is below
//! `outbox_watermark.processed_through` has an inbox row.
//!
//! Consumers scan events from the watermark, so finding unprocessed work costs
//! the same on a table of ten million events as on ten thousand. Transaction
//! ids make it exact: events may commit out of order, but no transaction below
//! `pg_snapshot_xmin(pg_current_snapshot())` is still running, so nothing can
//! appear below the watermark after it moves. It only moves forward, and any
//! process may move it (workers do so as they go; the reconciler each pass).

use sea_orm::ConnectionTrait;

use crate::OutboxError;
use crate::sql::stmt;

/// Rows examined per query while advancing.
pub const PAGE: i64 = 5_000;

const PAGE_SQL: &str = r#"
WITH page AS (
  SELECT e.txid, e.id,
         EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id) AS done
  FROM events e
  WHERE (e.txid, e.id) > ($1::text::xid8, $2::uuid)
    AND e.txid < $3::text::xid8
  ORDER BY e.txid, e.id
  LIMIT $4),
last AS (SELECT txid, id FROM page ORDER BY txid DESC, id DESC LIMIT 1)
SELECT (SELECT min(txid) FROM page WHERE NOT done)::text AS gap,
       (SELECT count(*) FROM page) AS n,
       (SELECT txid FROM last)::text AS last_txid,
       (SELECT id FROM last) AS last_id
"#;

/// Reads the current watermark.
pub async fn current<C: ConnectionTrait>(db: &C) -> Result<u64, OutboxError> {
    let row = db
        .query_one_raw(stmt(
            "SELECT processed_through::text AS wm FROM outbox_watermark",
            [],
        ))
        .await?
        .ok_or_else(|| OutboxError::Unreadable("outbox_watermark has no row".into()))?;
    parse_xid(&row.try_get_by::<String, _>("wm")?)
}

pub(crate) fn parse_xid(text: &str) -> Result<u64, OutboxError> {
    text.parse()
        .map_err(|_| OutboxError::Unreadable(format!("transaction id `{text}`")))
}

/// Moves the watermark as far as it safely can, examining at most
/// `max_pages` pages of [`PAGE`] events. Returns the new watermark.
pub async fn advance<C: ConnectionTrait>(db: &C, max_pages: u32) -> Result<u64, OutboxError> {
    let start = current(db).await?;
    let horizon_row = db
        .query_one_raw(stmt(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin",
            [],
        ))
        .await?
        .ok_or_else(|| OutboxError::Unreadable("no snapshot".into()))?;
    let horizon = parse_xid(&horizon_row.try_get_by::<String, _>("xmin")?)?;

    let mut target = start;
    let mut cursor = (start, uuid::Uuid::nil());
    for _ in 0..max_pages.max(1) {
        let row = db
            .query_one_raw(stmt(
                PAGE_SQL,
                [
                    cursor.0.to_string().into(),
                    cursor.1.into(),
                    horizon.to_string().into(),
                    PAGE.into(),
                ],
            ))
            .await?
            .ok_or_else(|| OutboxError::Unreadable("watermark page".into()))?;
        if let Some(gap) = row.try_get_by::<Option<String>, _>("gap")? {
            target = parse_xid(&gap)?;
            break;
        }
        let n: i64 = row.try_get_by("n")?;
        if n < PAGE {
            target = horizon;
            break;
        }
        // A full page without a gap: everything below the last transaction id
        // seen is done; that id's own events may continue on the next page.
        let last_txid = parse_xid(&row.try_get_by::<String, _>("last_txid")?)?;
        let last_id: uuid::Uuid = row.try_get_by("last_id")?;
        target = last_txid;
        cursor = (last_txid, last_id);
    }

    if target > start {
        db.execute_raw(stmt(
            "UPDATE outbox_watermark SET processed_through = $1::text::xid8, updated_at = now() \
             WHERE processed_through < $1::text::xid8",
            [target.to_string().into()],
        ))
        .await?;
    }
    Ok(target.max(start))
}
