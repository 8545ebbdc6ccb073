//! `audit`: why events were not processed.
//!
//! For the events created in a window: totals, the unprocessed ones by age,
//! the failed and dead ones grouped by error (numbers and ids folded, so "poison
//! message 7" and "poison message 777" are one group) and by attempts, and the
//! oldest orphans with their message ids. Read-only: direct SELECTs with the
//! views' definitions, never a write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, IsolationLevel, TransactionTrait};
use serde::Serialize;

use crate::config::defaults;
use crate::error::Result;
use crate::format;
use crate::sql::{count, interval_secs, one};
use crate::tools::orphans::{self, OrphanRow};

/// What an audit covers.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOptions {
    /// Events created this long ago or later.
    pub since: Duration,
    /// Error groups and orphans listed, at most.
    pub top: i64,
    /// Unclaimed events younger than this are in flight, not orphans.
    pub grace: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            since: defaults::duration(defaults::AUDIT_SINCE),
            top: defaults::AUDIT_TOP,
            grace: defaults::duration(defaults::ORPHAN_GRACE),
        }
    }
}

/// Counts over the whole window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditTotals {
    pub events: u64,
    pub processed: u64,
    /// No inbox row yet.
    pub waiting: u64,
    pub failed: u64,
    pub dead: u64,
    pub messages: u64,
    pub messages_without_event: u64,
}

/// Unprocessed events of one age range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgeBucket {
    /// `under 1 min`, `1-5 min`, `5-60 min`, `1-6 h`, `6-24 h`, `over 24 h`.
    pub age: &'static str,
    pub waiting: u64,
    pub failed: u64,
    pub dead: u64,
}

/// Failed or dead events sharing one error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorGroup {
    /// `failed` or `dead`.
    pub status: String,
    /// The error's first line with numbers and ids folded.
    pub pattern: String,
    /// One real error of the group.
    pub example: String,
    pub events: u64,
    /// Creation time of the newest event in the group.
    pub latest_event_at: DateTime<Utc>,
}

/// Failed and dead events by attempts made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptsRow {
    pub attempts: i32,
    pub failed: u64,
    pub dead: u64,
}

/// The audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub observed_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub totals: AuditTotals,
    pub by_age: Vec<AgeBucket>,
    pub by_error: Vec<ErrorGroup>,
    pub by_attempts: Vec<AttemptsRow>,
    pub oldest_orphans: Vec<OrphanRow>,
    pub next_commands: Vec<String>,
}

const AGE_BUCKETS: [&str; 6] = [
    "under 1 min",
    "1-5 min",
    "5-60 min",
    "1-6 h",
    "6-24 h",
    "over 24 h",
];

/// Events stuck in the window: unclaimed, failed or dead. `{watermark}` is
/// replaced by the watermark's value, so the planner sees it (see
/// [`crate::stats`]).
const STUCK: &str = r#"
WITH stuck AS (
  SELECT 'waiting'::text AS status, e.created_at
  FROM events e
  WHERE e.txid >= '{watermark}'::xid8
    AND e.created_at >= $1
    AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)
  UNION ALL
  SELECT i.status, e.created_at
  FROM inbox i JOIN events e ON e.id = i.event_id
  WHERE i.status IN ('failed', 'dead') AND e.created_at >= $1)
SELECT CASE
         WHEN now() - created_at < interval '1 minute' THEN 0
         WHEN now() - created_at < interval '5 minutes' THEN 1
         WHEN now() - created_at < interval '1 hour' THEN 2
         WHEN now() - created_at < interval '6 hours' THEN 3
         WHEN now() - created_at < interval '24 hours' THEN 4
         ELSE 5 END AS bucket,
       count(*) FILTER (WHERE status = 'waiting') AS waiting,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'dead') AS dead
FROM stuck GROUP BY 1 ORDER BY 1
"#;

/// Failed and dead events by error, the error's first line with ids and
/// numbers folded.
const BY_ERROR: &str = r#"
SELECT i.status,
       regexp_replace(
         regexp_replace(left(split_part(coalesce(i.last_error, '(no error recorded)'), E'\n', 1), 200),
                        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'gi'),
         '[0-9]+', 'N', 'g') AS pattern,
       count(*) AS events,
       min(left(split_part(coalesce(i.last_error, ''), E'\n', 1), 200)) AS example,
       max(e.created_at) AS latest
FROM inbox i JOIN events e ON e.id = i.event_id
WHERE i.status IN ('failed', 'dead') AND e.created_at >= $1
GROUP BY 1, 2
ORDER BY count(*) DESC, 2
LIMIT $2
"#;

/// Runs the audit.
pub async fn run(db: &DatabaseConnection, options: &AuditOptions) -> Result<AuditReport> {
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let row = one(
        txn.query_one_raw(stmt(
            "SELECT now() AS observed_at, now() - make_interval(secs => $1) AS since",
            [interval_secs(options.since)],
        ))
        .await?,
        "the clock",
    )?;
    let observed_at: DateTime<Utc> = row.try_get_by("observed_at")?;
    let since: DateTime<Utc> = row.try_get_by("since")?;

    let totals = totals(&txn, since).await?;

    let mut by_age: Vec<AgeBucket> = AGE_BUCKETS
        .iter()
        .map(|age| AgeBucket {
            age,
            waiting: 0,
            failed: 0,
            dead: 0,
        })
        .collect();
    let watermark = outbox::watermark::current(&txn).await?;
    let stuck = STUCK.replace("{watermark}", &watermark.to_string());
    for row in txn.query_all_raw(stmt(&stuck, [since.into()])).await? {
        let bucket: i32 = row.try_get_by("bucket")?;
        if let Some(b) = by_age.get_mut(bucket as usize) {
            b.waiting = count(&row, "waiting")?;
            b.failed = count(&row, "failed")?;
            b.dead = count(&row, "dead")?;
        }
    }

    let mut by_error = Vec::new();
    for row in txn
        .query_all_raw(stmt(BY_ERROR, [since.into(), options.top.into()]))
        .await?
    {
        by_error.push(ErrorGroup {
            status: row.try_get_by("status")?,
            pattern: row.try_get_by("pattern")?,
            example: row
                .try_get_by::<Option<String>, _>("example")?
                .unwrap_or_default(),
            events: count(&row, "events")?,
            latest_event_at: row.try_get_by("latest")?,
        });
    }

    let mut by_attempts = Vec::new();
    for row in txn
        .query_all_raw(stmt(
            "SELECT i.attempts, \
                    count(*) FILTER (WHERE i.status = 'failed') AS failed, \
                    count(*) FILTER (WHERE i.status = 'dead') AS dead \
             FROM inbox i JOIN events e ON e.id = i.event_id \
             WHERE i.status IN ('failed', 'dead') AND e.created_at >= $1 \
             GROUP BY i.attempts ORDER BY i.attempts",
            [since.into()],
        ))
        .await?
    {
        by_attempts.push(AttemptsRow {
            attempts: row.try_get_by("attempts")?,
            failed: count(&row, "failed")?,
            dead: count(&row, "dead")?,
        });
    }

    let oldest_orphans =
        crate::stats::orphan_rows(&txn, options.grace, Some(since), options.top).await?;
    txn.commit().await?;

    let mut next_commands = Vec::new();
    if totals.dead > 0 {
        next_commands.push("reconciler recover --dead --dry-run".to_owned());
    }
    if !oldest_orphans.is_empty() {
        next_commands.push("reconciler recover --dry-run".to_owned());
    }
    if totals.messages_without_event > 0 {
        next_commands.push("reconciler once".to_owned());
    }
    Ok(AuditReport {
        observed_at,
        since,
        totals,
        by_age,
        by_error,
        by_attempts,
        oldest_orphans,
        next_commands,
    })
}

async fn totals<C: ConnectionTrait>(db: &C, since: DateTime<Utc>) -> Result<AuditTotals> {
    let row = one(
        db.query_one_raw(stmt(
            "SELECT count(*) AS events, \
                    count(*) FILTER (WHERE i.status = 'processed') AS processed, \
                    count(*) FILTER (WHERE i.event_id IS NULL) AS waiting, \
                    count(*) FILTER (WHERE i.status = 'failed') AS failed, \
                    count(*) FILTER (WHERE i.status = 'dead') AS dead \
             FROM events e LEFT JOIN inbox i ON i.event_id = e.id \
             WHERE e.created_at >= $1",
            [since.into()],
        ))
        .await?,
        "event totals",
    )?;
    let messages = one(
        db.query_one_raw(stmt(
            "SELECT count(*) AS messages, \
                    count(*) FILTER (WHERE NOT EXISTS ( \
                      SELECT 1 FROM events e \
                      WHERE e.message_id = m.id AND e.kind = 'message.created')) AS missing \
             FROM messages m WHERE m.received_at >= $1",
            [since.into()],
        ))
        .await?,
        "message totals",
    )?;
    Ok(AuditTotals {
        events: count(&row, "events")?,
        processed: count(&row, "processed")?,
        waiting: count(&row, "waiting")?,
        failed: count(&row, "failed")?,
        dead: count(&row, "dead")?,
        messages: count(&messages, "messages")?,
        messages_without_event: count(&messages, "missing")?,
    })
}

impl AuditReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let t = &self.totals;
        let mut out = format!(
            "Audit of events created since {} (the last {})\n\n",
            format::timestamp(self.since),
            format::seconds((self.observed_at - self.since).num_seconds() as f64)
        );
        out.push_str(&format!(
            "  Events    {}: {} processed, {} waiting, {} failed awaiting retry, {} dead\n",
            format::count(t.events),
            format::count(t.processed),
            format::count(t.waiting),
            format::count(t.failed),
            format::count(t.dead)
        ));
        out.push_str(&format!(
            "  Messages  {}, {} without a message.created event\n",
            format::count(t.messages),
            format::count(t.messages_without_event)
        ));
        let stuck = t.waiting + t.failed + t.dead;
        if stuck == 0 && t.messages_without_event == 0 {
            out.push_str("\nNothing is stuck: every event of the window is processed.\n");
            return out;
        }

        out.push_str("\nUnprocessed by age\n");
        out.push_str(&format!(
            "  {:<12} {:>9} {:>9} {:>9}\n",
            "age", "waiting", "failed", "dead"
        ));
        for b in self
            .by_age
            .iter()
            .filter(|b| b.waiting + b.failed + b.dead > 0)
        {
            out.push_str(&format!(
                "  {:<12} {:>9} {:>9} {:>9}\n",
                b.age,
                format::count(b.waiting),
                format::count(b.failed),
                format::count(b.dead)
            ));
        }

        if !self.by_error.is_empty() {
            out.push_str("\nFailed and dead by error\n");
            out.push_str(&format!(
                "  {:>7}  {:<7} {:<11} error (example)\n",
                "events", "status", "newest"
            ));
            for g in &self.by_error {
                let example = if g.example == g.pattern || g.example.is_empty() {
                    String::new()
                } else {
                    format!("  (e.g. \"{}\")", g.example)
                };
                out.push_str(&format!(
                    "  {:>7}  {:<7} {:<11} {}{example}\n",
                    format::count(g.events),
                    g.status,
                    format::ago(g.latest_event_at, self.observed_at),
                    g.pattern
                ));
            }
        }

        if !self.by_attempts.is_empty() {
            out.push_str("\nFailed and dead by attempts\n");
            out.push_str(&format!(
                "  {:>8} {:>9} {:>9}\n",
                "attempts", "failed", "dead"
            ));
            for a in &self.by_attempts {
                out.push_str(&format!(
                    "  {:>8} {:>9} {:>9}\n",
                    a.attempts,
                    format::count(a.failed),
                    format::count(a.dead)
                ));
            }
        }

        if !self.oldest_orphans.is_empty() {
            out.push_str("\nOldest orphans\n");
            out.push_str(&orphans::table(&self.oldest_orphans));
        }

        if !self.next_commands.is_empty() {
            out.push_str("\nNext:\n");
            for (i, c) in self.next_commands.iter().enumerate() {
                out.push_str(&format!("  {}. {c}\n", i + 1));
            }
        }
        out
    }
}
