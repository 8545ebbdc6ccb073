//! The single-instance lock: a PostgreSQL session advisory lock held on a
//! connection set aside for the whole pass.
//!
//! A pass commits page by page, so a transaction-scoped lock would have to
//! keep one transaction open for its whole length, which the services'
//! `idle_in_transaction_session_timeout` forbids. A session lock on a
//! dedicated connection spans every page; if the process dies, the server
//! closes the session and the lock goes with it.

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{Postgres, Row as _};

use crate::error::Result;

/// Key pair of the reconciler's lock.
fn keys() -> (i32, i32) {
    (outbox::LOCK_CLASS, outbox::JobLock::Reconciler as i32)
}

/// Proof that this process holds the reconciler lock. Release it with
/// [`PassLock::release`]; dropped without release (a cancelled future), it
/// closes its connection instead of returning it to the pool, so the server
/// drops the lock and no pooled connection keeps holding it.
#[derive(Debug)]
pub struct PassLock {
    conn: Option<PoolConnection<Postgres>>,
}

impl PassLock {
    /// Takes the lock if no other session holds it. `Ok(None)` means another
    /// reconciler is running.
    pub async fn try_acquire(db: &DatabaseConnection) -> Result<Option<Self>> {
        let mut conn = db.get_postgres_connection_pool().acquire().await?;
        let (class, key) = keys();
        let row = sea_orm::sqlx::query("SELECT pg_try_advisory_lock($1, $2) AS locked")
            .bind(class)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        let locked: bool = row.try_get("locked")?;
        Ok(locked.then_some(Self { conn: Some(conn) }))
    }

    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let (class, key) = keys();
        let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(class)
            .bind(key)
            .execute(&mut *conn)
            .await;
        if let Err(error) = unlocked {
            // The connection is broken, and with it the session and its lock;
            // closing it keeps a doubtful connection out of the pool.
            tracing::debug!(%error, "advisory unlock failed; closing the lock connection");
            drop(conn.detach());
        }
    }
}

impl Drop for PassLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not released: close the socket so the server ends the session
            // and its lock, rather than pooling a connection that still holds it.
            drop(conn.detach());
        }
    }
}
