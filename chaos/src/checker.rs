//! The final check, against ground truth, once the load has stopped and the
//! pipeline has had its drain time: what the fake Discord emitted versus
//! what `messages` holds (I0), one event per message (I1, I2), one effect
//! per event (I3, from the effect recorder's history), nothing left
//! unprocessed (I4), and how long events waited.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use discord_sim::{Comparison, Sim};
use sea_orm::sqlx::postgres::{PgConnection, PgRow};
use sea_orm::sqlx::{self, Row as _};
use serde::Serialize;

use crate::database::ChaosDb;
use crate::invariants::{self, Counts};

/// Evidence about effects, from `chaos_effects` and the worker's tables.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EffectCounts {
    /// Effects recorded (committed effect writes).
    pub recorded: i64,
    /// Events whose effect was committed more than once.
    pub applied_twice: i64,
    /// Effects committed without their event's processed inbox row in the
    /// same transaction.
    pub without_inbox: i64,
    /// Processed `message.created` events with no recorded effect, neither
    /// their own nor their message's in the same transaction.
    pub processed_without_effect: i64,
    /// Stored messages without a parse row.
    pub messages_without_parse: i64,
    /// `(message, ticker, setup_index)` present more than once in `setups`.
    pub duplicate_setups: i64,
    /// Inbox rows that were claimed more than once (attempts > 1).
    pub retried_inbox_rows: i64,
}

const EFFECTS: &str = r#"
SELECT
  (SELECT count(*) FROM chaos_effects) AS recorded,
  (SELECT count(*) FROM (SELECT event_id FROM chaos_effects
                         GROUP BY event_id HAVING count(*) > 1) d) AS applied_twice,
  (SELECT count(*) FROM chaos_effects WHERE NOT inbox_processed) AS without_inbox,
  (SELECT count(*) FROM inbox i JOIN events e ON e.id = i.event_id
    WHERE i.status = 'processed' AND e.kind = 'message.created'
      AND NOT EXISTS (SELECT 1 FROM chaos_effects c WHERE c.event_id = i.event_id)
      -- or the batch's one effect for its message, under a later event of
      -- it: written in the same savepoint, so both rows have the same xmin
      AND NOT EXISTS (SELECT 1 FROM chaos_effects c
                      WHERE c.message_id = e.message_id AND c.xmin = i.xmin))
    AS processed_without_effect,
  (SELECT count(*) FROM messages m
    WHERE NOT EXISTS (SELECT 1 FROM message_parses p WHERE p.message_id = m.id))
    AS messages_without_parse,
  (SELECT count(*) FROM (SELECT 1 FROM setups GROUP BY message_id, ticker, setup_index
                         HAVING count(*) > 1) d) AS duplicate_setups,
  (SELECT count(*) FROM inbox WHERE attempts > 1) AS retried_inbox_rows
"#;

/// How long events waited from commit to processed, in seconds (database clock).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The longest.
    pub max: f64,
}

impl EffectCounts {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            recorded: row.try_get("recorded")?,
            applied_twice: row.try_get("applied_twice")?,
            without_inbox: row.try_get("without_inbox")?,
            processed_without_effect: row.try_get("processed_without_effect")?,
            messages_without_parse: row.try_get("messages_without_parse")?,
            duplicate_setups: row.try_get("duplicate_setups")?,
            retried_inbox_rows: row.try_get("retried_inbox_rows")?,
        })
    }
}

const LATENCY: &str = r#"
SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY l), 0)::float8 AS p50,
       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY l), 0)::float8 AS p99,
       coalesce(max(l), 0)::float8 AS max
FROM (SELECT extract(epoch FROM i.processed_at - e.created_at)::float8 AS l
      FROM inbox i JOIN events e ON e.id = i.event_id
      WHERE i.status = 'processed') x
"#;

/// The state of the pipeline against ground truth.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// The invariant counts.
    pub counts: Counts,
    /// Ground truth versus `messages`.
    pub comparison: Comparison,
    /// Messages emitted (in the watched channels).
    pub emitted: usize,
    /// Of those, posted into history only.
    pub emitted_history_only: usize,
    /// Stored messages that no gateway socket ever carried (posted while no
    /// bot session was connected, or history only): they were recovered
    /// from Discord's history by a backfill.
    pub recovered: usize,
    /// Effect evidence.
    pub effects: EffectCounts,
    /// Event latency.
    pub latency: Latency,
    /// Processed events by worker name.
    pub processed_by_worker: BTreeMap<String, i64>,
    /// Edits and deletes made in Discord versus `messages`.
    pub changes: Changes,
}

/// Whether `messages` shows what Discord did to messages after posting them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    /// Stored messages edited in Discord (and not deleted).
    pub edited: usize,
    /// Of those, stored with other text than Discord's last edit.
    pub edit_missed: Vec<u64>,
    /// Stored messages deleted in Discord.
    pub deleted: usize,
    /// Of those, not marked deleted.
    pub delete_missed: Vec<u64>,
}

impl Changes {
    /// Whether every edit and delete reached `messages`.
    pub fn all_applied(&self) -> bool {
        self.edit_missed.is_empty() && self.delete_missed.is_empty()
    }
}

impl FinalState {
    /// Whether the pipeline has caught up: nothing lost, nothing waiting.
    pub fn is_drained(&self) -> bool {
        self.comparison.lost.is_empty()
            && self.counts.unprocessed == 0
            && self.counts.failed == 0
            && self.changes.all_applied()
    }
}

/// Reads the final state, all of it from one snapshot (a repeatable-read
/// transaction), so the counts, the ids and the effects agree with each other
/// even while the services are still writing.
///
/// # Errors
/// When the database cannot be read.
pub async fn read(conn: &mut PgConnection, sim: &Sim, channels: &[u64]) -> Result<FinalState> {
    // The ground truth first: anything emitted after this cannot be stored
    // in the snapshot taken next, nor be missing from it.
    let truth = sim.ground_truth();
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await
        .context("opening a snapshot")?;
    let state = read_snapshot(conn, sim, &truth, channels).await;
    // A read-only transaction has nothing to keep; ending it cannot lose anything.
    let _ = sqlx::query("COMMIT").execute(&mut *conn).await;
    state
}

async fn read_snapshot(
    conn: &mut PgConnection,
    sim: &Sim,
    truth: &discord_sim::GroundTruth,
    channels: &[u64],
) -> Result<FinalState> {
    let counts = invariants::read(conn).await.context("reading the counts")?;
    let rows: Vec<(i64, String, bool)> =
        sqlx::query_as("SELECT id, content, deleted_at IS NOT NULL FROM messages")
            .fetch_all(&mut *conn)
            .await
            .context("reading the stored messages")?;
    let rows: HashMap<u64, (String, bool)> = rows
        .into_iter()
        .map(|(id, content, deleted)| (id as u64, (content, deleted)))
        .collect();
    // Deleted in Discord and marked deleted here: not expected, not unexpected.
    let stored: Vec<u64> = rows
        .iter()
        .filter(|(_, (_, deleted))| !deleted)
        .map(|(id, _)| *id)
        .collect();
    let comparison = truth.compare_channels(stored.iter().copied(), channels);
    let in_channels =
        |m: &discord_sim::EmittedMessage| !m.raw && channels.iter().any(|c| m.is_in_or_under(*c));
    let watched = |m: &discord_sim::EmittedMessage| in_channels(m) && !m.deleted;
    let mut changes = Changes::default();
    for m in truth.messages().filter(|m| in_channels(m)) {
        let Some((content, marked_deleted)) = rows.get(&m.id) else {
            continue;
        };
        if m.deleted {
            changes.deleted += 1;
            if !marked_deleted {
                changes.delete_missed.push(m.id);
            }
        } else if m.edits > 0 {
            changes.edited += 1;
            let discord = sim.message(m.id);
            let text = discord
                .as_ref()
                .and_then(|v| v.get("content"))
                .and_then(|v| v.as_str());
            if text != Some(content.as_str()) {
                changes.edit_missed.push(m.id);
            }
        }
    }
    let stored_set: std::collections::HashSet<u64> = stored.iter().copied().collect();
    let emitted = truth.messages().filter(|m| watched(m)).count();
    let emitted_history_only = truth.messages().filter(|m| watched(m) && !m.live).count();
    let recovered = truth
        .messages()
        .filter(|m| watched(m) && stored_set.contains(&m.id) && (!m.live || m.writes == 0))
        .count();
    let row = sqlx::query(EFFECTS)
        .fetch_one(&mut *conn)
        .await
        .context("reading the effect history")?;
    let effects = EffectCounts::from_row(&row).context("reading the effect history")?;
    let row = sqlx::query(LATENCY)
        .fetch_one(&mut *conn)
        .await
        .context("reading latencies")?;
    let latency = Latency {
        p50: row.try_get("p50")?,
        p99: row.try_get("p99")?,
        max: row.try_get("max")?,
    };
    let by_worker: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT worker, count(*) FROM inbox WHERE status = 'processed' GROUP BY worker",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading who processed what")?;
    Ok(FinalState {
        counts,
        comparison,
        emitted,
        emitted_history_only,
        recovered,
        effects,
        latency,
        processed_by_worker: by_worker
            .into_iter()
            .map(|(w, n)| (w.unwrap_or_default(), n))
            .collect(),
        changes,
    })
}

/// Waits until the pipeline has caught up (or `timeout` passes), then reads
/// the final state. Returns how long the drain took, if it completed.
///
/// Caught up means drained in two reads half a second apart with nothing
/// new stored in between: a backfill or a replay still in flight would
/// otherwise be cut off halfway.
///
/// # Errors
/// When the database cannot be read at the end.
pub async fn drain(
    db: &ChaosDb,
    sim: &Sim,
    channels: &[u64],
    timeout: Duration,
) -> Result<(Option<Duration>, FinalState)> {
    let started = Instant::now();
    let mut previous: Option<(Duration, i64)> = None;
    loop {
        let state = match db.connect("aplus-chaos-checker").await {
            Ok(mut conn) => read(&mut conn, sim, channels).await.ok(),
            Err(_) => None,
        };
        match &state {
            Some(state) if state.is_drained() => {
                if let Some((at, messages)) = previous
                    && messages == state.counts.messages
                {
                    return Ok((Some(at), state.clone()));
                }
                previous = Some((started.elapsed(), state.counts.messages));
            }
            _ => previous = None,
        }
        if started.elapsed() > timeout {
            let mut conn = db.connect("aplus-chaos-checker").await?;
            return Ok((None, read(&mut conn, sim, channels).await?));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
