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
//!
//! The builders are grouped by what they describe: [`messages`] (message objects and their
//! events), [`guilds`] (channels, threads and guilds), [`connect`] (gateway discovery, READY
//! and the opcode frames); the shared pieces (users, embeds, attachments) and REST error bodies
//! are here.

mod connect;
mod guilds;
mod messages;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::message::Author;

pub use connect::*;
pub use guilds::*;
pub use messages::*;

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

#[cfg(test)]
mod tests;
