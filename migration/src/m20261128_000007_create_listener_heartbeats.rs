//! `listener_heartbeats`: when each LISTEN session last proved it consumes.
//!
//! A worker's listener NOTIFYs itself every couple of seconds and reads the
//! notification back on its LISTEN session. It records here, by that
//! session's `pid` and `backend_start`, when it last heard one. The server
//! cannot see from the session itself whether its client still reads (a
//! LISTEN session is idle either way), so the reconciler joins this table to
//! `pg_stat_activity`: a listener whose row is stale (or missing long after
//! it connected) is holding back the notification queue.

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ListenerHeartbeats {
    Table,
    Pid,
    BackendStart,
    ApplicationName,
    HeardAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ListenerHeartbeats::Table)
                    .col(
                        ColumnDef::new(ListenerHeartbeats::Pid)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ListenerHeartbeats::BackendStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ListenerHeartbeats::ApplicationName)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ListenerHeartbeats::HeardAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        exec_sql(
            manager,
            r#"
            COMMENT ON TABLE listener_heartbeats IS
              'One row per LISTEN session of a worker (pid and backend_start, as in pg_stat_activity): heard_at is when its listener last read its own heartbeat notification back. Written by the worker every heartbeat; a listener session whose heard_at is stale no longer consumes notifications and holds back the queue (reconciler diagnose, reconciler recover --stale-listeners).';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ListenerHeartbeats::Table).to_owned())
            .await
    }
}
