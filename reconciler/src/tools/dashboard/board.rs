//! What the dashboard shows beyond the diagnosis: the last 24 hours in
//! half-hour buckets, the latest trading day's setups with the messages
//! behind them, and the dead events.
//!
//! Every query is bounded: the history reads `reconciler_runs` (one row a
//! pass, indexed by `finished_at`) and the last day of `inbox` through its
//! `processed_at`; the setups read one trading day through
//! `setups_current_by_day`. The dashboard caches the result for a few
//! seconds, so page loads cannot add load to the database.

use chrono::{DateTime, NaiveDate, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;

use crate::error::Result;
use crate::sql::{count, float};

/// Buckets in the history: 48 half hours.
pub const BUCKETS: usize = 48;
/// Seconds per bucket.
pub const BUCKET_SECS: i64 = 1800;

/// One half hour of history. `None` where nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Events per message, last hour, as the passes saw it (mean).
    pub ratio: Option<f64>,
    /// Processed share of the last hour's events, as the passes saw it (mean).
    pub rate: Option<f64>,
    /// Backlog at the passes (max).
    pub backlog: Option<f64>,
    /// Events processed per minute.
    pub processed_per_min: Option<f64>,
    /// Commit-to-processed latency quantiles, seconds.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

/// The last 24 hours, oldest bucket first, ending at `until`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub until: DateTime<Utc>,
    pub buckets: Vec<Bucket>,
}

/// One setup of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupRow {
    pub ticker: String,
    pub label: String,
    pub direction: String,
    pub trigger_low: String,
    pub trigger_high: String,
    pub targets: String,
    pub bias: Option<String>,
    pub message_id: i64,
}

/// One A+ message of the day and what became of its parse.
#[derive(Debug, Clone, PartialEq)]
pub struct DayMessage {
    pub message_id: i64,
    pub sent_at: DateTime<Utc>,
    pub author: String,
    /// `current`, `superseded`, `duplicate` or `retracted`.
    pub status: String,
    pub superseded_by: Option<i64>,
    pub setup_count: u64,
    /// The message's first line (user input: escape it).
    pub excerpt: String,
    /// The message, cut at 2,000 characters (user input: escape it).
    pub content: String,
}

/// The latest trading day with a standing message, its setups and messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Day {
    pub trading_day: Option<NaiveDate>,
    pub setups: Vec<SetupRow>,
    pub messages: Vec<DayMessage>,
}

/// A dead event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadEvent {
    pub event_id: String,
    pub message_id: Option<i64>,
    pub kind: String,
    pub attempts: u64,
    pub first_seen_secs: f64,
    pub last_error: Option<String>,
}

/// Dead events listed at most.
pub const DEAD_LISTED: i64 = 20;

/// The 24-hour history.
pub async fn history<C: ConnectionTrait>(db: &C) -> Result<History> {
    let bucket_of = format!(
        "least({last}, greatest(0, floor(extract(epoch FROM (t - (now() - interval '24 hours'))) / {BUCKET_SECS})::int))",
        last = BUCKETS - 1
    );
    let runs = db
        .query_all_raw(stmt(
            &format!(
                "SELECT b, avg(ratio)::float8 AS ratio, avg(processing_rate)::float8 AS rate, \
                        max(backlog)::float8 AS backlog \
                 FROM (SELECT {} AS b, ratio::float8 AS ratio, processing_rate::float8 AS processing_rate, backlog \
                       FROM (SELECT finished_at AS t, ratio, processing_rate, backlog FROM reconciler_runs \
                             WHERE finished_at > now() - interval '24 hours') r) x \
                 GROUP BY b",
                bucket_of
            ),
            [],
        ))
        .await?;
    let processed = db
        .query_all_raw(stmt(
            &format!(
                "SELECT b, count(*) AS n, \
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY latency)::float8 AS p50, \
                        percentile_cont(0.95) WITHIN GROUP (ORDER BY latency)::float8 AS p95 \
                 FROM (SELECT {} AS b, latency \
                       FROM (SELECT i.processed_at AS t, \
                                    extract(epoch FROM i.processed_at - e.created_at)::float8 AS latency \
                             FROM inbox i JOIN events e ON e.id = i.event_id \
                             WHERE i.status = 'processed' AND i.processed_at > now() - interval '24 hours') p) x \
                 GROUP BY b",
                bucket_of
            ),
            [],
        ))
        .await?;
    let until: DateTime<Utc> = db
        .query_one_raw(stmt("SELECT now() AS now", []))
        .await?
        .map(|r| r.try_get_by("now"))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let mut buckets = vec![Bucket::default(); BUCKETS];
    let index = |row: &sea_orm::QueryResult| -> Result<usize> {
        let b: i32 = row.try_get_by("b")?;
        Ok((b.max(0) as usize).min(BUCKETS - 1))
    };
    for row in &runs {
        let bucket = &mut buckets[index(row)?];
        bucket.ratio = float(row, "ratio")?;
        bucket.rate = float(row, "rate")?;
        bucket.backlog = float(row, "backlog")?;
    }
    for row in &processed {
        let bucket = &mut buckets[index(row)?];
        bucket.processed_per_min = Some(count(row, "n")? as f64 / (BUCKET_SECS as f64 / 60.0));
        bucket.p50 = float(row, "p50")?;
        bucket.p95 = float(row, "p95")?;
    }
    Ok(History { until, buckets })
}

/// The latest trading day (up to tomorrow) with a standing A+ message.
pub async fn day<C: ConnectionTrait>(db: &C) -> Result<Day> {
    let day: Option<NaiveDate> = db
        .query_one_raw(stmt(
            "SELECT max(trading_day) AS day FROM message_parses \
             WHERE is_aplus AND status = 'current' AND trading_day <= current_date + 1",
            [],
        ))
        .await?
        .map(|r| r.try_get_by::<Option<NaiveDate>, _>("day"))
        .transpose()?
        .flatten();
    let Some(trading_day) = day else {
        return Ok(Day::default());
    };
    let setups = db
        .query_all_raw(stmt(
            "SELECT s.ticker, s.label, s.direction, s.trigger_low::text AS low, \
                    s.trigger_high::text AS high, array_to_string(s.targets, ', ') AS targets, \
                    b.bias, s.message_id \
             FROM setups s \
             LEFT JOIN ticker_bias b ON b.message_id = s.message_id AND b.ticker = s.ticker \
             WHERE s.trading_day = $1 AND s.is_current \
             ORDER BY s.ticker, s.setup_index",
            [trading_day.into()],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok(SetupRow {
                ticker: r.try_get_by("ticker")?,
                label: r.try_get_by("label")?,
                direction: r.try_get_by("direction")?,
                trigger_low: r.try_get_by("low")?,
                trigger_high: r.try_get_by("high")?,
                targets: r.try_get_by("targets")?,
                bias: r.try_get_by("bias")?,
                message_id: r.try_get_by("message_id")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let messages = db
        .query_all_raw(stmt(
            "SELECT p.message_id, m.sent_at, m.author_name, p.status, p.superseded_by, \
                    p.setup_count::bigint AS setup_count, \
                    left(split_part(m.content, E'\\n', 1), 160) AS excerpt, \
                    left(m.content, 2000) AS content \
             FROM message_parses p JOIN messages m ON m.id = p.message_id \
             WHERE p.trading_day = $1 AND p.is_aplus \
             ORDER BY m.sent_at DESC LIMIT 20",
            [trading_day.into()],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok(DayMessage {
                message_id: r.try_get_by("message_id")?,
                sent_at: r.try_get_by("sent_at")?,
                author: r.try_get_by("author_name")?,
                status: r.try_get_by("status")?,
                superseded_by: r.try_get_by("superseded_by")?,
                setup_count: count(r, "setup_count")?,
                excerpt: r.try_get_by("excerpt")?,
                content: r.try_get_by("content")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Day {
        trading_day: Some(trading_day),
        setups,
        messages,
    })
}

/// The most recent dead events.
pub async fn dead<C: ConnectionTrait>(db: &C) -> Result<Vec<DeadEvent>> {
    db.query_all_raw(stmt(
        "SELECT i.event_id::text AS event_id, e.message_id, e.kind, i.attempts::bigint AS attempts, \
                extract(epoch FROM now() - i.first_seen_at)::float8 AS first_seen, i.last_error \
         FROM inbox i LEFT JOIN events e ON e.id = i.event_id \
         WHERE i.status = 'dead' ORDER BY i.first_seen_at DESC LIMIT $1",
        [DEAD_LISTED.into()],
    ))
    .await?
    .iter()
    .map(|r| {
        Ok(DeadEvent {
            event_id: r.try_get_by("event_id")?,
            message_id: r.try_get_by("message_id")?,
            kind: r.try_get_by::<Option<String>, _>("kind")?.unwrap_or_default(),
            attempts: count(r, "attempts")?,
            first_seen_secs: float(r, "first_seen")?.unwrap_or(0.0),
            last_error: r.try_get_by("last_error")?,
        })
    })
    .collect()
}

/// The `recover` command that replays a dead event first seen
/// `first_seen_secs` ago (and any dead event newer than it).
pub fn recover_command(first_seen_secs: f64) -> String {
    let minutes = (first_seen_secs / 60.0).ceil().max(1.0) as u64 + 1;
    format!("reconciler recover --dead --since {minutes}m")
}
