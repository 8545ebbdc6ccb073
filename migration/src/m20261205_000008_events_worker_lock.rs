//! `events.worker_lock`: a column nobody writes, so the worker's role may
//! lock event rows without being able to change them.
//!
//! A consumer claims new events with `SELECT ... FOR UPDATE OF e SKIP
//! LOCKED`. PostgreSQL allows a row lock only to a role with `UPDATE` on at
//! least one column of the table, and the worker must never change an
//! event. Its role gets `UPDATE (worker_lock)` and nothing else on `events`
//! (see `roles.rs`): it can lock rows and, at worst, set this column, which
//! nothing reads. Adding a nullable column without a default rewrites nothing.

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_sql(
            manager,
            r#"
            ALTER TABLE events ADD COLUMN worker_lock boolean;
            COMMENT ON COLUMN events.worker_lock IS
              'Never written. Lets the worker role hold FOR UPDATE locks on events (PostgreSQL requires UPDATE on some column) without UPDATE on any column that carries data.';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_sql(manager, "ALTER TABLE events DROP COLUMN worker_lock").await
    }
}
