//! Recording messages and their events inside the caller's transaction.
//!
//! Every function here takes the caller's transaction and leaves the commit,
//! and the NOTIFY after it, to the caller: a message and its event commit
//! together or not at all. Each message id is first locked with a
//! transaction-level advisory lock, so a create racing its own delete (serenity
//! runs handlers as concurrent tasks) is decided in one order: the later one
//! sees the earlier one's row or tombstone. The `_locked` variants are for a
//! caller that writes a group of messages in one transaction: it takes all
//! the group's locks in one statement first.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use serde_json::Value as Json;
use uuid::Uuid;

// The message lock's old path, which the bot and the worker use.
pub use crate::locks::lock_message_ids;
use crate::payload::{self, MessageCreated, MessageDeleted, MessageUpdated, Source};
use crate::sql::stmt;
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

/// Stores many messages and their `message.created` events in one statement.
///
/// The rows arrive as parallel arrays (one per column) and are unnested on
/// the server: one statement and one round trip for a whole group, and the
/// same statement text whatever the count, so its prepared plan is reused.
/// Arrays cannot carry NULL elements through the driver, so the nullable
/// columns travel with a stand-in: `guild_id` 0 (no snowflake is 0) and an
/// `edited` flag beside `edited_at`. A message whose delete came first
/// takes its tombstone's time (it is stored already deleted). The events
/// are inserted only for the rows that were stored; the result lists those
/// rows, so an id it does not list was already stored. The caller passes
/// each id at most once.
const INSERT_MESSAGES_AND_EVENTS: &str = r#"
WITH input AS (
  SELECT *
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                $6::bool[], $7::text[], $8::jsonb[], $9::jsonb[], $10::bool[], $11::bool[],
                $12::timestamptz[], $13::bool[], $14::timestamptz[], $15::jsonb[],
                $16::uuid[], $17::jsonb[])
      AS i(id, guild_id, channel_id, author_id, author_name, author_is_bot, content, embeds,
           attachments, is_forward, sanitized, sent_at, edited, edited_at, raw, event_id,
           payload)
), stored AS (
  INSERT INTO messages (id, guild_id, channel_id, author_id, author_name, author_is_bot,
                        content, embeds, attachments, is_forward, sanitized, sent_at,
                        edited_at, deleted_at, raw)
  SELECT i.id, nullif(i.guild_id, 0), i.channel_id, i.author_id, i.author_name,
         i.author_is_bot, i.content, i.embeds, i.attachments, i.is_forward, i.sanitized,
         i.sent_at, CASE WHEN i.edited THEN i.edited_at END, t.deleted_at, i.raw
    FROM input i
    LEFT JOIN message_tombstones t ON t.message_id = i.id
   ORDER BY i.id
  ON CONFLICT (id) DO NOTHING
  RETURNING id, deleted_at
), created AS (
  INSERT INTO events (id, message_id, kind, payload)
  SELECT i.event_id, s.id, 'message.created', i.payload
    FROM stored s JOIN input i ON i.id = s.id
)
SELECT id, deleted_at IS NOT NULL AS tombstoned FROM stored
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
    record_message_locked(txn, message, source).await
}

/// [`record_message`] for a caller that already holds the message id's lock.
pub async fn record_message_locked(
    txn: &DatabaseTransaction,
    message: NewMessage,
    source: Source,
) -> Result<Recorded, OutboxError> {
    let recorded = record_messages_locked(txn, vec![(message, source)]).await?;
    // One message in, one result out: record_messages_locked answers for
    // every message it is given.
    Ok(recorded
        .into_iter()
        .next()
        .map_or(Recorded::Duplicate, |(_, r)| r))
}

/// Stores several messages (a backfill page, a drained buffer) and their
/// events in one transaction: one lock statement and one insert, whatever
/// the count. Returns what happened to each message, in the order given.
#[tracing::instrument(level = "debug", skip_all, fields(messages = messages.len()), err)]
pub async fn record_messages(
    txn: &DatabaseTransaction,
    messages: Vec<NewMessage>,
    source: Source,
) -> Result<Vec<(i64, Recorded)>, OutboxError> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    lock_message_ids(txn, &ids).await?;
    record_messages_locked(txn, messages.into_iter().map(|m| (m, source)).collect()).await
}

/// [`record_messages`] for a caller that already holds the message ids'
/// locks ([`lock_message_ids`], taken once for a whole group of writes),
/// each message with its own source. An id given twice is stored once; its
/// later copies are `Duplicate`. Returns one result per message, in the
/// order given.
pub async fn record_messages_locked(
    txn: &DatabaseTransaction,
    messages: Vec<(NewMessage, Source)>,
) -> Result<Vec<(i64, Recorded)>, OutboxError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = std::collections::HashSet::with_capacity(messages.len());
    let mut columns = Columns::with_capacity(messages.len());
    // Per message in the order given: its id and, for the first copy of an
    // id, the event id and sanitised flag it would be stored with.
    let mut planned: Vec<(i64, Option<(Uuid, bool)>)> = Vec::with_capacity(messages.len());
    for (message, source) in messages {
        let id = message.id;
        if seen.insert(id) {
            let (event_id, sanitized) = columns.push(message, source);
            planned.push((id, Some((event_id, sanitized))));
        } else {
            planned.push((id, None));
        }
    }
    let rows = txn
        .query_all_raw(stmt(INSERT_MESSAGES_AND_EVENTS, columns.into_values()))
        .await?;
    let mut tombstoned = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get_by("id")?;
        tombstoned.insert(id, row.try_get_by::<bool, _>("tombstoned")?);
    }
    Ok(planned
        .into_iter()
        .map(|(id, plan)| {
            let recorded = match (plan, tombstoned.get(&id)) {
                (Some((event_id, sanitized)), Some(&tombstoned)) => Recorded::Stored {
                    event_id,
                    sanitized,
                    tombstoned,
                },
                _ => Recorded::Duplicate,
            };
            (id, recorded)
        })
        .collect())
}

/// The parameters of [`INSERT_MESSAGES_AND_EVENTS`], one array per column.
#[derive(Default)]
struct Columns {
    id: Vec<i64>,
    guild_id: Vec<i64>,
    channel_id: Vec<i64>,
    author_id: Vec<i64>,
    author_name: Vec<String>,
    author_is_bot: Vec<bool>,
    content: Vec<String>,
    embeds: Vec<Json>,
    attachments: Vec<Json>,
    is_forward: Vec<bool>,
    sanitized: Vec<bool>,
    sent_at: Vec<DateTime<Utc>>,
    edited: Vec<bool>,
    edited_at: Vec<DateTime<Utc>>,
    raw: Vec<Json>,
    event_id: Vec<Uuid>,
    payload: Vec<Json>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            guild_id: Vec::with_capacity(n),
            channel_id: Vec::with_capacity(n),
            author_id: Vec::with_capacity(n),
            author_name: Vec::with_capacity(n),
            author_is_bot: Vec::with_capacity(n),
            content: Vec::with_capacity(n),
            embeds: Vec::with_capacity(n),
            attachments: Vec::with_capacity(n),
            is_forward: Vec::with_capacity(n),
            sanitized: Vec::with_capacity(n),
            sent_at: Vec::with_capacity(n),
            edited: Vec::with_capacity(n),
            edited_at: Vec::with_capacity(n),
            raw: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
        }
    }

    /// Adds a message, with NUL bytes replaced; returns its new event id and
    /// whether anything was replaced.
    fn push(&mut self, message: NewMessage, source: Source) -> (Uuid, bool) {
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
        self.id.push(id);
        self.guild_id.push(guild_id.unwrap_or(0));
        self.channel_id.push(channel_id);
        self.author_id.push(author_id);
        self.author_name.push(clean_author.into_owned());
        self.author_is_bot.push(author_is_bot);
        self.content.push(clean_content.into_owned());
        self.embeds.push(embeds);
        self.attachments.push(attachments);
        self.is_forward.push(is_forward);
        self.sanitized.push(sanitized);
        self.sent_at.push(sent_at);
        self.edited.push(edited_at.is_some());
        self.edited_at.push(edited_at.unwrap_or(sent_at));
        self.raw.push(raw);
        self.event_id.push(event_id);
        self.payload
            .push(payload::to_json(&MessageCreated::new(channel_id, source)));
        (event_id, sanitized)
    }

    fn into_values(self) -> [Value; 17] {
        [
            self.id.into(),
            self.guild_id.into(),
            self.channel_id.into(),
            self.author_id.into(),
            self.author_name.into(),
            self.author_is_bot.into(),
            self.content.into(),
            self.embeds.into(),
            self.attachments.into(),
            self.is_forward.into(),
            self.sanitized.into(),
            self.sent_at.into(),
            self.edited.into(),
            self.edited_at.into(),
            self.raw.into(),
            self.event_id.into(),
            self.payload.into(),
        ]
    }
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
    record_edit_locked(txn, edit).await
}

/// [`record_edit`] for a caller that already holds the message id's lock
/// (a group of writes locks all its ids in one statement).
pub async fn record_edit_locked(
    txn: &DatabaseTransaction,
    edit: MessageEdit,
) -> Result<Edited, OutboxError> {
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
    record_delete_locked(txn, id, channel_id).await
}

/// [`record_delete`] for a caller that already holds the message id's lock.
pub async fn record_delete_locked(
    txn: &DatabaseTransaction,
    id: i64,
    channel_id: i64,
) -> Result<Deleted, OutboxError> {
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
