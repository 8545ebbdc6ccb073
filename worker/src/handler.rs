//! The effect of one event on the worker's tables.

use entity::messages;
use outbox::consume::{ClaimedEvent, Handler, HandlerError};
use parser::ParsedMessage;
use sea_orm::{DatabaseTransaction, EntityTrait as _};

use crate::store::{self, Stored};
use crate::text::embed_text;

/// Brings a message's parse outcome and setups in line with the message.
///
/// Every event kind is handled the same way: lock the message id (the same
/// lock the bot takes to write it), read the message as it is now, and
/// replace what the worker derived from it. A delete retracts. The handler
/// is therefore idempotent and indifferent to the order events arrive in.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetupHandler;

impl Handler for SetupHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &ClaimedEvent,
    ) -> Result<(), HandlerError> {
        outbox::record::lock_message_ids(txn, &[event.message_id]).await?;
        let message = messages::Entity::find_by_id(event.message_id)
            .one(txn)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "message {} of event {} is missing",
                    event.message_id,
                    event.id
                )
            })?;
        let stored = if message.deleted_at.is_some() {
            store::retract(txn, &message, event.id).await?
        } else {
            let (parsed, text) = parse_message(&message);
            store::save(txn, &message, event.id, &parsed, &text).await?
        };
        metrics::counter!("aplus_worker_parsed_total", "outcome" => stored.as_str()).increment(1);
        tracing::debug!(event_id = %event.id, message_id = message.id, kind = %event.kind, outcome = stored.as_str(), "event handled");
        Ok(())
    }
}

/// Parses a stored message: its text, or its embeds' text when the text is
/// empty or not an A+ message. Returns the parse and the text it came from.
pub fn parse_message(message: &messages::Model) -> (ParsedMessage, String) {
    let posted_at = message.sent_at.to_utc();
    let parsed = parser::parse(&message.content, posted_at);
    if parsed.is_aplus() {
        return (parsed, message.content.clone());
    }
    let embedded = embed_text(&message.embeds);
    if !embedded.is_empty() {
        let from_embeds = parser::parse(&embedded, posted_at);
        if from_embeds.is_aplus() || message.content.trim().is_empty() {
            return (from_embeds, embedded);
        }
    }
    (parsed, message.content.clone())
}

impl Stored {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stored::Current => "current",
            Stored::Superseded => "superseded",
            Stored::Duplicate => "duplicate",
            Stored::NotAplus => "not_aplus",
            Stored::Retracted => "retracted",
        }
    }
}
