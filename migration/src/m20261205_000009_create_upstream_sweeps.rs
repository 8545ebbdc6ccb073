//! `upstream_sweeps`, the gap ledger (`gap_losses`, `gap_refetch`) and the
//! `upstream_coverage` view.
//!
//! Discord sometimes stops delivering events on a session that looks healthy,
//! so the bot sweeps each watched channel's recent history on a schedule and
//! compares it with what is stored. Every sweep leaves a row here: what
//! Discord listed, what was missing, which edits and deletes it applied, how
//! long it took. `upstream_coverage` turns those rows into a per-channel,
//! per-hour ratio of stored to listed messages, and `diagnose` reads them for
//! silent gateway loss and overdue sweeps.
//!
//! The gap ledger is what a database outage dropped from the bot's memory:
//! per channel the smallest dropped message id (the next backfill starts
//! below it), and the ids whose dropped edit or delete must be read back.
//! It used to live only in memory, so a bot killed during a long outage
//! forgot it; now it is kept here (and, while the database is down, in a
//! local file the bot replays at start).

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UpstreamSweeps {
    Table,
    Id,
    ChannelId,
    WindowStart,
    WindowEnd,
    Listed,
    Missing,
    Edits,
    Deletes,
    DurationMs,
    ListedByHour,
    Error,
    SweptAt,
}

#[derive(DeriveIden)]
enum GapLosses {
    Table,
    ChannelId,
    FloorId,
    NotedAt,
}

#[derive(DeriveIden)]
enum GapRefetch {
    Table,
    ChannelId,
    MessageId,
    NotedAt,
}

const SQL: &str = r#"
CREATE INDEX upstream_sweeps_channel_swept_at ON upstream_sweeps (channel_id, swept_at DESC);

COMMENT ON TABLE upstream_sweeps IS
  'One row per scheduled history sweep of one channel by the bot: the window read (window_start, window_end), messages Discord listed in it (listed, and per hour in listed_by_hour), messages missing from the database and stored by the sweep (missing: a gateway that dropped events silently), newer edits and deletes applied, duration_ms, error (NULL when the sweep finished) and swept_at. Written by the bot; read by upstream_coverage and reconciler diagnose.';
COMMENT ON TABLE gap_losses IS
  'Per channel, the smallest id of a message the bot dropped from its full outage buffer and has not yet backfilled: the next backfill of the channel starts below it. Written and cleared by the bot.';
COMMENT ON TABLE gap_refetch IS
  'Messages whose edit or delete the bot dropped from its full outage buffer: the next backfill of the channel reads each one back and applies what Discord has now. Written and cleared by the bot.';

CREATE VIEW upstream_coverage AS
WITH hours AS (
    SELECT DISTINCT ON (s.channel_id, h.key)
           s.channel_id,
           h.key::timestamptz AS hour,
           h.value::bigint AS listed,
           s.window_start,
           s.window_end,
           s.swept_at
      FROM upstream_sweeps s
     CROSS JOIN LATERAL jsonb_each_text(s.listed_by_hour) h
     WHERE s.error IS NULL
     ORDER BY s.channel_id, h.key, s.swept_at DESC
),
last_sweep AS (
    SELECT channel_id, max(swept_at) AS last_sweep_at
      FROM upstream_sweeps
     GROUP BY channel_id
)
SELECT h.channel_id,
       h.hour,
       h.listed,
       stored.stored,
       CASE WHEN h.listed = 0 THEN NULL
            ELSE round(stored.stored::numeric / h.listed, 4) END AS ratio,
       h.swept_at AS swept_at,
       l.last_sweep_at
  FROM hours h
  JOIN last_sweep l USING (channel_id)
 CROSS JOIN LATERAL (
    SELECT count(*) AS stored
      FROM messages m
     WHERE m.channel_id = h.channel_id
       AND m.deleted_at IS NULL
       AND m.sent_at >= greatest(h.hour, h.window_start)
       AND m.sent_at < least(h.hour + interval '1 hour', h.window_end)
 ) stored;

COMMENT ON VIEW upstream_coverage IS
  'Per channel and hour covered by a finished history sweep (the latest sweep that covered it): messages Discord listed, messages stored now (not deleted) in the same part of the hour, their ratio (1.0 when every listed message is stored; NULL when Discord listed none) and when that hour and the channel were last swept. Columns: channel_id bigint, hour timestamptz, listed bigint, stored bigint, ratio numeric, swept_at timestamptz, last_sweep_at timestamptz.';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let count = |column: UpstreamSweeps| {
            ColumnDef::new(column)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(UpstreamSweeps::Table)
                    .col(
                        ColumnDef::new(UpstreamSweeps::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UpstreamSweeps::ChannelId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UpstreamSweeps::WindowStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UpstreamSweeps::WindowEnd)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(count(UpstreamSweeps::Listed))
                    .col(count(UpstreamSweeps::Missing))
                    .col(count(UpstreamSweeps::Edits))
                    .col(count(UpstreamSweeps::Deletes))
                    .col(count(UpstreamSweeps::DurationMs))
                    .col(
                        ColumnDef::new(UpstreamSweeps::ListedByHour)
                            .json_binary()
                            .not_null()
                            .default(Expr::cust("'{}'::jsonb")),
                    )
                    .col(ColumnDef::new(UpstreamSweeps::Error).text().null())
                    .col(
                        ColumnDef::new(UpstreamSweeps::SweptAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GapLosses::Table)
                    .col(
                        ColumnDef::new(GapLosses::ChannelId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(GapLosses::FloorId).big_integer().not_null())
                    .col(
                        ColumnDef::new(GapLosses::NotedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GapRefetch::Table)
                    .col(
                        ColumnDef::new(GapRefetch::ChannelId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(GapRefetch::MessageId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(GapRefetch::NotedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .primary_key(
                        Index::create()
                            .col(GapRefetch::ChannelId)
                            .col(GapRefetch::MessageId),
                    )
                    .to_owned(),
            )
            .await?;
        exec_sql(manager, SQL).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_sql(manager, "DROP VIEW IF EXISTS upstream_coverage").await?;
        for table in [
            Table::drop().table(GapRefetch::Table).to_owned(),
            Table::drop().table(GapLosses::Table).to_owned(),
            Table::drop().table(UpstreamSweeps::Table).to_owned(),
        ] {
            manager.drop_table(table).await?;
        }
        Ok(())
    }
}
