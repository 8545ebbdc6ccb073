//! Writes: a group of them in one transaction through the outbox, its
//! commit, then one NOTIFY.
//!
//! [`ingest`] is the whole path of one gateway message, for tests and tools;
//! the service goes through [`crate::writer::Writer`], which groups queued
//! writes and adds the outage buffer around [`apply`].

use outbox::OutboxError;
use outbox::payload::Source;
use outbox::record::{self, Deleted, Edited, NewMessage, Recorded};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr, TransactionTrait as _};
use serenity::all::Message;
use uuid::Uuid;

use crate::convert::{self, Update};
use crate::stats::Rejection;

/// A write the bot makes; a group of them is one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A message and its `message.created` event.
    Create { message: NewMessage, source: Source },
    /// Several messages in one transaction (a history page, a drained buffer).
    Many {
        messages: Vec<NewMessage>,
        source: Source,
    },
    /// An edit; a full update of an unknown message becomes its create.
    Edit(Update),
    /// A delete (a tombstone when the message is not stored yet).
    Delete { id: i64, channel_id: i64 },
}

impl Write {
    /// The message id, for logs (the first of a page).
    pub fn message_id(&self) -> Option<i64> {
        match self {
            Write::Create { message, .. } => Some(message.id),
            Write::Many { messages, .. } => messages.first().map(|m| m.id),
            Write::Edit(update) => Some(update.edit.id),
            Write::Delete { id, .. } => Some(*id),
        }
    }
}

/// What a committed write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// One message: stored or a duplicate.
    Created { recorded: Recorded, source: Source },
    /// Several messages, each stored or a duplicate, by id.
    Many {
        recorded: Vec<(i64, Recorded)>,
        source: Source,
    },
    /// An edit.
    Edited(EditResult),
    /// A delete.
    Deleted(Deleted),
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditResult {
    /// The outbox's answer.
    Edit(Edited),
    /// The message was unknown and the update carried all of it: stored as
    /// its create (with the text as edited).
    StoredAsCreate(Recorded),
}

impl Applied {
    /// Ids of the events written.
    pub fn event_ids(&self) -> Vec<Uuid> {
        match self {
            Applied::Created { recorded, .. } => recorded.event_id().into_iter().collect(),
            Applied::Many { recorded, .. } => {
                recorded.iter().filter_map(|(_, r)| r.event_id()).collect()
            }
            Applied::Edited(EditResult::Edit(Edited::Updated { event_id })) => vec![*event_id],
            Applied::Edited(EditResult::StoredAsCreate(recorded)) => {
                recorded.event_id().into_iter().collect()
            }
            Applied::Edited(EditResult::Edit(_)) => Vec::new(),
            Applied::Deleted(Deleted::Deleted { event_id }) => vec![*event_id],
            Applied::Deleted(_) => Vec::new(),
        }
    }
}

/// A committed group of writes and how its NOTIFY went.
#[derive(Debug)]
pub struct Outcome {
    /// What each write did, in the order given.
    pub applied: Vec<Applied>,
    /// The NOTIFY after commit failed. The events are committed; the worker's
    /// poll finds them, so this costs latency only.
    pub notify_error: Option<OutboxError>,
}

impl Outcome {
    /// Ids of every event the group wrote.
    pub fn event_ids(&self) -> Vec<Uuid> {
        self.applied.iter().flat_map(Applied::event_ids).collect()
    }
}

/// Every message id a group of writes touches, for its one lock statement.
fn message_ids(writes: &[Write]) -> Vec<i64> {
    let mut ids = Vec::with_capacity(writes.len());
    for write in writes {
        match write {
            Write::Create { message, .. } => ids.push(message.id),
            Write::Many { messages, .. } => ids.extend(messages.iter().map(|m| m.id)),
            Write::Edit(update) => ids.push(update.edit.id),
            Write::Delete { id, .. } => ids.push(*id),
        }
    }
    ids
}

/// Runs a group of writes in one transaction, commits, then NOTIFYs every
/// event the group wrote in one statement, on the connection that committed
/// when `db` is a one-connection pool (never inside the transaction: that
/// would serialise every commit on PostgreSQL's notify lock).
///
/// All the group's message ids are locked first, in one statement. A run of
/// consecutive creates is stored with one set-based insert; an edit or a
/// delete is applied alone, after the creates before it, so the group has
/// the effect of its writes applied one after another in order (an edit
/// sees a create queued before it). Any failure rolls back the whole group.
pub async fn apply(db: &DatabaseConnection, writes: &[Write]) -> Result<Outcome, OutboxError> {
    let txn = db.begin().await?;
    record::lock_message_ids(&txn, &message_ids(writes)).await?;
    let mut applied = Vec::with_capacity(writes.len());
    let mut rest = writes;
    while let Some(first) = rest.first() {
        match first {
            Write::Edit(update) => {
                applied.push(Applied::Edited(apply_edit_locked(&txn, update).await?));
                rest = &rest[1..];
            }
            Write::Delete { id, channel_id } => {
                applied.push(Applied::Deleted(
                    record::record_delete_locked(&txn, *id, *channel_id).await?,
                ));
                rest = &rest[1..];
            }
            Write::Create { .. } | Write::Many { .. } => {
                let creates = rest
                    .iter()
                    .take_while(|w| matches!(w, Write::Create { .. } | Write::Many { .. }))
                    .count();
                let (run, after) = rest.split_at(creates);
                applied.extend(apply_creates_locked(&txn, run).await?);
                rest = after;
            }
        }
    }
    // Fault injection for the chaos suite: die with the transaction open.
    fail::fail_point!("bot-before-commit", |_| std::process::abort());
    txn.commit().await?;
    let events: Vec<Uuid> = applied.iter().flat_map(Applied::event_ids).collect();
    let notify_error = outbox::notify::notify(db, &events).await.err();
    Ok(Outcome {
        applied,
        notify_error,
    })
}

/// A run of creates inside a group's transaction, whose locks are held:
/// one set-based insert for all their messages.
async fn apply_creates_locked(
    txn: &DatabaseTransaction,
    run: &[Write],
) -> Result<Vec<Applied>, OutboxError> {
    let mut rows: Vec<(NewMessage, Source)> = Vec::with_capacity(run.len());
    for write in run {
        match write {
            Write::Create { message, source } => rows.push((message.clone(), *source)),
            Write::Many { messages, source } => {
                rows.extend(messages.iter().map(|m| (m.clone(), *source)))
            }
            Write::Edit(_) | Write::Delete { .. } => {}
        }
    }
    // One result per message given, in order.
    let mut recorded = record::record_messages_locked(txn, rows).await?.into_iter();
    let mut applied = Vec::with_capacity(run.len());
    for write in run {
        match write {
            Write::Create { source, .. } => applied.push(Applied::Created {
                recorded: recorded.next().map_or(Recorded::Duplicate, |(_, r)| r),
                source: *source,
            }),
            Write::Many { messages, source } => applied.push(Applied::Many {
                recorded: recorded.by_ref().take(messages.len()).collect(),
                source: *source,
            }),
            Write::Edit(_) | Write::Delete { .. } => {}
        }
    }
    Ok(applied)
}

/// An edit inside a group's transaction, whose lock is held; a full update
/// of an unknown message is stored as its create.
async fn apply_edit_locked(
    txn: &DatabaseTransaction,
    update: &Update,
) -> Result<EditResult, OutboxError> {
    let edited = record::record_edit_locked(txn, update.edit.clone()).await?;
    Ok(match (&edited, &update.full) {
        (Edited::Unknown, Some(full)) => EditResult::StoredAsCreate(
            record::record_message_locked(txn, full.clone(), Source::Gateway).await?,
        ),
        _ => EditResult::Edit(edited),
    })
}

/// What [`ingest`] did with a message: the outbox's answer (stored with its
/// event, or a duplicate), and whether the NOTIFY after commit went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Stored (with the event id and the sanitised and tombstoned flags), or
    /// a duplicate of a stored id (nothing written).
    pub recorded: Recorded,
    /// The NOTIFY after commit went out (always true for a duplicate, which
    /// has no event to announce).
    pub notified: bool,
}

/// Why [`ingest`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The message cannot be stored as it is.
    #[error("message rejected: {0}")]
    Rejected(Rejection),
    /// The database failed; the write can be retried.
    #[error("database write failed")]
    Database(#[from] OutboxError),
}

/// Stores one gateway message: converts it, writes the message and its
/// event in one transaction, commits, then NOTIFYs the event.
#[tracing::instrument(level = "debug", skip_all, fields(message_id = message.id.get(), channel_id = message.channel_id.get()))]
pub async fn ingest(
    db: &DatabaseConnection,
    message: &Message,
    source: Source,
) -> Result<Ingested, IngestError> {
    let row = convert::new_message(message, convert::raw_payload(message), None)
        .map_err(IngestError::Rejected)?;
    let outcome = apply(
        db,
        &[Write::Create {
            message: row,
            source,
        }],
    )
    .await?;
    // One write in, one result out.
    let recorded = match outcome.applied.first() {
        Some(&Applied::Created { recorded, .. }) => recorded,
        _ => Recorded::Duplicate,
    };
    Ok(Ingested {
        recorded,
        notified: outcome.notify_error.is_none(),
    })
}

/// Whether PostgreSQL refused the data itself, so retrying the same write
/// can never succeed: data exceptions (class 22), integrity violations (23),
/// statement errors (42) and program limits (54). Everything else (a lost
/// connection, a pool timeout, a server shutting down, a cancelled or
/// serialisation-failed statement) may pass and is retried.
pub fn is_permanent(error: &OutboxError) -> bool {
    let db = match error {
        OutboxError::Unreadable(_) => return true,
        OutboxError::Database(db) => db,
    };
    match db {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            sea_orm::sqlx::Error::Database(db_error) => db_error
                .code()
                .is_some_and(|code| ["22", "23", "42", "54"].iter().any(|c| code.starts_with(c))),
            sea_orm::sqlx::Error::Encode(_) | sea_orm::sqlx::Error::Decode(_) => true,
            _ => false,
        },
        DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => true,
        _ => false,
    }
}

/// Writes for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A plain message create in `channel_id`.
    pub(crate) fn create(channel_id: i64, id: i64) -> Write {
        Write::Create {
            message: NewMessage {
                id,
                guild_id: None,
                channel_id,
                author_id: 1,
                author_name: "a".into(),
                author_is_bot: false,
                content: "x".into(),
                embeds: serde_json::json!([]),
                attachments: serde_json::json!([]),
                is_forward: false,
                sent_at: chrono::Utc::now(),
                edited_at: None,
                raw: serde_json::json!({}),
            },
            source: Source::Gateway,
        }
    }
}
