//! LISTEN sessions that stopped consuming, and the notification queue they
//! hold back.
//!
//! PostgreSQL keeps every notification until its slowest listener has read
//! it; when the queue (8 GB) is full, every NOTIFY fails. A listener whose
//! client host died, whose process is stopped, or which no longer reads, is
//! such a listener for as long as its session lives. Server-side keepalives
//! (`service::db::keepalive_settings`) end a dead host's sessions within
//! seconds; what they cannot see is a client whose kernel still answers but
//! whose program no longer reads.
//!
//! The server cannot tell either from the session itself: a LISTEN session
//! is idle whether or not its client reads. Each worker's listener therefore
//! records when it last read its own heartbeat back (`listener_heartbeats`,
//! keyed by the session's `pid` and `backend_start`). A session of this
//! project's listeners (`application_name` starting with
//! [`LISTENER_APPLICATION_PREFIX`], last statement `LISTEN "events"`, in this
//! database) whose last heartbeat, or connect when it has none, is older
//! than the stale bound has stopped consuming. Only such sessions are ever
//! ended: the conditions are checked again in the statement that ends them,
//! so a session of anyone else, or a pid reused since it was listed, is
//! never touched. A worker whose listener is ended reconnects and catches up;
//! notifications are only hints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::error::Result;
use crate::format;
use crate::sql::{float, interval_secs, one};

pub use outbox::listener::LISTENER_APPLICATION_PREFIX;

/// The listeners this project runs, with how long each has been silent.
/// `$1` is the name prefix, `$2` the stale bound in seconds.
const STALE_LISTENERS: &str = "\
    SELECT a.pid, a.application_name, a.backend_start, host(a.client_addr) AS client_addr, \
           h.heard_at, \
           extract(epoch FROM now() - coalesce(h.heard_at, a.backend_start))::float8 AS silent \
    FROM pg_stat_activity a \
    LEFT JOIN listener_heartbeats h ON h.pid = a.pid AND h.backend_start = a.backend_start \
    WHERE a.datname = current_database() \
      AND a.backend_type = 'client backend' \
      AND a.pid <> pg_backend_pid() \
      AND starts_with(a.application_name, $1) \
      AND a.query = 'LISTEN \"events\"' \
      AND coalesce(h.heard_at, a.backend_start) < now() - make_interval(secs => $2)";

/// The same sessions, ended. Listing and ending are one statement, so the
/// conditions hold at the moment of ending: a session that heard a heartbeat
/// since an earlier listing, or a pid reused since, is not touched. `OFFSET
/// 0` keeps the filter below the call, so nothing else is ever signalled.
fn end_stale_sql() -> String {
    format!("SELECT s.*, pg_terminate_backend(s.pid) AS ended FROM ({STALE_LISTENERS} OFFSET 0) s")
}

/// A LISTEN session of this project that has not consumed for too long.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleListener {
    pub pid: i32,
    pub application_name: String,
    pub backend_start: Option<DateTime<Utc>>,
    /// The client's address; `None` on a Unix socket.
    pub client_addr: Option<String>,
    /// When its listener last read a heartbeat back; `None`: never recorded.
    pub heard_at: Option<DateTime<Utc>>,
    /// Seconds since then (or since it connected).
    pub silent_secs: f64,
}

fn rows_to_listeners(rows: &[sea_orm::QueryResult]) -> Result<Vec<StaleListener>> {
    rows.iter()
        .map(|r| {
            Ok(StaleListener {
                pid: r.try_get_by("pid")?,
                application_name: r
                    .try_get_by::<Option<String>, _>("application_name")?
                    .unwrap_or_default(),
                backend_start: r.try_get_by("backend_start")?,
                client_addr: r.try_get_by("client_addr")?,
                heard_at: r.try_get_by("heard_at")?,
                silent_secs: float(r, "silent")?.unwrap_or(0.0),
            })
        })
        .collect()
}

/// `pg_notification_queue_usage()`: the share of the cluster's notification
/// queue in use, 0 to 1. Only a listener that does not read keeps it above
/// zero for long.
pub async fn queue_usage<C: ConnectionTrait>(db: &C) -> Result<f64> {
    let row = one(
        db.query_one_raw(stmt("SELECT pg_notification_queue_usage() AS usage", []))
            .await?,
        "the notification queue usage",
    )?;
    Ok(float(&row, "usage")?.unwrap_or(0.0))
}

/// This project's LISTEN sessions silent for longer than `stale_after`,
/// longest silent first.
pub async fn stale<C: ConnectionTrait>(
    db: &C,
    stale_after: Duration,
) -> Result<Vec<StaleListener>> {
    let rows = db
        .query_all_raw(stmt(
            &format!("{STALE_LISTENERS} ORDER BY silent DESC, a.pid"),
            [
                LISTENER_APPLICATION_PREFIX.into(),
                interval_secs(stale_after),
            ],
        ))
        .await?;
    rows_to_listeners(&rows)
}

/// Ends this project's LISTEN sessions silent for longer than `stale_after`
/// and returns them (those the server could signal).
pub async fn end_stale<C: ConnectionTrait>(
    db: &C,
    stale_after: Duration,
) -> Result<Vec<StaleListener>> {
    let rows = db
        .query_all_raw(stmt(
            &end_stale_sql(),
            [
                LISTENER_APPLICATION_PREFIX.into(),
                interval_secs(stale_after),
            ],
        ))
        .await?;
    let ended: Vec<sea_orm::QueryResult> = rows
        .into_iter()
        .filter(|r| r.try_get_by::<Option<bool>, _>("ended").ok().flatten() == Some(true))
        .collect();
    let listeners = rows_to_listeners(&ended)?;
    for l in &listeners {
        tracing::warn!(
            pid = l.pid,
            application_name = %l.application_name,
            client_addr = l.client_addr.as_deref().unwrap_or("local"),
            silent_secs = l.silent_secs,
            "ended a LISTEN session that stopped consuming notifications"
        );
    }
    metrics::counter!("aplus_reconciler_stale_listeners_ended_total")
        .increment(listeners.len() as u64);
    Ok(listeners)
}

/// Deletes heartbeat rows of sessions that are gone and were silent past
/// `stale_after` (a live listener rewrites its row every heartbeat anyway).
pub async fn prune_heartbeats<C: ConnectionTrait>(db: &C, stale_after: Duration) -> Result<u64> {
    let result = db
        .execute_raw(stmt(
            "DELETE FROM listener_heartbeats h \
             WHERE h.heard_at < now() - make_interval(secs => $1) \
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
                               WHERE a.pid = h.pid AND a.backend_start = h.backend_start)",
            [interval_secs(stale_after)],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// What `recover --stale-listeners` found and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleListenerReport {
    pub dry_run: bool,
    /// The silence past which a listener counted as stale.
    pub stale_after_secs: f64,
    /// The sessions found (dry run) or ended.
    pub listeners: Vec<StaleListener>,
    /// `pg_notification_queue_usage()` before.
    pub queue_usage: f64,
}

/// Runs `recover --stale-listeners`.
pub async fn recover<C: ConnectionTrait>(
    db: &C,
    stale_after: Duration,
    dry_run: bool,
) -> Result<StaleListenerReport> {
    let queue_usage = queue_usage(db).await?;
    let listeners = if dry_run {
        stale(db, stale_after).await?
    } else {
        end_stale(db, stale_after).await?
    };
    Ok(StaleListenerReport {
        dry_run,
        stale_after_secs: stale_after.as_secs_f64(),
        listeners,
        queue_usage,
    })
}

/// One listener on one line: `pid 4242 (aplus-worker-listener w1, 10.0.0.7), silent 3 min`.
pub fn describe(l: &StaleListener) -> String {
    format!(
        "pid {} ({}{}), silent {}",
        l.pid,
        l.application_name,
        l.client_addr
            .as_deref()
            .map(|a| format!(", {a}"))
            .unwrap_or_default(),
        format::seconds(l.silent_secs)
    )
}

impl StaleListenerReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let n = self.listeners.len() as u64;
        let queue = format!(
            "The notification queue is {} used.",
            format::percent(self.queue_usage)
        );
        if n == 0 {
            out.push_str(&format!(
                "No worker LISTEN session has been silent for more than {}: nothing to end. {queue}\n",
                format::seconds(self.stale_after_secs)
            ));
            return out;
        }
        let what = format::counted(n, "LISTEN session", "LISTEN sessions");
        out.push_str(&if self.dry_run {
            format!("Dry run: would end {what} silent for more than {}. Nothing was changed. {queue}\n", format::seconds(self.stale_after_secs))
        } else {
            format!("Ended {what} silent for more than {}; their workers reconnect and catch up. {queue}\n", format::seconds(self.stale_after_secs))
        });
        for l in &self.listeners {
            out.push_str(&format!("  {}\n", describe(l)));
        }
        out.push_str(if self.dry_run {
            "\nNext: run the same command without --dry-run.\n"
        } else {
            "\nNext: check with `reconciler diagnose` in a few seconds.\n"
        });
        out
    }
}
