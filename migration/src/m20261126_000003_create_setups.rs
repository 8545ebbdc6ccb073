//! The worker's effects: `message_parses` (one outcome per message),
//! `setups` (one row per parsed setup) and `ticker_bias` (one per ticker block).

use sea_orm_migration::prelude::*;

use crate::{exec_sql, m20261126_000001_create_messages::Messages};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MessageParses {
    Table,
    MessageId,
    EventId,
    ParserVersion,
    IsAplus,
    Reason,
    TradingDay,
    TradingDayMethod,
    HeaderVariant,
    HeaderTag,
    IsWeekend,
    MentionsEveryone,
    FreeTextLines,
    Warnings,
    SetupCount,
    ContentSha256,
    ContentLength,
    Status,
    SupersededBy,
    ParsedAt,
}

#[derive(DeriveIden)]
enum Setups {
    Table,
    Id,
    MessageId,
    TradingDay,
    Ticker,
    SetupIndex,
    Label,
    Direction,
    Strength,
    Qualifier,
    TriggerLow,
    TriggerHigh,
    Targets,
    RawLine,
    Warning,
    IsCurrent,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TickerBias {
    Table,
    MessageId,
    Ticker,
    TradingDay,
    Bias,
    Levels,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessageParses::Table)
                    .col(
                        ColumnDef::new(MessageParses::MessageId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MessageParses::EventId).uuid().not_null())
                    .col(
                        ColumnDef::new(MessageParses::ParserVersion)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MessageParses::IsAplus).boolean().not_null())
                    .col(ColumnDef::new(MessageParses::Reason).text().null())
                    .col(ColumnDef::new(MessageParses::TradingDay).date().null())
                    .col(
                        ColumnDef::new(MessageParses::TradingDayMethod)
                            .text()
                            .null(),
                    )
                    .col(ColumnDef::new(MessageParses::HeaderVariant).text().null())
                    .col(ColumnDef::new(MessageParses::HeaderTag).text().null())
                    .col(
                        ColumnDef::new(MessageParses::IsWeekend)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(MessageParses::MentionsEveryone)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(MessageParses::FreeTextLines)
                            .json_binary()
                            .not_null()
                            .default(Expr::cust("'[]'::jsonb")),
                    )
                    .col(
                        ColumnDef::new(MessageParses::Warnings)
                            .json_binary()
                            .not_null()
                            .default(Expr::cust("'[]'::jsonb")),
                    )
                    .col(
                        ColumnDef::new(MessageParses::SetupCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(MessageParses::ContentSha256)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageParses::ContentLength)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MessageParses::Status)
                            .text()
                            .not_null()
                            .check(Expr::col(MessageParses::Status).is_in([
                                "current",
                                "superseded",
                                "duplicate",
                                "not_aplus",
                                "retracted",
                            ])),
                    )
                    .col(
                        ColumnDef::new(MessageParses::SupersededBy)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(MessageParses::ParsedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("message_parses_message_id_fkey")
                            .from(MessageParses::Table, MessageParses::MessageId)
                            .to(Messages::Table, Messages::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Setups::Table)
                    .col(
                        ColumnDef::new(Setups::Id)
                            .big_integer()
                            .not_null()
                            .primary_key()
                            .extra("GENERATED ALWAYS AS IDENTITY"),
                    )
                    .col(ColumnDef::new(Setups::MessageId).big_integer().not_null())
                    .col(ColumnDef::new(Setups::TradingDay).date().not_null())
                    .col(ColumnDef::new(Setups::Ticker).text().not_null())
                    .col(ColumnDef::new(Setups::SetupIndex).integer().not_null())
                    .col(ColumnDef::new(Setups::Label).text().not_null())
                    .col(
                        ColumnDef::new(Setups::Direction)
                            .text()
                            .not_null()
                            .check(Expr::col(Setups::Direction).is_in(["long", "short"])),
                    )
                    .col(ColumnDef::new(Setups::Strength).text().null())
                    .col(ColumnDef::new(Setups::Qualifier).text().null())
                    .col(ColumnDef::new(Setups::TriggerLow).decimal().not_null())
                    .col(ColumnDef::new(Setups::TriggerHigh).decimal().not_null())
                    .col(
                        ColumnDef::new(Setups::Targets)
                            .array(ColumnType::Decimal(None))
                            .not_null(),
                    )
                    .col(ColumnDef::new(Setups::RawLine).text().not_null())
                    .col(ColumnDef::new(Setups::Warning).text().null())
                    .col(
                        ColumnDef::new(Setups::IsCurrent)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(Setups::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("setups_message_id_fkey")
                            .from(Setups::Table, Setups::MessageId)
                            .to(Messages::Table, Messages::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TickerBias::Table)
                    .col(
                        ColumnDef::new(TickerBias::MessageId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(TickerBias::Ticker).text().not_null())
                    .col(ColumnDef::new(TickerBias::TradingDay).date().not_null())
                    .col(ColumnDef::new(TickerBias::Bias).text().null())
                    .col(
                        ColumnDef::new(TickerBias::Levels)
                            .array(ColumnType::Decimal(None))
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(TickerBias::MessageId)
                            .col(TickerBias::Ticker),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("ticker_bias_message_id_fkey")
                            .from(TickerBias::Table, TickerBias::MessageId)
                            .to(Messages::Table, Messages::Id),
                    )
                    .to_owned(),
            )
            .await?;

        exec_sql(
            manager,
            r#"
            -- An effect is applied once: a setup is unique within its message.
            CREATE UNIQUE INDEX setups_message_ticker_index ON setups (message_id, ticker, setup_index);
            -- "Today's setups": the current ones of a trading day.
            CREATE INDEX setups_current_by_day ON setups (trading_day, ticker) WHERE is_current;
            CREATE INDEX message_parses_trading_day ON message_parses (trading_day) WHERE is_aplus;
            CREATE INDEX message_parses_content_sha256 ON message_parses (content_sha256);

            COMMENT ON TABLE message_parses IS
              'One parse outcome per message: A+ or not (with the reason), the trading day, and whether its setups are current, superseded by a later longer post, a byte-identical duplicate, or retracted by a delete.';
            COMMENT ON TABLE setups IS
              'One row per parsed setup. trigger_low = trigger_high unless the trigger is a zone. is_current marks the setups of the message that currently stands for its trading day.';
            COMMENT ON TABLE ticker_bias IS
              'The bias line of each ticker block and the price levels it names.';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TickerBias::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Setups::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MessageParses::Table).to_owned())
            .await
    }
}
