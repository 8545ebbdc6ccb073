//! The outbox (`events`), the consumers' `inbox`, and `outbox_watermark`.
//!
//! `events.txid` records the writing transaction's id. Consumers scan events
//! from a watermark of transaction ids, which is exact where a timestamp is
//! not: an event may commit after a younger one, but no transaction below
//! `pg_snapshot_xmin(pg_current_snapshot())` is still running.

use sea_orm_migration::prelude::*;

use crate::{exec_sql, m20261126_000001_create_messages::Messages};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    MessageId,
    Kind,
    Payload,
    CreatedAt,
    Txid,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    EventId,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    FirstSeenAt,
    ProcessedAt,
    Worker,
}

#[derive(DeriveIden)]
enum OutboxWatermark {
    Table,
    Id,
    ProcessedThrough,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(ColumnDef::new(Events::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Events::MessageId).big_integer().not_null())
                    .col(ColumnDef::new(Events::Kind).text().not_null().check(
                        Expr::col(Events::Kind).is_in([
                            "message.created",
                            "message.updated",
                            "message.deleted",
                        ]),
                    ))
                    .col(ColumnDef::new(Events::Payload).json_binary().not_null())
                    .col(
                        ColumnDef::new(Events::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .col(
                        ColumnDef::new(Events::Txid)
                            .custom(Alias::new("xid8"))
                            .not_null()
                            .default(Expr::cust("pg_current_xact_id()")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("events_message_id_fkey")
                            .from(Events::Table, Events::MessageId)
                            .to(Messages::Table, Messages::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .col(
                        ColumnDef::new(Inbox::EventId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Inbox::Status)
                            .text()
                            .not_null()
                            .check(Expr::col(Inbox::Status).is_in(["processed", "failed", "dead"])),
                    )
                    .col(
                        ColumnDef::new(Inbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Inbox::LastError).text().null())
                    .col(
                        ColumnDef::new(Inbox::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Inbox::FirstSeenAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .col(
                        ColumnDef::new(Inbox::ProcessedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Inbox::Worker).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("inbox_event_id_fkey")
                            .from(Inbox::Table, Inbox::EventId)
                            .to(Events::Table, Events::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OutboxWatermark::Table)
                    .col(
                        ColumnDef::new(OutboxWatermark::Id)
                            .boolean()
                            .not_null()
                            .primary_key()
                            .default(true)
                            .check(Expr::col(OutboxWatermark::Id).eq(true)),
                    )
                    .col(
                        ColumnDef::new(OutboxWatermark::ProcessedThrough)
                            .custom(Alias::new("xid8"))
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxWatermark::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;

        exec_sql(
            manager,
            r#"
            -- Invariant: one message.created event per message, whatever races.
            CREATE UNIQUE INDEX events_one_created_per_message
              ON events (message_id) WHERE kind = 'message.created';
            CREATE INDEX events_message_id ON events (message_id);
            -- The consumers' scan order and the watermark.
            CREATE INDEX events_txid ON events (txid, id);
            -- Time windows of the views and retention pruning.
            CREATE INDEX events_created_at ON events (created_at) INCLUDE (kind);

            -- Retries due: a small partial index, never the whole history.
            CREATE INDEX inbox_failed_next_attempt_at
              ON inbox (next_attempt_at) WHERE status = 'failed';
            CREATE INDEX inbox_dead ON inbox (first_seen_at) WHERE status = 'dead';
            CREATE INDEX inbox_processed_at ON inbox (processed_at);

            -- '0' means "scan from the beginning".
            INSERT INTO outbox_watermark (id, processed_through) VALUES (true, '0');

            COMMENT ON TABLE events IS
              'The outbox: insert-only. The bot writes a message and its message.created event in one transaction, then NOTIFY events with the event id after commit.';
            COMMENT ON COLUMN events.txid IS
              'Id of the writing transaction; consumers scan from outbox_watermark.processed_through.';
            COMMENT ON TABLE inbox IS
              'One row per consumed event (primary key = event id), written in the same transaction as the event''s effects.';
            COMMENT ON TABLE outbox_watermark IS
              'Every event whose txid is below processed_through has an inbox row; consumers scan from here. Only moves forward.';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OutboxWatermark::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Inbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
