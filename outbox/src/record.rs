//! Recording messages and their events inside the caller's transaction.
//!
//! Every function here takes the caller's transaction and leaves the commit,
//! and the NOTIFY after it, to the caller: a message and its event commit
//! together or not at all. Each message id is first locked with a
//! transaction-level advisory lock, so a create racing its own delete (serenity
//! runs handlers as concurrent tasks) is decided in one order: the later one
//! sees the earlier one's row or tombstone.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::payload::{self, MessageCreated, MessageDeleted, MessageUpdated, Source};
use crate::{OutboxError, sanitize};

/// A Discord message as the bot stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The snowflake; always positive (the caller rejects ids above `i64::MAX`).
    pub id: i64,
    pub guild_id: Option<i64>,
    pub channel_id: i64,
    pub author_id: i64,
    pub author_name: String,
    pub author_is_bot: bool,
    /// The text, or the forwarded snapshot's text.
    pub content: String,
    pub embeds: Json,
    pub attachments: Json,
    pub is_forward: bool,
    pub sent_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    /// The payload as received.
    pub raw: Json,
}

/// What recording a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored with its new `message.created` event.
    Stored {
        event_id: Uuid,
        /// NUL bytes were replaced.
        sanitized: bool,
        /// A delete had arrived first: the message is stored already deleted.
        tombstoned: bool,
    },
    /// The id was already stored: nothing was written.
    Duplicate,
}

impl Recorded {
    /// The new event's id, if one was written.
    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            Recorded::Stored { event_id, .. } => Some(*event_id),
            Recorded::Duplicate => None,
        }
    }
}

pub(crate) fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Takes the transaction-level advisory locks of these message ids, in id
/// order so that two transactions locking overlapping sets cannot deadlock.
pub async fn lock_message_ids(txn: &DatabaseTransaction, ids: &[i64]) -> Result<(), OutboxError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(id) FROM unnest($1::bigint[]) AS id ORDER BY id",
        [sorted.into()],
    ))
    .await?;
    Ok(())
}

const INSERT_MESSAGE_AND_EVENT: &str = r#"
WITH stored AS (
  INSERT INTO messages (id, guild_id, channel_id, author_id, author_name, author_is_bot,
                        content, embeds, attachments, is_forward, sanitized, sent_at,
                        edited_at, deleted_at, raw)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
          (SELECT deleted_at FROM message_tombstones WHERE message_id = $1), $14)
  ON CONFLICT (id) DO NOTHING
  RETURNING id, deleted_at
)
INSERT INTO events (id, message_id, kind, payload)
SELECT $15, id, 'message.created', $16 FROM stored
RETURNING (SELECT deleted_at IS NOT NULL FROM stored) AS tombstoned
"#;

/// Stores a message and its `message.created` event, unless the id is
/// already stored. Runs inside the caller's transaction; the caller commits,
/// then calls [`crate::notify::notify`] with the returned event id.
#[tracing::instrument(level = "debug", skip_all, fields(message_id = message.id), err)]
pub async fn record_message(
    txn: &DatabaseTransaction,
    message: NewMessage,
    source: Source,
) -> Result<Recorded, OutboxError> {
    lock_message_ids(txn, &[message.id]).await?;
    insert_locked(txn, message, source).await
}

/// Stores several messages (a backfill page) in one transaction.
pub async fn record_messages(
    txn: &DatabaseTransaction,
    messages: Vec<NewMessage>,
    source: Source,
) -> Result<Vec<(i64, Recorded)>, OutboxError> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    lock_message_ids(txn, &ids).await?;
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let id = message.id;
        results.push((id, insert_locked(txn, message, source).await?));
    }
    Ok(results)
}

async fn insert_locked(
    txn: &DatabaseTransaction,
    message: NewMessage,
    source: Source,
) -> Result<Recorded, OutboxError> {
    let NewMessage {
        id,
        guild_id,
        channel_id,
        author_id,
        author_name,
        author_is_bot,
        content,
        mut embeds,
        mut attachments,
        is_forward,
        sent_at,
        edited_at,
        mut raw,
    } = message;
    let clean_content = sanitize::text(&content);
    let clean_author = sanitize::text(&author_name);
    let mut sanitized = matches!(clean_content, std::borrow::Cow::Owned(_))
        | matches!(clean_author, std::borrow::Cow::Owned(_));
    sanitized |= sanitize::json(&mut embeds);
    sanitized |= sanitize::json(&mut attachments);
    sanitized |= sanitize::json(&mut raw);

    let event_id = Uuid::now_v7();
    let payload = payload::to_json(&MessageCreated::new(channel_id, source));
    let row = txn
        .query_one_raw(stmt(
            INSERT_MESSAGE_AND_EVENT,
            [
                id.into(),
                guild_id.into(),
                channel_id.into(),
                author_id.into(),
                clean_author.into_owned().into(),
                author_is_bot.into(),
                clean_content.into_owned().into(),
                embeds.into(),
                attachments.into(),
                is_forward.into(),
                sanitized.into(),
                sent_at.into(),
                edited_at.into(),
                raw.into(),
                event_id.into(),
                payload.into(),
            ],
        ))
        .await?;
    Ok(match row {
        Some(row) => Recorded::Stored {
            event_id,
            sanitized,
            tombstoned: row.try_get_by::<bool, _>("tombstoned")?,
        },
        None => Recorded::Duplicate,
    })
}

/// An edit as received: fields Discord did not send are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEdit {
    pub id: i64,
    pub content: Option<String>,
    pub edited_at: Option<DateTime<Utc>>,
    pub embeds: Option<Json>,
}

/// What recording an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// The text or edit time changed: a `message.updated` event was written.
    Updated { event_id: Uuid },
    /// Nothing that matters changed (a link preview, a replayed update).
    Unchanged,
    /// No message with this id is stored.
    Unknown,
}

const UPDATE_MESSAGE: &str = r#"
WITH changed AS (
  UPDATE messages
     SET content = coalesce($2, content),
         edited_at = coalesce($3, edited_at),
         embeds = coalesce($4, embeds),
         sanitized = sanitized OR $5
   WHERE id = $1
     AND (($2::text IS NOT NULL AND content IS DISTINCT FROM $2)
       OR ($3::timestamptz IS NOT NULL AND edited_at IS DISTINCT FROM $3))
     -- An older version never replaces a newer one: updates race (each
     -- gateway event is its own task, and backfill reads history pages
     -- that can be seconds old).
     AND ($3::timestamptz IS NULL OR edited_at IS NULL OR edited_at <= $3)
  RETURNING id
)
INSERT INTO events (id, message_id, kind, payload)
SELECT $6, id, 'message.updated', $7 FROM changed
RETURNING id
"#;

/// Applies an edit and writes `message.updated`, only when the text or the
/// edit time really changed, and never when the stored message was edited
/// later than this version (a stale update is `Unchanged`).
#[tracing::instrument(level = "debug", skip_all, fields(message_id = edit.id), err)]
pub async fn record_edit(
    txn: &DatabaseTransaction,
    edit: MessageEdit,
) -> Result<Edited, OutboxError> {
    lock_message_ids(txn, &[edit.id]).await?;
    let content = edit.content.as_deref().map(sanitize::text);
    let mut sanitized = matches!(content, Some(std::borrow::Cow::Owned(_)));
    let mut embeds = edit.embeds;
    if let Some(embeds) = embeds.as_mut() {
        sanitized |= sanitize::json(embeds);
    }
    let event_id = Uuid::now_v7();
    let payload = payload::to_json(&MessageUpdated {
        v: payload::VERSION,
        edited_at: edit.edited_at,
    });
    let row = txn
        .query_one_raw(stmt(
            UPDATE_MESSAGE,
            [
                edit.id.into(),
                content.map(|c| c.into_owned()).into(),
                edit.edited_at.into(),
                embeds.into(),
                sanitized.into(),
                event_id.into(),
                payload.into(),
            ],
        ))
        .await?;
    if row.is_some() {
        return Ok(Edited::Updated { event_id });
    }
    Ok(if message_exists(txn, edit.id).await? {
        Edited::Unchanged
    } else {
        Edited::Unknown
    })
}

/// What recording a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The message was marked deleted and `message.deleted` written.
    Deleted { event_id: Uuid },
    /// It was already marked deleted.
    AlreadyDeleted,
    /// No such message yet: a tombstone keeps a late create from resurrecting it.
    Tombstoned,
}

const DELETE_MESSAGE: &str = r#"
WITH gone AS (
  UPDATE messages SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id
)
INSERT INTO events (id, message_id, kind, payload)
SELECT $2, id, 'message.deleted', $3 FROM gone
RETURNING id
"#;

/// Marks a message deleted and writes `message.deleted`; for an unknown id,
/// leaves a tombstone.
#[tracing::instrument(level = "debug", skip_all, fields(message_id = id), err)]
pub async fn record_delete(
    txn: &DatabaseTransaction,
    id: i64,
    channel_id: i64,
) -> Result<Deleted, OutboxError> {
    lock_message_ids(txn, &[id]).await?;
    let event_id = Uuid::now_v7();
    let payload = payload::to_json(&MessageDeleted {
        v: payload::VERSION,
    });
    let row = txn
        .query_one_raw(stmt(
            DELETE_MESSAGE,
            [id.into(), event_id.into(), payload.into()],
        ))
        .await?;
    if row.is_some() {
        return Ok(Deleted::Deleted { event_id });
    }
    if message_exists(txn, id).await? {
        return Ok(Deleted::AlreadyDeleted);
    }
    txn.execute_raw(stmt(
        "INSERT INTO message_tombstones (message_id, channel_id) VALUES ($1, $2) \
         ON CONFLICT (message_id) DO NOTHING",
        [id.into(), channel_id.into()],
    ))
    .await?;
    Ok(Deleted::Tombstoned)
}

async fn message_exists(txn: &DatabaseTransaction, id: i64) -> Result<bool, OutboxError> {
    let row = txn
        .query_one_raw(stmt(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1) AS found",
            [id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by::<bool, _>("found")?,
        None => false,
    })
}
