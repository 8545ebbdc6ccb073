//! The start-up check that each database connection is a session of its own.
//!
//! The pipeline keeps state in its sessions: the worker's LISTEN, the
//! reconciler's session advisory lock, and the settings the lease depends on
//! (`idle_in_transaction_session_timeout`, `statement_timeout`, the keepalive
//! settings). A connection pooler in transaction or statement mode
//! (PgBouncer's `pool_mode = transaction`) hands a client's server session to
//! other clients between its transactions: notifications go to whoever holds
//! the session, the lock stays with a session nobody releases, and a setting
//! made in one transaction is gone in the next. Nothing fails loudly: the
//! lease is lost silently. So each service checks at start, and exits with a
//! message saying what to change.
//!
//! The check takes two connections, `a` and `b`, the way the service's pools
//! take theirs:
//! 1. `a` reads its backend pid and the lease setting (which must be what the
//!    pool asked for: a pooler that drops the settings is caught here), and
//!    sets a session-level marker;
//! 2. `b` opens a transaction and reads its backend pid, holding its server
//!    session: if that is `a`'s, `a`'s session was handed to another client;
//! 3. `a`, while `b`'s transaction is open, reads its pid and marker again:
//!    a different pid or a missing marker means its statements do not share
//!    a session.
//!
//! Directly on PostgreSQL, or through a pooler in session mode, every answer
//! agrees. PgBouncer in transaction mode hands the most recently used server
//! session out first, so step 2 already shows it.

use std::future::Future;
use std::time::Duration;

use sea_orm::sqlx::{self, Connection as _, PgPool};

use crate::config::DatabaseArgs;
use crate::db::{PoolSettings, lazy_pool};

/// How long one check may take before it counts as unanswered.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum SessionCheckError {
    /// The sessions are shared or lose their settings: the service must not run.
    #[error(
        "the database connection is not a session of its own: {0}. LISTEN, session advisory \
         locks and the session settings the lease depends on need one; a connection pooler in \
         transaction or statement mode (PgBouncer `pool_mode = transaction`) breaks them. \
         Point DATABASE_URL at PostgreSQL itself, or at a PgBouncer pool with \
         `pool_mode = session`"
    )]
    Shared(String),
    /// The database did not answer; the check runs again later.
    #[error("the database did not answer the session check")]
    Unanswered(#[source] sqlx::Error),
    /// The check took longer than [`CHECK_TIMEOUT`]; it runs again later.
    #[error("the session check did not finish within {0:?}")]
    TimedOut(Duration),
}

/// Checks once that connections made with `settings` are sessions of their
/// own that keep their settings.
pub async fn check_sessions(
    args: &DatabaseArgs,
    settings: &PoolSettings,
) -> Result<(), SessionCheckError> {
    let mut settings = settings.clone();
    settings.max_connections = 2;
    // A database that is down must not hold the service's start for long:
    // the check is retried in the background.
    settings.acquire_timeout = settings.acquire_timeout.min(Duration::from_secs(2));
    settings.application_name = format!("{} session-check", settings.application_name);
    let pool = lazy_pool(args, &settings).map_err(SessionCheckError::Unanswered)?;
    let result = tokio::time::timeout(CHECK_TIMEOUT, probe(&pool, &settings)).await;
    pool.close().await;
    match result {
        Ok(result) => result,
        Err(_) => Err(SessionCheckError::TimedOut(CHECK_TIMEOUT)),
    }
}

/// A failed statement of the check: a prepared statement of this connection
/// that is already there, or gone, shows a server session shared with
/// another connection (sqlx prepares each statement once per connection).
fn unanswered(error: sqlx::Error) -> SessionCheckError {
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    match code.as_deref() {
        // duplicate_prepared_statement, invalid_sql_statement_name
        Some("42P05") | Some("26000") => SessionCheckError::Shared(format!(
            "the prepared statements of one connection are not the same from one statement to \
             the next ({error})"
        )),
        _ => SessionCheckError::Unanswered(error),
    }
}

async fn probe(pool: &PgPool, settings: &PoolSettings) -> Result<(), SessionCheckError> {
    let mut a = pool.acquire().await.map_err(unanswered)?;
    let mut b = pool.acquire().await.map_err(unanswered)?;
    let marker = format!("{:x}", std::process::id() ^ rand_bits());

    let (pid_a, lease): (i32, String) = sqlx::query_as(
        "SELECT pg_backend_pid(), \
         (SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout')",
    )
    .fetch_one(&mut *a)
    .await
    .map_err(unanswered)?;
    if let Some(expected) = settings.idle_in_transaction_timeout {
        let expected = expected.as_millis().to_string();
        if lease != expected {
            return Err(SessionCheckError::Shared(format!(
                "idle_in_transaction_session_timeout is {lease} ms, not the {expected} ms this \
                 connection set: something between the service and the server drops session \
                 settings"
            )));
        }
    }
    sqlx::query("SELECT set_config('aplus.session_check', $1, false)")
        .bind(&marker)
        .execute(&mut *a)
        .await
        .map_err(unanswered)?;

    let mut held = b.begin().await.map_err(unanswered)?;
    let (pid_b,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *held)
        .await
        .map_err(unanswered)?;
    if pid_b == pid_a {
        return Err(SessionCheckError::Shared(format!(
            "another connection's transaction ran on this connection's server session \
             (backend pid {pid_a})"
        )));
    }
    let (pid_again, seen): (i32, Option<String>) =
        sqlx::query_as("SELECT pg_backend_pid(), current_setting('aplus.session_check', true)")
            .fetch_one(&mut *a)
            .await
            .map_err(unanswered)?;
    let _ = held.rollback().await;
    if pid_again != pid_a {
        return Err(SessionCheckError::Shared(format!(
            "two statements of one connection ran on different server sessions (backend pids \
             {pid_a} and {pid_again})"
        )));
    }
    if seen.as_deref() != Some(marker.as_str()) {
        return Err(SessionCheckError::Shared(
            "a setting made by one statement was gone at the next".to_owned(),
        ));
    }
    Ok(())
}

/// A few bits that differ between checks, so markers of two processes differ.
fn rand_bits() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Runs `service` unless its database sessions turn out to be shared.
///
/// The check runs once before the service starts, so a misconfigured pooler
/// stops it before it writes anything. When the database does not answer
/// yet (the services start while PostgreSQL is down), the service starts
/// and the check is retried in the background until it has an answer; a
/// shared session then stops the service (the future is dropped) with the
/// same error.
pub async fn run_checked<F: Future>(
    args: &DatabaseArgs,
    settings: &PoolSettings,
    service: F,
) -> Result<F::Output, SessionCheckError> {
    match check_sessions(args, settings).await {
        Ok(()) => {
            tracing::debug!("database sessions checked: each connection has its own");
            return Ok(service.await);
        }
        Err(error @ SessionCheckError::Shared(_)) => return Err(error),
        Err(error) => {
            tracing::info!(error = %crate::telemetry::error_chain(&error), "the database sessions are checked once the database answers");
        }
    }
    let retry = async {
        let mut delay = Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            match check_sessions(args, settings).await {
                Ok(()) => {
                    tracing::debug!("database sessions checked: each connection has its own");
                    return Ok(());
                }
                Err(error @ SessionCheckError::Shared(_)) => return Err(error),
                Err(_) => delay = (delay * 2).min(Duration::from_secs(30)),
            }
        }
    };
    tokio::pin!(service);
    tokio::select! {
        output = &mut service => Ok(output),
        Err(error) = retry => Err(error),
    }
}
