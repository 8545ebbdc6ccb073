//! Channels, threads and guilds: `GET /channels/{id}`, THREAD_CREATE and GUILD_CREATE.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{iso, user};
use crate::message::Author;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

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
