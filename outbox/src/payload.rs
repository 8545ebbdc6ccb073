//! Versioned event payloads: small, explicit, and separate from the entities.
//!
//! Payloads say what happened; the message itself is read from `messages`.
//! Each carries `v` so a consumer can tell a newer writer's payload from a
//! malformed one. Snowflakes travel as strings, as Discord sends them, so no
//! JSON reader loses precision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The payload version this crate writes.
pub const VERSION: u32 = 1;

/// Where a `message.created` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A gateway dispatch.
    Gateway,
    /// A REST history page read to fill a gap.
    Backfill,
    /// A scheduled sweep of recent history found the message missing (the
    /// gateway never delivered it).
    Sweep,
    /// Written by the reconciler for a message that had no event.
    Reconciler,
}

/// Payload of `message.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCreated {
    pub v: u32,
    pub channel_id: String,
    pub source: Source,
}

/// Payload of `message.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUpdated {
    pub v: u32,
    pub edited_at: Option<DateTime<Utc>>,
}

/// Payload of `message.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub v: u32,
}

impl MessageCreated {
    /// A version-1 payload.
    pub fn new(channel_id: i64, source: Source) -> Self {
        Self {
            v: VERSION,
            channel_id: channel_id.to_string(),
            source,
        }
    }
}

/// Serialises a payload. Payload types hold only strings, numbers and
/// timestamps, for which `serde_json` cannot fail.
pub(crate) fn to_json<T: Serialize>(payload: &T) -> serde_json::Value {
    serde_json::to_value(payload).expect("payload types serialise infallibly")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_payload_is_small_and_versioned() {
        let json = to_json(&MessageCreated::new(
            1_372_012_942_848_954_388,
            Source::Gateway,
        ));
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "channel_id": "1372012942848954388", "source": "gateway"})
        );
    }
}
