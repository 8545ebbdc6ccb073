//! The effect of events on the worker's tables.

use std::collections::HashMap;

use outbox::consume::{ClaimedEvent, Handler, HandlerError};
use parser::ParsedMessage;
use sea_orm::DatabaseTransaction;

use crate::store::{self, Change, Current, Item, Stored};
use crate::text::embed_text;

/// Brings messages' parse outcomes and setups in line with the messages.
///
/// Every event kind is handled the same way: lock the message id (the same
/// lock the bot takes to write it), read the message as it is now, and
/// replace what the worker derived from it. A delete retracts. The handler
/// is therefore idempotent and indifferent to the order events arrive in.
///
/// A batch is handled set-based: one lock statement for all its message ids,
/// one read of the messages, parsing in Rust, then [`store::apply`]. Several
/// events of one message in a batch are one change of that message.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetupHandler;

impl Handler for SetupHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &ClaimedEvent,
    ) -> Result<(), HandlerError> {
        handle_events(txn, std::slice::from_ref(event)).await
    }

    async fn handle_batch(
        &self,
        txn: &DatabaseTransaction,
        events: &[ClaimedEvent],
    ) -> Result<(), HandlerError> {
        handle_events(txn, events).await
    }
}

async fn handle_events(
    txn: &DatabaseTransaction,
    events: &[ClaimedEvent],
) -> Result<(), HandlerError> {
    // The last event of each message names the change.
    // Per message: its last event in the batch and how many it has.
    let mut last_event: HashMap<i64, (&ClaimedEvent, u64)> = HashMap::with_capacity(events.len());
    for event in events {
        let entry = last_event.entry(event.message_id).or_insert((event, 0));
        *entry = (event, entry.1 + 1);
    }
    let mut ids: Vec<i64> = last_event.keys().copied().collect();
    ids.sort_unstable();
    outbox::record::lock_message_ids(txn, &ids).await?;
    let messages = store::read(txn, &ids).await?;
    if messages.len() < ids.len() {
        let found: std::collections::HashSet<i64> = messages.iter().map(|m| m.id).collect();
        let event = events
            .iter()
            .find(|e| !found.contains(&e.message_id))
            .expect("a message is missing, so one of its events is in the batch");
        anyhow::bail!(
            "message {} of event {} is missing",
            event.message_id,
            event.id
        );
    }
    let items: Vec<Item> = messages
        .into_iter()
        .map(|message| {
            let change = if message.deleted {
                Change::Retract
            } else {
                let (parsed, text) = parse_message(&message);
                Change::Save { parsed, text }
            };
            Item {
                event_id: last_event[&message.id].0.id,
                message,
                change,
            }
        })
        .collect();
    let outcomes = store::apply(txn, &items).await?;
    for (item, stored) in items.iter().zip(outcomes) {
        let n = last_event[&item.message.id].1;
        metrics::counter!("aplus_worker_parsed_total", "outcome" => stored.as_str()).increment(n);
        tracing::trace!(message_id = item.message.id, event_id = %item.event_id, outcome = stored.as_str(), "message handled");
    }
    tracing::debug!(
        events = events.len(),
        messages = items.len(),
        "batch handled"
    );
    Ok(())
}

/// Parses a stored message: its text, or its embeds' text when the text is
/// empty or not an A+ message. Returns the parse and the text it came from.
pub(crate) fn parse_message(message: &Current) -> (ParsedMessage, String) {
    let posted_at = message.sent_at;
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
