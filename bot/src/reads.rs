//! Every read the bot makes of `messages`, in one place.
//!
//! The bot writes `messages` only through the `outbox` crate; what it reads
//! back is small and serves the backfill (where to start, what a history page
//! must be compared with) and the start-up (which threads already have
//! messages). Each query is named by table first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbErr};

/// The largest stored message id of a channel (0 when none). The
/// `(channel_id, id)` index answers it with one probe.
pub async fn messages_max_id(db: &DatabaseConnection, channel_id: u64) -> Result<u64, DbErr> {
    let Ok(channel) = i64::try_from(channel_id) else {
        return Ok(0);
    };
    let row = db
        .query_one_raw(stmt(
            "SELECT max(id) AS max_id FROM messages WHERE channel_id = $1",
            [channel.into()],
        ))
        .await?;
    let max: Option<i64> = match row {
        Some(row) => row.try_get_by::<Option<i64>, _>("max_id")?,
        None => None,
    };
    Ok(max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
}

/// The stored, not deleted messages of a channel in the id range
/// `(after, up_to]`, with their edit time: what a history page covering that
/// range is compared with.
pub async fn messages_in_range(
    db: &DatabaseConnection,
    channel_id: i64,
    after: i64,
    up_to: i64,
) -> Result<HashMap<i64, Option<DateTime<Utc>>>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT id, edited_at FROM messages \
             WHERE channel_id = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL",
            [channel_id.into(), after.into(), up_to.into()],
        ))
        .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get_by("id")?;
        let edited_at: Option<DateTime<Utc>> = row.try_get_by("edited_at")?;
        stored.insert(id, edited_at);
    }
    Ok(stored)
}

/// Every channel id that has stored messages.
pub async fn messages_channels(db: &DatabaseConnection) -> Result<Vec<i64>, DbErr> {
    // Distinct channel ids by walking the (channel_id, id) index: one
    // index probe per channel instead of a scan of every message.
    const DISTINCT_CHANNELS: &str = r#"
        WITH RECURSIVE c AS (
          (SELECT channel_id FROM messages ORDER BY channel_id LIMIT 1)
          UNION ALL
          SELECT (SELECT m.channel_id FROM messages m
                   WHERE m.channel_id > c.channel_id ORDER BY m.channel_id LIMIT 1)
            FROM c WHERE c.channel_id IS NOT NULL
        )
        SELECT channel_id FROM c WHERE channel_id IS NOT NULL"#;
    let rows = db.query_all_raw(stmt(DISTINCT_CHANNELS, [])).await?;
    rows.iter().map(|row| row.try_get_by_index(0)).collect()
}
