//! Message objects (REST and gateway shapes), the content-blanked view, edits and deletes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{DEFAULT_FORWARD_AGE, FLAG_HAS_SNAPSHOT, REFERENCE_FORWARD, iso, user};
use crate::message::NewMessage;
use crate::snowflake;

/// A message object as the REST API returns it (no `guild_id`, no `member`).
///
/// `id` and `timestamp` are passed in because the caller owns id allocation. For a forward
/// the original's id defaults to one made a minute before `timestamp`.
#[must_use]
pub fn message_object(spec: &NewMessage, id: u64, timestamp: DateTime<Utc>) -> Value {
    let mut flags = spec.flags;
    let mut obj = json!({
        "id": id.to_string(),
        "channel_id": spec.channel_id.to_string(),
        "author": user(&spec.author),
        "content": spec.content,
        "timestamp": iso(timestamp),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": spec.mention_everyone,
        "mentions": spec.mentions.iter().map(user).collect::<Vec<_>>(),
        "mention_roles": [],
        "attachments": spec.attachments,
        "embeds": spec.embeds,
        "pinned": false,
        "type": spec.kind,
        "components": [],
    });
    if let Some(webhook_id) = spec.webhook_id {
        obj["webhook_id"] = json!(webhook_id.to_string());
    }
    if let Some(forward) = &spec.forward {
        flags |= FLAG_HAS_SNAPSHOT;
        let origin_id = forward.origin_message_id.unwrap_or_else(|| {
            // Keep the forward's low bits so two forwards made in the same millisecond still
            // point at distinct originals.
            snowflake::floor_of(timestamp - DEFAULT_FORWARD_AGE) | (id & 0x3F_FFFF)
        });
        let mut reference = json!({
            "type": REFERENCE_FORWARD,
            "channel_id": forward.origin_channel_id.to_string(),
            "message_id": origin_id.to_string(),
        });
        if let Some(guild_id) = forward.origin_guild_id {
            reference["guild_id"] = json!(guild_id.to_string());
        }
        obj["message_reference"] = reference;
        obj["message_snapshots"] = json!([{
            "message": {
                "type": 0,
                "content": forward.content,
                "embeds": forward.embeds,
                "attachments": forward.attachments,
                "timestamp": iso(snowflake::timestamp_of(origin_id)),
                "edited_timestamp": null,
                "flags": 0,
                "mentions": [],
                "mention_roles": [],
                "components": [],
            }
        }]);
    }
    obj["flags"] = json!(flags);
    if let Value::Object(map) = &mut obj {
        for (key, value) in &spec.extra {
            map.insert(key.clone(), value.clone());
        }
    }
    obj
}

/// A message object as the gateway sends it in MESSAGE_CREATE / MESSAGE_UPDATE: the REST
/// shape plus `guild_id` and the author's partial `member` for guild messages.
#[must_use]
pub fn gateway_message(rest_message: &Value, guild_id: Option<u64>) -> Value {
    let mut message = rest_message.clone();
    if let Some(guild_id) = guild_id {
        message["guild_id"] = json!(guild_id.to_string());
        // Webhook posts have no member; every other guild message does.
        if message.get("webhook_id").is_none() {
            message["member"] = json!({
                "roles": [],
                "joined_at": message.get("timestamp").cloned().unwrap_or(Value::Null),
                "premium_since": null,
                "nick": null,
                "avatar": null,
                "deaf": false,
                "mute": false,
                "pending": false,
                "flags": 0,
            });
        }
    }
    message
}

/// What a bot without the MESSAGE_CONTENT intent receives: the same message with `content`,
/// `embeds`, `attachments` and `components` emptied (snapshots included).
#[must_use]
pub fn without_content(message: &Value) -> Value {
    fn blank(map: &mut Value) {
        map["content"] = json!("");
        map["embeds"] = json!([]);
        map["attachments"] = json!([]);
        map["components"] = json!([]);
    }
    let mut message = message.clone();
    blank(&mut message);
    if let Some(Value::Array(snapshots)) = message.get_mut("message_snapshots") {
        for snapshot in snapshots {
            if let Some(inner) = snapshot.get_mut("message") {
                blank(inner);
            }
        }
    }
    message
}

/// Applies an edit to a stored message: new content and `edited_timestamp`.
pub fn apply_edit(message: &mut Value, content: &str, edited_at: DateTime<Utc>) {
    message["content"] = json!(content);
    message["edited_timestamp"] = json!(iso(edited_at));
}

/// Replaces a stored message's embeds without marking it edited (what a link unfurl does).
pub fn apply_embeds(message: &mut Value, embeds: Vec<Value>) {
    message["embeds"] = Value::Array(embeds);
}

/// `d` of MESSAGE_DELETE.
#[must_use]
pub fn message_delete(id: u64, channel_id: u64, guild_id: Option<u64>) -> Value {
    let mut d = json!({ "id": id.to_string(), "channel_id": channel_id.to_string() });
    if let Some(guild_id) = guild_id {
        d["guild_id"] = json!(guild_id.to_string());
    }
    d
}
