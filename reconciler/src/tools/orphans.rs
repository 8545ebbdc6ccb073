//! Events nobody processed, one row each, as `audit` lists its oldest
//! orphans and `recover` lists what it re-fires or replays: one type, one
//! table.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::format;

/// One event that no worker has processed: never claimed, a retry overdue,
/// or dead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrphanRow {
    pub event_id: uuid::Uuid,
    pub message_id: i64,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub age_secs: f64,
    /// `never_claimed`, `retry_overdue` or `dead`.
    pub reason: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// The rows as a table under a header line, each line indented by two
/// spaces; only the first line of an error is shown.
pub fn table(rows: &[OrphanRow]) -> String {
    let mut out = format!(
        "  {:<36}  {:>20}  {:<15} {:<8} {:<14} {:>8}  last error\n",
        "event id", "message id", "kind", "age", "reason", "attempts"
    );
    for o in rows {
        out.push_str(&format!(
            "  {:<36}  {:>20}  {:<15} {:<8} {:<14} {:>8}  {}\n",
            o.event_id,
            o.message_id,
            o.kind,
            format::seconds(o.age_secs),
            o.reason.replace('_', " "),
            o.attempts,
            o.last_error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("")
        ));
    }
    out
}
