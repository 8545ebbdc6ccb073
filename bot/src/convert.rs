//! From serenity's types to what the outbox stores.
//!
//! Pure functions: they decide what a message becomes (content, forward
//! text, JSON of embeds and attachments, the raw payload) or why it is
//! rejected, and leave every side effect to their callers.

use chrono::{DateTime, Utc};
use outbox::record::{MessageEdit, NewMessage};
use serde_json::Value;
use serenity::all::{Message, MessageReferenceKind, MessageUpdateEvent};

use crate::stats::Rejection;

/// A Discord snowflake as PostgreSQL's signed `bigint`. Ids above
/// `i64::MAX` are rejected rather than wrapped negative.
pub fn snowflake(id: u64) -> Result<i64, Rejection> {
    i64::try_from(id).map_err(|_| Rejection::SnowflakeOutOfRange)
}

/// The smallest snowflake made `window` before the one given (snowflakes
/// carry their creation time in milliseconds above bit 22).
pub fn snowflake_before(id: u64, window: std::time::Duration) -> u64 {
    let millis = id >> 22;
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    millis.saturating_sub(window) << 22
}

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds.
pub const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// When a snowflake was made, in Unix milliseconds.
pub fn snowflake_unix_millis(id: u64) -> i64 {
    i64::try_from(id >> 22).unwrap_or(i64::MAX - DISCORD_EPOCH_MS) + DISCORD_EPOCH_MS
}

/// The smallest snowflake made at `unix_millis` (0 before Discord's epoch).
pub fn snowflake_at(unix_millis: i64) -> u64 {
    u64::try_from(unix_millis - DISCORD_EPOCH_MS).unwrap_or(0) << 22
}

/// Whether a message is a forward. serenity drops the `HAS_SNAPSHOT` flag
/// bit it does not know, so the snapshot itself (or the reference kind) is
/// what tells.
pub fn is_forward(message: &Message) -> bool {
    !message.message_snapshots.is_empty()
        || message
            .message_reference
            .as_ref()
            .is_some_and(|r| r.kind == MessageReferenceKind::Forward)
}

/// Whether a bot account or a webhook posted the message.
pub fn is_from_bot(message: &Message) -> bool {
    message.author.bot || message.webhook_id.is_some()
}

/// Applies the bot-author policy: with `keep_bot_messages` off, messages
/// from bots and webhooks are rejected.
pub fn check_author(message: &Message, keep_bot_messages: bool) -> Result<(), Rejection> {
    if !keep_bot_messages && is_from_bot(message) {
        return Err(Rejection::BotAuthor);
    }
    Ok(())
}

/// The `raw` stored for a gateway message: serenity's decoded [`Message`]
/// serialised again, not the bytes received. serenity hands a raw event
/// handler the decoded message and keeps no copy of the gateway JSON, so
/// fields serenity does not model are absent and the rest are as serenity
/// writes them. Snapshots get back the `message` wrapper serenity strips, so
/// the stored payload parses as a message again.
pub fn raw_payload(message: &Message) -> Value {
    let mut raw = serde_json::to_value(message).unwrap_or(Value::Null);
    if let Some(Value::Array(snapshots)) = raw.get_mut("message_snapshots") {
        for snapshot in snapshots.iter_mut() {
            let inner = std::mem::take(snapshot);
            *snapshot = serde_json::json!({ "message": inner });
        }
    }
    raw
}

/// Builds the row for a message. `raw` is what `messages.raw` keeps: the
/// REST JSON as received for history, [`raw_payload`] (re-serialised from
/// serenity's decoded message) for the gateway; `guild_id` fills in
/// the guild for history messages, which Discord sends without it.
pub fn new_message(
    message: &Message,
    raw: Value,
    guild_id: Option<u64>,
) -> Result<NewMessage, Rejection> {
    let id = snowflake(message.id.get())?;
    let channel_id = snowflake(message.channel_id.get())?;
    let author_id = snowflake(message.author.id.get())?;
    let guild_id = message
        .guild_id
        .map(|g| g.get())
        .or(guild_id)
        .map(snowflake)
        .transpose()?;
    let forward = is_forward(message);
    let snapshot = message.message_snapshots.first();
    let (content, embeds, attachments) = match snapshot {
        // A forward shows the original's text; its own top-level fields are empty.
        Some(snapshot) if forward && message.content.is_empty() => (
            snapshot.content.clone(),
            if message.embeds.is_empty() {
                to_json(&snapshot.embeds)
            } else {
                to_json(&message.embeds)
            },
            if message.attachments.is_empty() {
                to_json(&snapshot.attachments)
            } else {
                to_json(&message.attachments)
            },
        ),
        _ => (
            message.content.clone(),
            to_json(&message.embeds),
            to_json(&message.attachments),
        ),
    };
    Ok(NewMessage {
        id,
        guild_id,
        channel_id,
        author_id,
        author_name: message.author.name.clone(),
        author_is_bot: is_from_bot(message),
        content,
        embeds,
        attachments,
        is_forward: forward,
        sent_at: to_utc(&message.timestamp),
        edited_at: message.edited_timestamp.as_ref().map(to_utc),
        raw,
    })
}

/// What a MESSAGE_UPDATE means for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The channel of the message.
    pub channel_id: i64,
    /// The edit to apply to a stored message.
    pub edit: MessageEdit,
    /// The whole message, when the update carried every field of one: stored
    /// as its create if the message is not stored yet.
    pub full: Option<NewMessage>,
}

/// Reads an update. A forward's top-level content is empty by design (its
/// text lives in the snapshot, which updates do not carry), so it never
/// overwrites the stored text.
pub fn update(event: &MessageUpdateEvent) -> Result<Update, Rejection> {
    let id = snowflake(event.id.get())?;
    let channel_id = snowflake(event.channel_id.get())?;
    let forward = matches!(
        &event.message_reference,
        Some(Some(reference)) if reference.kind == MessageReferenceKind::Forward
    );
    let edit = MessageEdit {
        id,
        content: if forward { None } else { event.content.clone() },
        edited_at: event.edited_timestamp.as_ref().map(to_utc),
        embeds: if forward {
            None
        } else {
            event.embeds.as_ref().map(to_json)
        },
    };
    // A full update decodes as a message; a partial one (no author, no
    // timestamp) does not. Forwards are left out: updates carry no snapshot,
    // so the stored row would lack the forwarded text.
    let full = if forward {
        None
    } else {
        serde_json::to_value(event)
            .ok()
            .map(drop_nulls)
            .and_then(|value| serde_json::from_value::<Message>(value).ok())
            .and_then(|message| {
                let raw = raw_payload(&message);
                new_message(&message, raw, None).ok()
            })
    };
    Ok(Update {
        channel_id,
        edit,
        full,
    })
}

/// An update from a whole message read back from history (`GET
/// /channels/{id}/messages/{id}`): its text, edit time and embeds replace
/// the stored ones, and it is stored as its create when unknown.
pub fn refetched(
    message: &Message,
    raw: Value,
    guild_id: Option<u64>,
) -> Result<Update, Rejection> {
    let row = new_message(message, raw, guild_id)?;
    let mut update = edit_of(&row);
    update.full = Some(row);
    Ok(update)
}

/// The edit that brings a stored message to `row`, a message as history
/// has it now.
pub fn edit_of(row: &NewMessage) -> Update {
    Update {
        channel_id: row.channel_id,
        edit: MessageEdit {
            id: row.id,
            content: Some(row.content.clone()),
            edited_at: row.edited_at,
            embeds: Some(row.embeds.clone()),
        },
        full: None,
    }
}

/// Removes the top-level fields an update serialises as `null` (absent in
/// the update), so they read as absent: a message's optional lists then take
/// their defaults, while its required fields still fail when missing.
fn drop_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn to_utc(timestamp: &serenity::all::Timestamp) -> DateTime<Utc> {
    **timestamp
}

/// serenity's model types serialise to JSON without fail (plain data, string
/// keys); a failure would still only cost the JSON copy, not the message.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message_json(id: &str, content: &str) -> Value {
        json!({
            "id": id, "channel_id": "20", "guild_id": "1",
            "author": {"id": "7", "username": "trader", "discriminator": "0", "global_name": null, "avatar": null, "bot": false},
            "content": content, "timestamp": "2025-05-15T13:00:00.000000+00:00",
            "edited_timestamp": null, "tts": false, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0
        })
    }

    fn message(value: Value) -> Message {
        serde_json::from_value(value).expect("a message")
    }

    #[test]
    fn snowflakes_above_i64_max_are_rejected_not_wrapped() {
        assert_eq!(snowflake(i64::MAX as u64), Ok(i64::MAX));
        assert_eq!(snowflake(u64::MAX), Err(Rejection::SnowflakeOutOfRange));
        let m = message(message_json("18446744073709551615", "x"));
        assert_eq!(
            new_message(&m, Value::Null, None),
            Err(Rejection::SnowflakeOutOfRange)
        );
    }

    #[test]
    fn a_snowflake_minutes_earlier_is_computed_from_its_time_bits() {
        let id = 1_372_012_942_848_954_388u64;
        let earlier = snowflake_before(id, std::time::Duration::from_secs(60));
        assert_eq!((id >> 22) - (earlier >> 22), 60_000);
        assert_eq!(earlier & ((1 << 22) - 1), 0);
        assert_eq!(snowflake_before(5, std::time::Duration::from_secs(60)), 0);
    }

    #[test]
    fn a_forward_is_stored_with_the_snapshot_text() {
        let mut value = message_json("100", "");
        value["message_reference"] = json!({"type": 1, "channel_id": "20", "message_id": "99"});
        value["message_snapshots"] = json!([{"message": {
            "type": 0, "content": "A+ Trade Setups", "embeds": [], "attachments": [],
            "timestamp": "2025-05-15T12:00:00.000000+00:00", "edited_timestamp": null,
            "flags": 0, "mentions": [], "mention_roles": [], "components": []
        }}]);
        value["flags"] = json!(16384);
        let m = message(value);
        let row = new_message(&m, raw_payload(&m), None).expect("stored");
        assert!(row.is_forward);
        assert_eq!(row.content, "A+ Trade Setups");
        assert_eq!(row.guild_id, Some(1));
        // The raw payload parses back, snapshot included.
        let again: Message = serde_json::from_value(row.raw).expect("raw parses");
        assert_eq!(again.message_snapshots[0].content, "A+ Trade Setups");
    }

    #[test]
    fn history_messages_get_their_guild_from_the_channel() {
        let mut value = message_json("100", "hello");
        value.as_object_mut().expect("object").remove("guild_id");
        let row = new_message(&message(value.clone()), value, Some(5)).expect("stored");
        assert_eq!(row.guild_id, Some(5));
    }

    #[test]
    fn a_full_update_carries_the_message_and_a_partial_one_does_not() {
        let mut full = message_json("100", "edited");
        full["edited_timestamp"] = json!("2025-05-15T13:05:00.000000+00:00");
        let event: MessageUpdateEvent = serde_json::from_value(full).expect("update");
        let update = update(&event).expect("in range");
        assert_eq!(update.edit.content.as_deref(), Some("edited"));
        assert!(update.edit.edited_at.is_some());
        assert_eq!(update.full.expect("full").content, "edited");

        let partial: MessageUpdateEvent = serde_json::from_value(json!({
            "id": "100", "channel_id": "20", "embeds": []
        }))
        .expect("update");
        let update = super::update(&partial).expect("in range");
        assert!(update.full.is_none());
        assert_eq!(update.edit.content, None);
    }
}
