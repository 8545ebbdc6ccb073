//! Fault actions that need to land at a precise moment, or that act on the
//! database's view of the services: signalling a worker while it is inside
//! a batch transaction, terminating a LISTEN session, and waiting for it to
//! come back.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use sea_orm::sqlx;
use sea_orm::sqlx::postgres::PgConnection;

use crate::database::ChaosDb;
use crate::stack::Service;

/// A session caught inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTransaction {
    /// The server process of the session.
    pub backend_pid: i32,
    /// When its transaction began.
    pub xact_start: DateTime<Utc>,
}

const IN_TRANSACTION: &str = r#"
SELECT pid AS backend_pid, xact_start
FROM pg_stat_activity
WHERE application_name = $1 AND state = 'idle in transaction' AND xact_start IS NOT NULL
LIMIT 1
"#;

/// Watches `pg_stat_activity` closely until one of `service`'s consumer
/// sessions is between two statements of a transaction (a batch in
/// flight), then sends `signal` to the service. Returns the session it saw,
/// or `None` if none was caught within `within`.
///
/// The check and the signal are a millisecond apart, so the transaction may
/// have just ended when the signal lands: callers confirm from the server
/// (the server log, or [`same_transaction_open`]) rather than trust this.
///
/// # Errors
/// When the database cannot be asked.
pub async fn signal_in_transaction(
    db: &ChaosDb,
    service: &Service,
    signal: Signal,
    within: Duration,
) -> Result<Option<OpenTransaction>> {
    let mut conn = db.connect("aplus-chaos-faults").await?;
    let application = service.consumer_application_name();
    let started = Instant::now();
    while started.elapsed() < within {
        let open: Option<(i32, DateTime<Utc>)> = sqlx::query_as(IN_TRANSACTION)
            .bind(&application)
            .fetch_optional(&mut conn)
            .await
            .context("reading pg_stat_activity")?;
        if let Some((backend_pid, xact_start)) = open {
            let open = OpenTransaction {
                backend_pid,
                xact_start,
            };
            if service.process.signal(signal) {
                return Ok(Some(open));
            }
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(None)
}

/// Whether the transaction caught by [`signal_in_transaction`] is still open
/// (so the process was stopped inside it).
///
/// # Errors
/// When the database cannot be asked.
pub async fn same_transaction_open(db: &ChaosDb, open: OpenTransaction) -> Result<bool> {
    let mut conn = db.connect("aplus-chaos-faults").await?;
    let still: Option<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE pid = $1 AND xact_start = $2")
            .bind(open.backend_pid)
            .bind(open.xact_start)
            .fetch_optional(&mut conn)
            .await
            .context("reading pg_stat_activity")?;
    Ok(still.is_some())
}

/// Terminates `service`'s LISTEN session(s). Returns how many were ended
/// and the database time just before, to tell new sessions from old.
///
/// # Errors
/// When the database cannot be asked.
pub async fn terminate_listener(db: &ChaosDb, service: &Service) -> Result<(i64, DateTime<Utc>)> {
    let mut conn = db.connect("aplus-chaos-faults").await?;
    terminate_listener_on(&mut conn, &service.listener_application_name()).await
}

async fn terminate_listener_on(
    conn: &mut PgConnection,
    application: &str,
) -> Result<(i64, DateTime<Utc>)> {
    // Two steps on purpose: in one statement the planner may evaluate
    // `pg_terminate_backend` before the name filter, ending every session.
    let (pids, at): (Vec<i32>, DateTime<Utc>) = sqlx::query_as(
        "SELECT coalesce(array_agg(pid), '{}'), clock_timestamp() FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(application)
    .fetch_one(&mut *conn)
    .await
    .context("finding the LISTEN session")?;
    let ended = terminate(conn, pids)
        .await
        .context("terminating the LISTEN session")?;
    Ok((ended, at))
}

/// Ends these server sessions; returns how many the server ended.
async fn terminate(conn: &mut PgConnection, pids: Vec<i32>) -> Result<i64, sqlx::Error> {
    let mut ended = 0;
    for pid in pids {
        let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut *conn)
            .await?;
        ended += i64::from(done);
    }
    Ok(ended)
}

/// Waits until `service` has a LISTEN session that began after `after`.
/// Returns how long that took, or `None` after `timeout`.
///
/// # Errors
/// When the database cannot be asked.
pub async fn wait_listener_back(
    db: &ChaosDb,
    service: &Service,
    after: DateTime<Utc>,
    timeout: Duration,
) -> Result<Option<Duration>> {
    let mut conn = db.connect("aplus-chaos-faults").await?;
    let application = service.listener_application_name();
    let started = Instant::now();
    while started.elapsed() < timeout {
        let back: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND backend_start > $2 AND query = 'LISTEN \"events\"'",
        )
        .bind(&application)
        .bind(after)
        .fetch_one(&mut conn)
        .await
        .context("reading pg_stat_activity")?;
        if back > 0 {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Connections held to take the server's connection slots away from the
/// services (F13).
#[derive(Debug, Default)]
pub struct SlotHog {
    held: Vec<PgConnection>,
}

/// `application_name` of the services' sessions (never the suite's own).
const SERVICE_SESSIONS: &str =
    "application_name LIKE 'aplus-%' AND application_name NOT LIKE 'aplus-chaos-%'";

impl SlotHog {
    /// Opens connections until the server refuses one. Returns how many it holds.
    pub async fn fill(&mut self, db: &ChaosDb) -> usize {
        while let Ok(conn) = db.connect("aplus-chaos-hog").await {
            self.held.push(conn);
        }
        self.held.len()
    }

    /// Ends every session of the services; their slots become free for
    /// [`SlotHog::fill`]. Returns how many were ended.
    ///
    /// # Errors
    /// When the hog holds no connection, or the database cannot be asked.
    pub async fn end_service_sessions(&mut self) -> Result<i64> {
        let conn = self
            .held
            .first_mut()
            .context("the hog holds no connection")?;
        // Two steps, as in `terminate_listener_on`: the filter must run first.
        let pids: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT pid FROM pg_stat_activity WHERE {SERVICE_SESSIONS}"
        )))
        .fetch_all(&mut *conn)
        .await
        .context("finding the services' sessions")?;
        terminate(conn, pids)
            .await
            .context("ending a service session")
    }

    /// Sessions the services hold now.
    ///
    /// # Errors
    /// When the hog holds no connection, or the database cannot be asked.
    pub async fn service_sessions(&mut self) -> Result<i64> {
        let conn = self
            .held
            .first_mut()
            .context("the hog holds no connection")?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM pg_stat_activity WHERE {SERVICE_SESSIONS}"
        )))
        .fetch_one(conn)
        .await
        .context("counting the services' sessions")
    }

    /// How many connections it holds.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
