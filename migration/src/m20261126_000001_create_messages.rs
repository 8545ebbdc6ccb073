//! `messages` (one row per Discord message id) and `message_tombstones`
//! (deletes that arrived before their create).

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Messages {
    Table,
    Id,
    GuildId,
    ChannelId,
    AuthorId,
    AuthorName,
    AuthorIsBot,
    Content,
    Embeds,
    Attachments,
    IsForward,
    Sanitized,
    SentAt,
    EditedAt,
    DeletedAt,
    ReceivedAt,
    Raw,
}

#[derive(DeriveIden)]
enum MessageTombstones {
    Table,
    MessageId,
    ChannelId,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(
                        ColumnDef::new(Messages::Id)
                            .big_integer()
                            .not_null()
                            .primary_key()
                            // Snowflakes are positive; a negative id would be a wrapped u64.
                            .check(Expr::col(Messages::Id).gt(0)),
                    )
                    .col(ColumnDef::new(Messages::GuildId).big_integer().null())
                    .col(ColumnDef::new(Messages::ChannelId).big_integer().not_null())
                    .col(ColumnDef::new(Messages::AuthorId).big_integer().not_null())
                    .col(ColumnDef::new(Messages::AuthorName).text().not_null())
                    .col(
                        ColumnDef::new(Messages::AuthorIsBot)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(Messages::Content).text().not_null())
                    .col(
                        ColumnDef::new(Messages::Embeds)
                            .json_binary()
                            .not_null()
                            .default(Expr::cust("'[]'::jsonb")),
                    )
                    .col(
                        ColumnDef::new(Messages::Attachments)
                            .json_binary()
                            .not_null()
                            .default(Expr::cust("'[]'::jsonb")),
                    )
                    .col(
                        ColumnDef::new(Messages::IsForward)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Messages::Sanitized)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Messages::SentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Messages::EditedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Messages::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Messages::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .col(ColumnDef::new(Messages::Raw).json_binary().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageTombstones::Table)
                    .col(
                        ColumnDef::new(MessageTombstones::MessageId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(MessageTombstones::ChannelId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageTombstones::DeletedAt)
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
            -- Gap backfill asks for the largest stored id of each channel.
            CREATE INDEX messages_channel_id_id ON messages (channel_id, id);
            -- Time windows of the views and the reconciler's cursor.
            CREATE INDEX messages_received_at ON messages (received_at);

            COMMENT ON TABLE messages IS
              'One row per Discord message id (the snowflake). Written only together with its message.created event.';
            COMMENT ON COLUMN messages.content IS
              'Message text; for a forwarded message, the text of message_snapshots[0]. NUL bytes are replaced by U+FFFD and sanitized is set.';
            COMMENT ON COLUMN messages.raw IS
              'The payload as received (sanitised the same way), so messages can be re-parsed later.';
            COMMENT ON TABLE message_tombstones IS
              'Deletes that arrived before their create; a late create is stored already deleted.';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessageTombstones::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await
    }
}
