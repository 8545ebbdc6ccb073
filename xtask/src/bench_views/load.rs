//! Loading a generated history through `outbox`, as the bot and the worker
//! write it.
//!
//! Messages and their `message.created` events are written by
//! `outbox::record::record_messages`, one transaction per group, and the
//! inbox by `outbox::consume::process_batch` with a handler that applies
//! nothing; nothing here writes `events` or `inbox` itself.
//!
//! A history a year long cannot be written in real time, and `outbox` stamps
//! rows with the database clock (`received_at`, `created_at` default to
//! `now()`). So in the bench's own throwaway database, and only while
//! loading, those two defaults read a clock the bench sets per transaction
//! (`aplus_bench.now`, falling back to `now()`); they are put back to `now()`
//! before anything is timed. The history is written in at most one group per
//! hour of the year, oldest first, each group stamped with its hour, so a
//! window of the views sees about the share of the history it would see in
//! a live system. Inbox rows carry the time they were written (`inbox` stamps
//! `processed_at` with `now()` in its own statements), which no timed query
//! windows on.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outbox::Backoff;
use outbox::consume::{self, ClaimedEvent, ConsumerConfig, Handler, HandlerError};
use outbox::payload::Source;
use outbox::record::{self, NewMessage};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::report::count;

/// The history spans this long, ending at the load's start.
const SPAN: chrono::Duration = chrono::Duration::days(365);

/// At most one group (one transaction) per hour of the history.
const MAX_GROUPS: u64 = 365 * 24;

/// Events claimed per consumer batch while writing the inbox.
const BATCH: u32 = 5_000;

/// The newest messages, recorded last and left unclaimed, as in a live system.
const UNCLAIMED: u64 = 10;

/// One message in 100,000 ends `dead` (its only attempt failed), another
/// `failed` with a retry due in ten minutes.
const DEAD_AT: i64 = 7;
const FAILED_AT: i64 = 11;
const EVERY: i64 = 100_000;

/// `received_at` and `created_at` read the bench's clock while loading.
const CLOCK_ON: &str = "\
    ALTER TABLE messages ALTER COLUMN received_at SET DEFAULT \
      coalesce(nullif(current_setting('aplus_bench.now', true), '')::timestamptz, now()); \
    ALTER TABLE events ALTER COLUMN created_at SET DEFAULT \
      coalesce(nullif(current_setting('aplus_bench.now', true), '')::timestamptz, now())";

/// ... and the database's clock again afterwards, as the migrations made them.
const CLOCK_OFF: &str = "\
    ALTER TABLE messages ALTER COLUMN received_at SET DEFAULT now(); \
    ALTER TABLE events ALTER COLUMN created_at SET DEFAULT now()";

/// A handler that applies nothing and fails for the chosen messages.
struct Failing(i64);

impl Handler for Failing {
    async fn handle(
        &self,
        _: &DatabaseTransaction,
        event: &ClaimedEvent,
    ) -> Result<(), HandlerError> {
        if event.message_id % EVERY == self.0 {
            anyhow::bail!("handler error: bad line {}", event.message_id);
        }
        Ok(())
    }
}

/// A generated message: four channels, ids growing with time as snowflakes do.
fn message(id: i64, at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id,
        guild_id: Some(1),
        channel_id: 1 + id % 4,
        author_id: 42,
        author_name: "trader".to_owned(),
        author_is_bot: false,
        content: format!("A+ setups {id}"),
        embeds: serde_json::json!([]),
        attachments: serde_json::json!([]),
        is_forward: false,
        sent_at: at,
        edited_at: None,
        raw: serde_json::json!({}),
    }
}

/// Records these messages in one transaction stamped `at`.
async fn record_at(db: &DatabaseConnection, ids: &[i64], at: DateTime<Utc>) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    // A throwaway history needs no flush per commit; the timed passes run
    // with the server's own setting.
    txn.execute_raw(stmt(
        "SELECT set_config('aplus_bench.now', $1, true), \
                set_config('synchronous_commit', 'off', true)",
        [at.to_rfc3339().into()],
    ))
    .await?;
    let batch = ids.iter().map(|&id| message(id, at)).collect();
    record::record_messages(&txn, batch, Source::Gateway).await?;
    txn.commit().await?;
    Ok(())
}

/// Processes everything claimable, failing the messages `failing` picks.
async fn drain(db: &DatabaseConnection, failing: i64, max_attempts: u32) -> anyhow::Result<()> {
    let config = ConsumerConfig {
        batch_size: BATCH,
        max_attempts,
        retry: Backoff::new(Duration::from_secs(600), Duration::from_secs(600)),
        ..ConsumerConfig::new("bench")
    };
    loop {
        let report = consume::process_batch(db, &config, &Failing(failing)).await?;
        if report.claimed == 0 {
            return Ok(());
        }
    }
}

/// Loads `n` messages over the past year, with events and inbox rows.
pub async fn load(
    db: &DatabaseConnection,
    n: u64,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    db.execute_unprepared(CLOCK_ON).await?;
    let now: DateTime<Utc> = db
        .query_one_raw(stmt("SELECT now() AS now", []))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the clock returned no row"))?
        .try_get_by("now")?;
    let start = now - SPAN;
    let unclaimed = n.min(UNCLAIMED);
    let loaded = n - unclaimed;
    let groups = loaded.clamp(1, MAX_GROUPS);
    let at = |group: u64| start + SPAN * (group as i32) / (groups as i32);
    let mut failed_later: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let (mut first, mut reported) = (1u64, 0u64);
    let t = Instant::now();
    for group in 0..groups {
        let last = loaded * (group + 1) / groups;
        let mut ids = Vec::with_capacity((last + 1 - first) as usize);
        for id in first as i64..=last as i64 {
            // Written after the others are processed, to be failed alone.
            if id % EVERY == FAILED_AT {
                failed_later.push((id, at(group)));
            } else {
                ids.push(id);
            }
        }
        record_at(db, &ids, at(group)).await?;
        first = last + 1;
        if last * 10 / loaded.max(1) > reported {
            reported = last * 10 / loaded.max(1);
            let _ = writeln!(
                out,
                "  recorded {} of {} ({})",
                count(last),
                count(n),
                reckon(t.elapsed())
            );
        }
    }
    let t = Instant::now();
    drain(db, DEAD_AT, 1).await?;
    for (id, at) in failed_later {
        record_at(db, &[id], at).await?;
    }
    drain(db, FAILED_AT, 8).await?;
    let _ = writeln!(out, "  processed every event ({})", reckon(t.elapsed()));
    let newest: Vec<i64> = (loaded + 1..=n).map(|id| id as i64).collect();
    record_at(db, &newest, now).await?;
    db.execute_unprepared(CLOCK_OFF).await?;

    let t = Instant::now();
    db.execute_unprepared("VACUUM ANALYZE").await?;
    let watermark = outbox::watermark::advance(db, u32::MAX).await?;
    let _ = writeln!(
        out,
        "  vacuumed, analysed and advanced the watermark to {} ({})",
        count(watermark),
        reckon(t.elapsed())
    );
    Ok(())
}

fn reckon(d: Duration) -> String {
    reconciler::format::duration(d)
}
