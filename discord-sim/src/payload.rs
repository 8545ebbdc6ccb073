//! Every JSON payload the simulator sends, built in one place.
//!
//! serenity silently turns a dispatch whose `d` lacks a field it requires into an unknown event
//! and drops it, so a missing field here would look like "the bot lost a message" in a test. The
//! builders below therefore always emit every field serenity 0.12 requires, in Discord's shapes
//! (snowflakes as strings, ISO-8601 timestamps with `+00:00`), and the unit tests at the bottom
//! parse every one of them with serenity's own types.
//!
//! Builders return [`serde_json::Value`] so that callers (tests in other crates too) can alter a
//! payload before sending it, to make deliberately malformed messages.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::message::{Author, NewMessage};
use crate::snowflake;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

/// `flags` bit marking a message that carries `message_snapshots` (a forward).
pub const FLAG_HAS_SNAPSHOT: u64 = 1 << 14;

/// `message_reference.type` of a forward.
pub const REFERENCE_FORWARD: u8 = 1;

/// Application flag `GATEWAY_MESSAGE_CONTENT_LIMITED`: the state of an unverified bot that has
/// switched the message content intent on in the developer portal.
const APPLICATION_FLAGS: u64 = 1 << 19;

/// How long before a forward its original is assumed to have been posted, when the test does
/// not say.
const DEFAULT_FORWARD_AGE: chrono::Duration = chrono::Duration::seconds(60);

/// Formats a timestamp the way Discord does (`2025-05-15T13:26:07.520000+00:00`).
#[must_use]
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A user object.
#[must_use]
pub fn user(author: &Author) -> Value {
    json!({
        "id": author.id.to_string(),
        "username": author.username,
        // Accounts migrated to unique usernames have discriminator "0"; webhooks show "0000".
        "discriminator": if author.bot { "0000" } else { "0" },
        "global_name": author.global_name,
        "avatar": null,
        "bot": author.bot,
        "public_flags": 0,
    })
}

/// The bot's own user object, as `GET /users/@me` and READY return it.
#[must_use]
pub fn current_user(bot: &Author) -> Value {
    json!({
        "id": bot.id.to_string(),
        "username": bot.username,
        "discriminator": "0",
        "global_name": bot.global_name,
        "avatar": null,
        "bot": true,
        "verified": true,
        "mfa_enabled": false,
        "flags": 0,
        "public_flags": 0,
        "premium_type": 0,
        "banner": null,
        "accent_color": null,
        "email": null,
        "locale": "en-US",
    })
}

/// A rich embed with a title and description.
#[must_use]
pub fn embed(title: &str, description: &str) -> Value {
    json!({ "type": "rich", "title": title, "description": description })
}

/// A link-preview embed, as Discord adds when it unfurls a URL some time after the post.
#[must_use]
pub fn link_preview_embed(url: &str, title: &str, description: &str) -> Value {
    json!({
        "type": "article",
        "url": url,
        "title": title,
        "description": description,
        "provider": { "name": "example" },
    })
}

/// An attachment object for an image file.
#[must_use]
pub fn attachment(id: u64, filename: &str, size: u32) -> Value {
    json!({
        "id": id.to_string(),
        "filename": filename,
        "size": size,
        "url": format!("https://cdn.discordapp.com/attachments/0/{id}/{filename}"),
        "proxy_url": format!("https://media.discordapp.net/attachments/0/{id}/{filename}"),
        "content_type": "image/png",
        "width": 1280,
        "height": 720,
    })
}

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

/// A channel object (guild channel, thread or DM), as `GET /channels/{id}` returns it.
#[must_use]
pub fn channel(info: &ChannelInfo, created_at: DateTime<Utc>) -> Value {
    let id = info.id.to_string();
    match info.kind {
        ChannelKind::Dm => json!({
            "id": id,
            "type": 1,
            "last_message_id": null,
            "flags": 0,
            "recipients": info.recipient.iter().map(user).collect::<Vec<_>>(),
        }),
        ChannelKind::PublicThread | ChannelKind::PrivateThread => json!({
            "id": id,
            "type": info.kind.discord_type(),
            "guild_id": info.guild_id.map(|g| g.to_string()),
            "parent_id": info.parent_id.map(|p| p.to_string()),
            "owner_id": Author::default().id.to_string(),
            "name": info.name,
            "last_message_id": null,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": false,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso(created_at),
                "locked": false,
                "create_timestamp": iso(created_at),
            },
        }),
        ChannelKind::Text | ChannelKind::Announcement => json!({
            "id": id,
            "type": info.kind.discord_type(),
            "guild_id": info.guild_id.map(|g| g.to_string()),
            "name": info.name,
            "position": 0,
            "permission_overwrites": [],
            "parent_id": null,
            "topic": null,
            "nsfw": false,
            "last_message_id": null,
            "rate_limit_per_user": 0,
            "flags": 0,
        }),
    }
}

/// `d` of THREAD_CREATE for a thread made while the bot is connected.
#[must_use]
pub fn thread_create(info: &ChannelInfo, created_at: DateTime<Utc>) -> Value {
    let mut d = channel(info, created_at);
    d["newly_created"] = json!(true);
    d
}

/// `d` of READY.
#[must_use]
pub fn ready(
    bot: &Author,
    application_id: u64,
    guild_ids: &[u64],
    session_id: &str,
    resume_gateway_url: &str,
    shard: Option<[u32; 2]>,
) -> Value {
    let mut d = json!({
        "v": 10,
        "user": current_user(bot),
        "guilds": guild_ids
            .iter()
            .map(|id| json!({ "id": id.to_string(), "unavailable": true }))
            .collect::<Vec<_>>(),
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_gateway_url,
        "application": { "id": application_id.to_string(), "flags": APPLICATION_FLAGS },
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "user_settings": {},
    });
    if let Some(shard) = shard {
        d["shard"] = json!(shard);
    }
    d
}

/// `d` of GUILD_CREATE: the full guild with its channels and active threads.
#[must_use]
pub fn guild_create(
    guild: &GuildInfo,
    channels: &[&ChannelInfo],
    joined_at: DateTime<Utc>,
) -> Value {
    let (threads, plain): (Vec<&&ChannelInfo>, Vec<&&ChannelInfo>) =
        channels.iter().partition(|c| c.kind.is_thread());
    // Two halves: one json! of this size exceeds the macro recursion limit.
    let mut guild_json = json!({
        "id": guild.id.to_string(),
        "name": guild.name,
        "icon": null,
        "icon_hash": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": guild.owner_id.to_string(),
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "roles": [{
            // The @everyone role shares the guild's id.
            "id": guild.id.to_string(),
            "name": "@everyone",
            "color": 0,
            "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": 0,
            "permissions": "1071698660929",
            "managed": false,
            "mentionable": false,
            "flags": 0,
        }],
        "emojis": [],
    });
    let rest = json!({
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_presences": null,
        "max_members": 500_000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
        "incidents_data": null,
        "joined_at": iso(joined_at),
        "large": false,
        "unavailable": false,
        "lazy": true,
        "member_count": 2,
        "voice_states": [],
        "members": [],
        "channels": plain.iter().map(|c| channel(c, joined_at)).collect::<Vec<_>>(),
        "threads": threads.iter().map(|c| channel(c, joined_at)).collect::<Vec<_>>(),
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    });
    if let (Value::Object(target), Value::Object(extra)) = (&mut guild_json, rest) {
        target.extend(extra);
    }
    guild_json
}

/// Body of `GET /gateway`.
#[must_use]
pub fn gateway(url: &str) -> Value {
    json!({ "url": url })
}

/// Body of `GET /gateway/bot`.
#[must_use]
pub fn gateway_bot(url: &str, shards: u32, max_concurrency: u32) -> Value {
    json!({
        "url": url,
        "shards": shards,
        "session_start_limit": {
            "total": 1000,
            "remaining": 999,
            "reset_after": 14_400_000,
            "max_concurrency": max_concurrency,
        },
    })
}

/// A Discord JSON error body (`{"message": ..., "code": ...}`).
#[must_use]
pub fn error_body(code: u32, message: &str) -> Value {
    json!({ "message": message, "code": code })
}

/// A 400 "Invalid Form Body" error for one bad query parameter.
#[must_use]
pub fn invalid_form_body(field: &str, problem: &str) -> Value {
    json!({
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": { field: { "_errors": [{ "code": "BASE_TYPE_INVALID", "message": problem }] } },
    })
}

/// The body of a 429, exactly as Discord documents it (no `code` field).
#[must_use]
pub fn rate_limit_body(retry_after_secs: f64, global: bool) -> Value {
    json!({
        "message": "You are being rate limited.",
        "retry_after": retry_after_secs,
        "global": global,
    })
}

/// Opcode 10 HELLO frame.
#[must_use]
pub fn hello_frame(heartbeat_interval_ms: u64) -> String {
    json!({
        "op": 10,
        "s": null,
        "t": null,
        "d": { "heartbeat_interval": heartbeat_interval_ms, "_trace": ["[\"discord-sim\"]"] },
    })
    .to_string()
}

/// Opcode 11 HEARTBEAT_ACK frame.
#[must_use]
pub fn heartbeat_ack_frame() -> String {
    r#"{"op":11,"s":null,"t":null,"d":null}"#.to_owned()
}

/// Opcode 1 HEARTBEAT frame (the server asking for an immediate heartbeat).
#[must_use]
pub fn heartbeat_request_frame() -> String {
    r#"{"op":1,"s":null,"t":null,"d":null}"#.to_owned()
}

/// Opcode 7 RECONNECT frame.
#[must_use]
pub fn reconnect_frame() -> String {
    r#"{"op":7,"s":null,"t":null,"d":null}"#.to_owned()
}

/// Opcode 9 INVALID_SESSION frame.
#[must_use]
pub fn invalid_session_frame(resumable: bool) -> String {
    format!(r#"{{"op":9,"s":null,"t":null,"d":{resumable}}}"#)
}

/// Opcode 0 DISPATCH frame around an already serialised `d`.
///
/// `d_json` must be valid JSON; it is spliced in verbatim so one serialisation of a payload can
/// serve every session it goes to, each with its own sequence number.
#[must_use]
pub fn dispatch_frame(seq: u64, event: &str, d_json: &str) -> String {
    // Event names are normally upper-case constants, but raw dispatches take any string from a
    // test, so escape it properly.
    let event = Value::String(event.to_owned());
    format!(r#"{{"op":0,"s":{seq},"t":{event},"d":{d_json}}}"#)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serenity::model::channel::{Channel, Message};
    use serenity::model::event::{Event, GatewayEvent};
    use serenity::model::gateway::{BotGateway, Ready};
    use serenity::model::user::CurrentUser;

    use super::*;
    use crate::message::Author;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, 15, 13, 26, 7)
            .single()
            .expect("valid date")
    }

    fn guild() -> GuildInfo {
        GuildInfo {
            id: 1_094_357_612_345_678_901,
            name: "Trading".into(),
            owner_id: 5,
        }
    }

    fn text_channel() -> ChannelInfo {
        ChannelInfo {
            id: 1_372_012_942_848_954_388,
            guild_id: Some(guild().id),
            name: "aplus-setups".into(),
            kind: ChannelKind::Text,
            parent_id: None,
            recipient: None,
            forbidden: false,
        }
    }

    fn thread() -> ChannelInfo {
        ChannelInfo {
            id: 1_372_012_942_848_954_999,
            guild_id: Some(guild().id),
            name: "spy-discussion".into(),
            kind: ChannelKind::PublicThread,
            parent_id: Some(text_channel().id),
            recipient: None,
            forbidden: false,
        }
    }

    fn dm() -> ChannelInfo {
        ChannelInfo {
            id: 77,
            guild_id: None,
            name: String::new(),
            kind: ChannelKind::Dm,
            parent_id: None,
            recipient: Some(Author::user(9, "someone")),
            forbidden: false,
        }
    }

    /// Every message shape the simulator can make.
    fn all_message_specs() -> Vec<(&'static str, NewMessage)> {
        let channel = text_channel().id;
        vec![
            (
                "text",
                NewMessage::text(channel, "A+ Trade Setups — Thursday May 15"),
            ),
            (
                "forward",
                NewMessage::forward(channel, "A+ Trade Setups — forwarded"),
            ),
            (
                "forward with origin and snapshot embed",
                NewMessage::forward(channel, "fwd")
                    .forwarded_from(Some(guild().id), 123, Some(1_372_564_456_818_741_359))
                    .snapshot_embed(embed("t", "d")),
            ),
            (
                "embed only",
                NewMessage::embed_only(channel, vec![embed("BTO", "COIN 73c")]),
            ),
            (
                "link preview",
                NewMessage::text(channel, "x").embed(link_preview_embed("https://e.x", "t", "d")),
            ),
            (
                "attachment",
                NewMessage::text(channel, "chart").attachment(attachment(11, "spy.png", 2048)),
            ),
            (
                "bot",
                NewMessage::text(channel, "beep").from_bot(99, "AlertBot"),
            ),
            (
                "webhook",
                NewMessage::text(channel, "hook").from_webhook(55, "Captain Hook"),
            ),
            (
                "mentions",
                NewMessage::text(channel, "@everyone")
                    .mention(Author::user(3, "x"))
                    .mention_everyone(),
            ),
            (
                "nul and unicode",
                NewMessage::text(channel, "a\u{0}b \u{2028} ❤️=🐐"),
            ),
            ("huge", NewMessage::text(channel, "x".repeat(200_000))),
            ("reply type", {
                let mut m = NewMessage::text(channel, "reply");
                m.kind = 19;
                m
            }),
        ]
    }

    fn parse_dispatch(frame: &str) -> (u64, Event) {
        match serde_json::from_str::<GatewayEvent>(frame).expect("frame parses") {
            GatewayEvent::Dispatch(seq, event) => (seq, event),
            other => panic!("expected a dispatch, got {other:?}"),
        }
    }

    #[test]
    fn every_message_shape_deserializes_into_serenity_message() {
        for (name, spec) in all_message_specs() {
            let value = message_object(&spec, 1_372_565_715_109_941_359, at());
            let message: Message = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}\n{value}"));
            assert_eq!(message.id.get(), 1_372_565_715_109_941_359, "{name}");
            assert_eq!(message.channel_id.get(), spec.channel_id, "{name}");
            assert_eq!(message.content, spec.content, "{name}");
            assert_eq!(message.embeds.len(), spec.embeds.len(), "{name}");
            assert_eq!(message.author.bot, spec.author.bot, "{name}");
            assert_eq!(
                message.webhook_id.map(|w| w.get()),
                spec.webhook_id,
                "{name}"
            );
        }
    }

    #[test]
    fn every_message_shape_is_a_message_create_dispatch_for_serenity() {
        for (name, spec) in all_message_specs() {
            for guild_id in [Some(guild().id), None] {
                let rest = message_object(&spec, 1_372_565_715_109_941_359, at());
                let d = gateway_message(&rest, guild_id);
                let frame = dispatch_frame(7, "MESSAGE_CREATE", &d.to_string());
                let (seq, event) = parse_dispatch(&frame);
                assert_eq!(seq, 7);
                let Event::MessageCreate(created) = event else {
                    panic!("{name}: MESSAGE_CREATE was not understood: {event:?}");
                };
                assert_eq!(
                    created.message.guild_id.map(|g| g.get()),
                    guild_id,
                    "{name}"
                );
                assert_eq!(created.message.content, spec.content, "{name}");
            }
        }
    }

    #[test]
    fn a_forward_carries_its_text_only_in_the_snapshot() {
        let spec = NewMessage::forward(1, "A+ Trade Setups — Thursday May 15")
            .snapshot_embed(embed("chart", "levels"));
        let value = message_object(&spec, 1_372_565_715_109_941_359, at());
        assert_eq!(value["flags"], FLAG_HAS_SNAPSHOT);
        let message: Message = serde_json::from_value(value).expect("forward parses");
        assert_eq!(message.content, "");
        assert_eq!(message.message_snapshots.len(), 1);
        assert_eq!(
            message.message_snapshots[0].content,
            "A+ Trade Setups — Thursday May 15"
        );
        assert_eq!(message.message_snapshots[0].embeds.len(), 1);
        // serenity 0.12.5 does not know HAS_SNAPSHOT and truncates unknown flag bits, so a bot
        // must look at `message_snapshots`, not at the flag.
        assert_eq!(message.flags.map(|f| f.bits()), Some(0));
        let reference = message.message_reference.expect("forward has a reference");
        assert_eq!(
            reference.kind,
            serenity::model::channel::MessageReferenceKind::Forward
        );
        assert!(message.message_snapshots[0].timestamp.unix_timestamp() < at().timestamp());
    }

    #[test]
    fn content_is_blanked_without_the_message_content_intent() {
        let spec = NewMessage::forward(1, "secret").snapshot_embed(embed("t", "d"));
        let value = without_content(&gateway_message(
            &message_object(&spec, 5 << 22, at()),
            None,
        ));
        let message: Message = serde_json::from_value(value).expect("blanked message parses");
        assert_eq!(message.message_snapshots[0].content, "");
        assert!(message.message_snapshots[0].embeds.is_empty());
    }

    #[test]
    fn edits_and_link_previews_are_message_update_dispatches_for_serenity() {
        let spec = NewMessage::text(text_channel().id, "before");
        let mut stored = message_object(&spec, 5 << 22, at());
        apply_edit(&mut stored, "after", at() + chrono::Duration::seconds(5));
        let frame = dispatch_frame(
            3,
            "MESSAGE_UPDATE",
            &gateway_message(&stored, Some(guild().id)).to_string(),
        );
        let (_, event) = parse_dispatch(&frame);
        let Event::MessageUpdate(update) = event else {
            panic!("not an update: {event:?}")
        };
        assert_eq!(update.content.as_deref(), Some("after"));
        assert!(update.edited_timestamp.is_some());

        apply_embeds(
            &mut stored,
            vec![link_preview_embed("https://e.x", "t", "d")],
        );
        let frame = dispatch_frame(
            4,
            "MESSAGE_UPDATE",
            &gateway_message(&stored, Some(guild().id)).to_string(),
        );
        let (_, event) = parse_dispatch(&frame);
        let Event::MessageUpdate(update) = event else {
            panic!("not an update: {event:?}")
        };
        assert_eq!(update.embeds.map(|e| e.len()), Some(1));
    }

    #[test]
    fn a_delete_is_a_message_delete_dispatch_for_serenity() {
        let frame = dispatch_frame(
            9,
            "MESSAGE_DELETE",
            &message_delete(5, 6, Some(7)).to_string(),
        );
        let (_, event) = parse_dispatch(&frame);
        let Event::MessageDelete(delete) = event else {
            panic!("not a delete: {event:?}")
        };
        assert_eq!(delete.message_id.get(), 5);
        assert_eq!(delete.channel_id.get(), 6);
    }

    #[test]
    fn ready_is_understood_by_serenity() {
        let bot = Author::bot(1000, "capture-bot");
        let d = ready(
            &bot,
            1001,
            &[guild().id],
            "abc",
            "ws://127.0.0.1:1",
            Some([0, 2]),
        );
        let parsed: Ready = serde_json::from_value(d.clone()).expect("ready parses");
        assert_eq!(parsed.session_id, "abc");
        assert_eq!(parsed.guilds.len(), 1);
        assert_eq!(parsed.application.id.get(), 1001);
        let (_, event) = parse_dispatch(&dispatch_frame(1, "READY", &d.to_string()));
        assert!(matches!(event, Event::Ready(_)), "{event:?}");
    }

    #[test]
    fn guild_create_with_channels_and_threads_is_understood_by_serenity() {
        let text = text_channel();
        let thread = thread();
        let d = guild_create(&guild(), &[&text, &thread], at());
        let (_, event) = parse_dispatch(&dispatch_frame(2, "GUILD_CREATE", &d.to_string()));
        let Event::GuildCreate(created) = event else {
            let error = serde_json::from_value::<serenity::model::guild::Guild>(d)
                .expect_err("an unknown event means the guild does not parse");
            panic!("GUILD_CREATE not understood: {error}");
        };
        assert_eq!(created.guild.channels.len(), 1);
        assert_eq!(created.guild.threads.len(), 1);
        assert_eq!(
            created.guild.threads[0].parent_id.map(|p| p.get()),
            Some(text.id)
        );
    }

    #[test]
    fn channels_threads_and_dms_deserialize_into_serenity_channel() {
        for info in [text_channel(), thread(), dm()] {
            let value = channel(&info, at());
            let parsed: Channel = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{:?}: {e}\n{value}", info.kind));
            assert_eq!(parsed.id().get(), info.id);
            if let Channel::Guild(guild_channel) = parsed {
                assert_eq!(guild_channel.parent_id.map(|p| p.get()), info.parent_id);
            }
        }
        let (_, event) = parse_dispatch(&dispatch_frame(
            3,
            "THREAD_CREATE",
            &thread_create(&thread(), at()).to_string(),
        ));
        assert!(matches!(event, Event::ThreadCreate(_)), "{event:?}");
    }

    #[test]
    fn rest_bodies_deserialize_into_serenity_types() {
        let user: CurrentUser =
            serde_json::from_value(current_user(&Author::bot(1, "b"))).expect("user parses");
        assert!(user.bot);
        let bot_gateway: BotGateway =
            serde_json::from_value(gateway_bot("ws://x", 2, 4)).expect("gateway/bot parses");
        assert_eq!(bot_gateway.shards, 2);
        assert_eq!(bot_gateway.session_start_limit.max_concurrency, 4);
        let error: serenity::http::DiscordJsonError =
            serde_json::from_value(error_body(10003, "Unknown Channel")).expect("error parses");
        assert_eq!(error.code, 10003);
    }

    #[test]
    fn control_frames_are_understood_by_serenity() {
        let parse = |f: String| serde_json::from_str::<GatewayEvent>(&f).expect("frame parses");
        assert!(matches!(
            parse(hello_frame(41_250)),
            GatewayEvent::Hello(41_250)
        ));
        assert!(matches!(
            parse(heartbeat_ack_frame()),
            GatewayEvent::HeartbeatAck
        ));
        assert!(matches!(
            parse(heartbeat_request_frame()),
            GatewayEvent::Heartbeat(..)
        ));
        assert!(matches!(parse(reconnect_frame()), GatewayEvent::Reconnect));
        assert!(matches!(
            parse(invalid_session_frame(false)),
            GatewayEvent::InvalidateSession(false)
        ));
        assert!(matches!(
            parse(invalid_session_frame(true)),
            GatewayEvent::InvalidateSession(true)
        ));
        let (_, event) = parse_dispatch(&dispatch_frame(5, "RESUMED", "{}"));
        assert!(matches!(event, Event::Resumed(_)), "{event:?}");
    }

    #[test]
    fn a_bad_snowflake_makes_serenity_drop_the_message() {
        // Documents serenity's behaviour that the bot has to live with: the event becomes
        // Unknown rather than an error.
        let mut d = gateway_message(
            &message_object(&NewMessage::text(1, "x"), 5 << 22, at()),
            None,
        );
        d["id"] = json!("abc");
        let (_, event) = parse_dispatch(&dispatch_frame(1, "MESSAGE_CREATE", &d.to_string()));
        assert!(matches!(event, Event::Unknown(_)), "{event:?}");
        // u64::MAX is a valid u64, so serenity accepts it; it does not fit a signed BIGINT.
        d["id"] = json!("18446744073709551615");
        let (_, event) = parse_dispatch(&dispatch_frame(1, "MESSAGE_CREATE", &d.to_string()));
        assert!(matches!(event, Event::MessageCreate(_)), "{event:?}");
    }
}
