//! `reconciler_runs`: one row per repair pass, with its counts and what it saw.

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconcilerRuns {
    Table,
    Id,
    Instance,
    StartedAt,
    FinishedAt,
    MissingEventsCreated,
    OrphansRefired,
    RetriesDue,
    DeadEvents,
    PrunedEvents,
    PrunedInbox,
    Backlog,
    Ratio,
    ProcessingRate,
    MessagesScannedThrough,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let count = |c: ReconcilerRuns| {
            ColumnDef::new(c)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(ReconcilerRuns::Table)
                    .col(
                        ColumnDef::new(ReconcilerRuns::Id)
                            .big_integer()
                            .not_null()
                            .primary_key()
                            .extra("GENERATED ALWAYS AS IDENTITY"),
                    )
                    .col(ColumnDef::new(ReconcilerRuns::Instance).text().not_null())
                    .col(
                        ColumnDef::new(ReconcilerRuns::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReconcilerRuns::FinishedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .col(count(ReconcilerRuns::MissingEventsCreated))
                    .col(count(ReconcilerRuns::OrphansRefired))
                    .col(count(ReconcilerRuns::RetriesDue))
                    .col(count(ReconcilerRuns::DeadEvents))
                    .col(count(ReconcilerRuns::PrunedEvents))
                    .col(count(ReconcilerRuns::PrunedInbox))
                    .col(count(ReconcilerRuns::Backlog))
                    .col(ColumnDef::new(ReconcilerRuns::Ratio).decimal().null())
                    .col(
                        ColumnDef::new(ReconcilerRuns::ProcessingRate)
                            .decimal()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ReconcilerRuns::MessagesScannedThrough)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ReconcilerRuns::Error).text().null())
                    .to_owned(),
            )
            .await?;
        exec_sql(
            manager,
            r#"
            CREATE INDEX reconciler_runs_finished_at ON reconciler_runs (finished_at);
            COMMENT ON TABLE reconciler_runs IS
              'One row per reconciler pass: what it repaired, what it pruned, and the ratio, rate and backlog it saw. messages_scanned_through is the cursor the next pass starts from.';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReconcilerRuns::Table).to_owned())
            .await
    }
}
