//! Connecting: gateway discovery bodies, READY, and the opcode frames (HELLO, heartbeats,
//! RECONNECT, INVALID_SESSION, DISPATCH).

use serde_json::{Value, json};

use super::{APPLICATION_FLAGS, current_user};
use crate::message::Author;

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
