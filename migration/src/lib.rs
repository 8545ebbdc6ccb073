//! Schema migrations for the pipeline's PostgreSQL database.
//!
//! Every step has an `up` and a `down`. Tables are built with SeaQuery and
//! `DeriveIden` names; partial indexes, comments and views are plain SQL
//! because SeaQuery has no `CREATE VIEW` and index predicates read better as SQL.
//! [`migrate`] is what services and tests call: it serialises concurrent
//! callers with an advisory lock, because several `Migrator::up` at once on a
//! fresh database race on `CREATE TABLE` and fail.

// `MigrationTrait` declares `&SchemaManager` with an elided lifetime; an
// implementation must match it exactly (an explicit `<'_>` is rejected).
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_messages;
mod m20261126_000002_create_outbox;
mod m20261126_000003_create_setups;
mod m20261126_000004_create_reconciler_runs;
mod m20261126_000005_create_views;
mod m20261127_000006_plan_friendly_views;
mod m20261128_000007_create_listener_heartbeats;
mod m20261205_000008_events_worker_lock;
mod m20261205_000009_create_upstream_sweeps;
mod m20261205_000010_pending_events_function;
pub mod roles;

use sea_orm::DatabaseConnection;

/// The ordered list of migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_messages::Migration),
            Box::new(m20261126_000002_create_outbox::Migration),
            Box::new(m20261126_000003_create_setups::Migration),
            Box::new(m20261126_000004_create_reconciler_runs::Migration),
            Box::new(m20261126_000005_create_views::Migration),
            Box::new(m20261127_000006_plan_friendly_views::Migration),
            Box::new(m20261128_000007_create_listener_heartbeats::Migration),
            Box::new(m20261205_000008_events_worker_lock::Migration),
            Box::new(m20261205_000009_create_upstream_sweeps::Migration),
            Box::new(m20261205_000010_pending_events_function::Migration),
        ]
    }
}

/// Key of the session advisory lock held while migrating ("aplus-mig" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6170_6c75_732d_6d69;

/// Applies every pending migration, one caller at a time, then the
/// services' rights ([`roles::grant`]) when the roles exist.
///
/// The lock is a session lock taken on a connection set aside for the whole
/// run, so a second service starting at the same moment waits, then finds
/// nothing left to apply. Without the roles (`migration roles` not run yet)
/// the schema is migrated and a warning says what to run.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let pool = db.get_postgres_connection_pool();
    let mut lock_conn = pool
        .acquire()
        .await
        .map_err(|e| DbErr::Custom(format!("acquiring the migration lock connection: {e}")))?;
    use sea_orm::sqlx::Executor as _;
    lock_conn
        .execute(sea_orm::sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK_KEY))
        .await
        .map_err(|e| DbErr::Custom(format!("taking the migration lock: {e}")))?;
    let mut result = Migrator::up(db, None).await;
    if result.is_ok() {
        result = match roles::roles_exist(db).await {
            Ok(true) => roles::grant(db).await,
            Ok(false) => {
                tracing::warn!(
                    "the roles aplus_owner, aplus_bot, aplus_worker, aplus_reconciler do not all \
                     exist: no rights granted; run `migration roles` as an administrator"
                );
                Ok(())
            }
            Err(e) => Err(e),
        };
    }
    // Unlocking can only fail if the connection broke, and then the server has
    // already released the session lock.
    let _ = lock_conn
        .execute(sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK_KEY))
        .await;
    result
}

/// Runs a block of SQL statements separated by `;` as one unprepared batch.
pub(crate) async fn exec_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}
