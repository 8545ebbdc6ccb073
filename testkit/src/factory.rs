//! Rows for tests.

use chrono::{TimeZone as _, Utc};
use outbox::record::NewMessage;

/// A plain message with the given id, channel and text.
pub fn message(id: i64, channel_id: i64, content: &str) -> NewMessage {
    NewMessage {
        id,
        guild_id: Some(1),
        channel_id,
        author_id: 42,
        author_name: "trader".to_owned(),
        author_is_bot: false,
        content: content.to_owned(),
        embeds: serde_json::json!([]),
        attachments: serde_json::json!([]),
        is_forward: false,
        sent_at: Utc
            .timestamp_millis_opt(1_747_315_567_520)
            .single()
            .unwrap_or_else(Utc::now),
        edited_at: None,
        raw: serde_json::json!({"id": id.to_string(), "content": content}),
    }
}
