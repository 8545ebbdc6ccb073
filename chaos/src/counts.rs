//! The counts behind the invariants, read in one statement so that they all
//! come from one snapshot: a message and its event either both show or
//! neither does.

use sea_orm::sqlx::postgres::{PgConnection, PgRow};
use sea_orm::sqlx::{self, Row as _};
use serde::Serialize;

/// One consistent look at the pipeline's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows in `messages`.
    pub messages: i64,
    /// `message.created` events.
    pub created_events: i64,
    /// Messages without a `message.created` event (I1).
    pub messages_without_event: i64,
    /// Messages with more than one `message.created` event (I1, I2).
    pub messages_with_duplicate_events: i64,
    /// Events whose message is not stored (I2).
    pub events_without_message: i64,
    /// Events without a processed inbox row.
    pub unprocessed: i64,
    /// Inbox rows waiting for a retry.
    pub failed: i64,
    /// Inbox rows that gave up.
    pub dead: i64,
    /// Processed inbox rows.
    pub processed: i64,
}

impl Counts {
    /// I1 and I2 as one list of broken promises (empty when they hold).
    pub fn i1_i2_violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        if self.messages != self.created_events {
            broken.push(format!(
                "I1: {} messages but {} message.created events",
                self.messages, self.created_events
            ));
        }
        if self.messages_without_event > 0 {
            broken.push(format!(
                "I1: {} messages have no message.created event",
                self.messages_without_event
            ));
        }
        if self.messages_with_duplicate_events > 0 {
            broken.push(format!(
                "I2: {} messages have more than one message.created event",
                self.messages_with_duplicate_events
            ));
        }
        if self.events_without_message > 0 {
            broken.push(format!(
                "I2: {} events have no message",
                self.events_without_message
            ));
        }
        broken
    }
}

const COUNTS: &str = r#"
SELECT
  (SELECT count(*) FROM messages) AS messages,
  (SELECT count(*) FROM events WHERE kind = 'message.created') AS created_events,
  (SELECT count(*) FROM messages m
    WHERE NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.message_id = m.id AND e.kind = 'message.created'))
    AS messages_without_event,
  (SELECT count(*) FROM (SELECT message_id FROM events WHERE kind = 'message.created'
                         GROUP BY message_id HAVING count(*) > 1) d)
    AS messages_with_duplicate_events,
  (SELECT count(*) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id))
    AS events_without_message,
  (SELECT count(*) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM inbox i
                      WHERE i.event_id = e.id AND i.status = 'processed'))
    AS unprocessed,
  (SELECT count(*) FROM inbox WHERE status = 'failed') AS failed,
  (SELECT count(*) FROM inbox WHERE status = 'dead') AS dead,
  (SELECT count(*) FROM inbox WHERE status = 'processed') AS processed
"#;

/// Reads the counts.
///
/// # Errors
/// Any database error (the server may be down on purpose).
pub async fn read(conn: &mut PgConnection) -> Result<Counts, sqlx::Error> {
    let row = sqlx::query(COUNTS).fetch_one(conn).await?;
    Counts::from_row(&row)
}

impl Counts {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            messages: row.try_get("messages")?,
            created_events: row.try_get("created_events")?,
            messages_without_event: row.try_get("messages_without_event")?,
            messages_with_duplicate_events: row.try_get("messages_with_duplicate_events")?,
            events_without_message: row.try_get("events_without_message")?,
            unprocessed: row.try_get("unprocessed")?,
            failed: row.try_get("failed")?,
            dead: row.try_get("dead")?,
            processed: row.try_get("processed")?,
        })
    }
}
