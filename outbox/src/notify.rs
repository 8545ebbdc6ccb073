//! NOTIFY after commit.
//!
//! Sent as its own statement once the data transaction has committed: inside
//! the transaction it would take PostgreSQL's cluster-wide notify lock at
//! commit, which cut insert throughput about fivefold under concurrency.
//! A lost notification costs latency, never data: consumers also poll.

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::sql::stmt;
use crate::{CHANNEL, CONTROL_CHANNEL, OutboxError};

/// Sends one notification per event id on [`CHANNEL`], in one statement.
pub async fn notify<C: ConnectionTrait>(db: &C, event_ids: &[Uuid]) -> Result<(), OutboxError> {
    if event_ids.is_empty() {
        return Ok(());
    }
    // Fault injection for the chaos suite: die after the commit, before the hint.
    fail::fail_point!("notify-abort", |_| std::process::abort());
    let ids: Vec<Uuid> = event_ids.to_vec();
    db.execute_raw(stmt(
        "SELECT pg_notify($1, id::text) FROM unnest($2::uuid[]) AS id",
        [CHANNEL.into(), ids.into()],
    ))
    .await?;
    metrics::counter!("aplus_notify_sent_total").increment(event_ids.len() as u64);
    Ok(())
}

/// Asks every listener to drop its connection and LISTEN again.
pub async fn relisten<C: ConnectionTrait>(db: &C) -> Result<(), OutboxError> {
    db.execute_raw(stmt(
        "SELECT pg_notify($1, 'relisten')",
        [CONTROL_CHANNEL.into()],
    ))
    .await?;
    Ok(())
}
