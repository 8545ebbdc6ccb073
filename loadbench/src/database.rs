//! The benchmark's own PostgreSQL: a throwaway cluster with default
//! durability, `pg_stat_statements` loaded and commit timestamps kept, the
//! pipeline's database on it with one login role per service, a copy of the
//! empty schema for the yardsticks, and the queries the scenarios read their
//! figures with.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use sea_orm::TransactionTrait as _;
use sea_orm::sqlx::postgres::{PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Executor as _, Row as _};
use testkit::cluster::TempCluster;

/// The pipeline's database.
pub const DATABASE: &str = "aplus_bench";
/// A copy of the freshly migrated schema that only `pgbench` writes to, so
/// the yardsticks' rows never reach the worker.
pub const YARDSTICK_DATABASE: &str = "aplus_yardstick";
/// The bot's login role; `pg_stat_statements` files its statements under it.
pub const BOT_ROLE: &str = "aplus_bot";
/// The worker's login role.
pub const WORKER_ROLE: &str = "aplus_worker";

/// Server settings on top of testkit's defaults. Durability stays at the
/// defaults (`fsync=on`, `synchronous_commit=on`): the figures must be
/// those of a server that keeps what it committed.
const SERVER_SETTINGS: &[(&str, &str)] = &[
    // Statement counts per service.
    ("shared_preload_libraries", "pg_stat_statements"),
    // `pg_xact_commit_timestamp(xmin)`: when a row became visible.
    ("track_commit_timestamp", "on"),
];

/// What each service role may do: everything on the pipeline's tables,
/// nothing beyond, as in production (and as the chaos suite grants).
fn grants(role: &str) -> String {
    format!(
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role};
         GRANT pg_read_all_stats TO {role};"
    )
}

/// The private server and a pool of the harness's own (superuser) sessions
/// on the pipeline's database.
#[derive(Debug)]
pub struct BenchDb {
    // Declared first so the pool closes before the server stops.
    pool: PgPool,
    server: TempCluster,
}

impl BenchDb {
    /// Creates the cluster, the roles, the schema and the yardstick copy.
    ///
    /// # Errors
    /// When PostgreSQL cannot be started or the migrations fail.
    pub async fn start() -> Result<Self> {
        let server = tokio::task::spawn_blocking(|| TempCluster::start_with(SERVER_SETTINGS))
            .await
            .context("joining the cluster start")?
            .context("starting a private PostgreSQL server")?;
        let admin = pool(&server.cluster.url("postgres"), 1).await?;
        for statement in [
            format!(r#"CREATE DATABASE "{DATABASE}""#),
            format!(r#"CREATE ROLE "{BOT_ROLE}" LOGIN"#),
            format!(r#"CREATE ROLE "{WORKER_ROLE}" LOGIN"#),
        ] {
            admin
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
                .await
                .context("creating the database and the services' roles")?;
        }

        let url = server.cluster.url(DATABASE);
        let migrate = pool(&url, 2).await?;
        let orm = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(migrate);
        migration::migrate(&orm)
            .await
            .context("applying the migrations")?;
        let migrate = orm.get_postgres_connection_pool().clone();
        let setup = format!(
            "CREATE EXTENSION pg_stat_statements; {} {}",
            grants(BOT_ROLE),
            grants(WORKER_ROLE)
        );
        migrate
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup)))
            .await
            .context("installing pg_stat_statements and granting the roles")?;
        migrate.close().await;

        // A template may have no other sessions, so this comes after the
        // migration pool is closed and before the harness's own opens.
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                r#"CREATE DATABASE "{YARDSTICK_DATABASE}" TEMPLATE "{DATABASE}""#
            ))))
            .await
            .context("copying the schema for the yardsticks")?;
        admin.close().await;

        Ok(Self {
            pool: pool(&url, 4).await?,
            server,
        })
    }

    /// URL of the pipeline's database for a service logging in as `role`.
    pub fn url_for(&self, role: &str) -> String {
        format!(
            "postgres://{role}@127.0.0.1:{}/{DATABASE}",
            self.server.cluster.port
        )
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.server.cluster.port
    }

    /// The postmaster's process id, whose children are the server's processes.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.server.postmaster_pid()
    }

    /// The harness's own sessions (superuser).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT version()`, shortened to "PostgreSQL 15.x".
    pub async fn server_version(&self) -> String {
        sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&self.pool)
            .await
            .map(|v| format!("PostgreSQL {v}"))
            .unwrap_or_else(|_| "PostgreSQL (unknown version)".to_owned())
    }

    /// Empties `pg_stat_statements`, so the next reading covers one scenario.
    ///
    /// # Errors
    /// Any database error.
    pub async fn reset_statements(&self) -> Result<()> {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&self.pool)
            .await
            .context("resetting pg_stat_statements")?;
        Ok(())
    }

    /// Statements executed per role since the last reset (sum of `calls`).
    ///
    /// # Errors
    /// Any database error.
    pub async fn statements_by_role(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT r.rolname, sum(s.calls)::bigint AS calls
             FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
             GROUP BY r.rolname",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading pg_stat_statements")?;
        rows.iter()
            .map(|row| Ok((row.try_get("rolname")?, row.try_get("calls")?)))
            .collect::<Result<_, sqlx::Error>>()
            .context("reading pg_stat_statements")
    }

    /// Stored messages and processed inbox rows, in all: two counts over
    /// tables of at most a few hundred thousand rows.
    ///
    /// # Errors
    /// Any database error.
    pub async fn progress(&self) -> Result<Progress> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM messages) AS stored,
                    (SELECT count(*) FROM inbox WHERE status = 'processed') AS processed",
        )
        .fetch_one(&self.pool)
        .await
        .context("counting stored and processed rows")?;
        Ok(Progress {
            stored: row.try_get("stored")?,
            processed: row.try_get("processed")?,
        })
    }

    /// When each of `ids` was stored (commit of its `messages` row) and
    /// processed (commit of the processed inbox row of its
    /// `message.created` event), as read from the commit timestamps.
    ///
    /// # Errors
    /// Any database error.
    pub async fn commit_times(&self, ids: &[i64]) -> Result<Vec<CommitTimes>> {
        let rows = sqlx::query(
            "SELECT m.id,
                    (extract(epoch FROM pg_xact_commit_timestamp(m.xmin)) * 1e6)::bigint AS stored,
                    (extract(epoch FROM pg_xact_commit_timestamp(i.xmin)) * 1e6)::bigint AS processed
             FROM messages m
             LEFT JOIN events e ON e.message_id = m.id AND e.kind = 'message.created'
             LEFT JOIN inbox i ON i.event_id = e.id AND i.status = 'processed'
             WHERE m.id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .context("reading commit timestamps")?;
        rows.iter()
            .map(|row| {
                Ok(CommitTimes {
                    id: row.try_get("id")?,
                    stored: row.try_get::<Option<i64>, _>("stored")?.map(from_micros),
                    processed: row.try_get::<Option<i64>, _>("processed")?.map(from_micros),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .context("reading commit timestamps")
    }

    /// Writes `contents.len()` messages with their `message.created` events,
    /// ids from `first_id` on, a thousand per transaction, through
    /// `outbox::record::record_messages` as the bot writes them:
    /// a backlog for the worker, as an outage of the worker would leave it.
    ///
    /// # Errors
    /// Any database error.
    pub async fn seed_backlog(
        &self,
        first_id: i64,
        channel_id: i64,
        contents: &[String],
        raw: &serde_json::Value,
    ) -> Result<()> {
        let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(self.pool.clone());
        let sent_at = chrono::Utc::now();
        let mut next = first_id;
        for chunk in contents.chunks(1_000) {
            let messages = chunk
                .iter()
                .map(|content| {
                    next += 1;
                    outbox::record::NewMessage {
                        id: next - 1,
                        guild_id: None,
                        channel_id,
                        author_id: 900_000_000_000_000_001,
                        author_name: "swing_sam".to_owned(),
                        author_is_bot: false,
                        content: content.clone(),
                        embeds: serde_json::json!([]),
                        attachments: serde_json::json!([]),
                        is_forward: false,
                        sent_at,
                        edited_at: None,
                        raw: raw.clone(),
                    }
                })
                .collect();
            let txn = db.begin().await.context("seeding the backlog")?;
            outbox::record::record_messages(&txn, messages, outbox::payload::Source::Gateway)
                .await
                .context("seeding the backlog")?;
            txn.commit().await.context("seeding the backlog")?;
        }
        Ok(())
    }

    /// A stored message's `raw` JSON, as text.
    ///
    /// # Errors
    /// Any database error, or no such message.
    pub async fn stored_raw(&self, id: i64) -> Result<String> {
        sqlx::query_scalar("SELECT raw::text FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .context("reading a stored message")
    }

    /// Commit times of the processed inbox rows for the events of messages
    /// `first_id..first_id + count`.
    ///
    /// # Errors
    /// Any database error.
    pub async fn drain_commits(&self, first_id: i64, count: i64) -> Result<Vec<SystemTime>> {
        let micros: Vec<i64> = sqlx::query_scalar(
            "SELECT (extract(epoch FROM pg_xact_commit_timestamp(i.xmin)) * 1e6)::bigint
             FROM events e JOIN inbox i ON i.event_id = e.id AND i.status = 'processed'
             WHERE e.message_id >= $1 AND e.message_id < $1 + $2",
        )
        .bind(first_id)
        .bind(count)
        .fetch_all(&self.pool)
        .await
        .context("reading the drain's commit times")?;
        Ok(micros.into_iter().map(from_micros).collect())
    }
}

/// Rows stored and processed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows in `messages`.
    pub stored: i64,
    /// Processed inbox rows.
    pub processed: i64,
}

/// Commit times of one message's rows.
#[derive(Debug, Clone, Copy)]
pub struct CommitTimes {
    /// The message id.
    pub id: i64,
    /// When its `messages` row committed.
    pub stored: Option<SystemTime>,
    /// When the processed inbox row of its `message.created` event committed.
    pub processed: Option<SystemTime>,
}

fn from_micros(micros: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

async fn pool(url: &str, size: u32) -> Result<PgPool> {
    let options: sqlx::postgres::PgConnectOptions = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .context("parsing the database url")?
        .application_name("aplus-loadbench");
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connecting to the benchmark's PostgreSQL")
}
