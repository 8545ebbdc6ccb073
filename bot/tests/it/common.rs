//! Shared helpers of the bot's tests: a simulator world, the bot running in
//! this process against it, and queries on what was stored.

use std::time::Duration;

use bot::{Bot, BotConfig, BotError, BotHandle, StatsSnapshot};
use discord_sim::{NewMessage, Sim, SimConfig};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement};
use secrecy::SecretString;
use service::DatabaseArgs;
use service::db::{PoolSettings, connect};
use testkit::cluster::{StopMode, TempCluster};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous: the machine running the tests may be busy.
pub const WAIT: Duration = Duration::from_secs(90);

/// The token the in-process bot uses.
pub const TOKEN: &str = "test-token";

/// A simulator with one guild and some channels.
pub struct World {
    pub sim: Sim,
    pub guild: u64,
    pub channels: Vec<u64>,
}

/// Starts a simulator with `channels` text channels in one guild.
pub async fn world(channels: usize) -> World {
    world_with(SimConfig::default(), channels).await
}

/// Like [`world`], with simulator settings.
pub async fn world_with(config: SimConfig, channels: usize) -> World {
    init_logs();
    let sim = Sim::start(config).await.expect("the simulator starts");
    let guild = sim.create_guild("Trading");
    let channels = (0..channels)
        .map(|i| {
            sim.create_channel(guild, &format!("aplus-{i}"))
                .expect("the guild exists")
        })
        .collect();
    World {
        sim,
        guild,
        channels,
    }
}

/// Shows the bot's logs in the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        service::telemetry::init(service::config::LogFormat::Pretty);
    }
}

/// Bot settings for tests: the simulator, quick retries.
pub fn config(database: DatabaseArgs, sim: &Sim, channels: &[u64]) -> BotConfig {
    config_for(database, &sim.api_url(), channels)
}

/// Bot settings for tests against the simulator at `api_url`.
pub fn config_for(database: DatabaseArgs, api_url: &str, channels: &[u64]) -> BotConfig {
    let mut config = BotConfig::new(database, SecretString::from(TOKEN), channels.to_vec());
    config.discord_api_url = Some(api_url.to_owned());
    config.retry_max = Duration::from_millis(500);
    config.shutdown_timeout = Duration::from_secs(10);
    config
}

/// A bot running in this process.
pub struct RunningBot {
    pub handle: BotHandle,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), BotError>>,
}

/// Starts the bot in this process.
pub fn start(config: BotConfig) -> RunningBot {
    let bot = Bot::build(config).expect("the bot builds");
    let handle = bot.handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bot.run(shutdown.clone()));
    RunningBot {
        handle,
        shutdown,
        task,
    }
}

/// Starts the bot and waits until its gateway is connected and its first
/// backfill of every channel is done.
pub async fn start_ready(config: BotConfig) -> RunningBot {
    let channels = config.channels.len() as u64;
    let bot = start(config);
    bot.wait_connected().await;
    bot.wait_stats("the first backfill of every channel", |s| {
        s.backfill_runs >= channels
    })
    .await;
    // Every check passes: gateway, database and each channel verified.
    testkit::eventually(WAIT, "the bot to be ready", || async {
        bot.handle.health().is_ready().then_some(())
    })
    .await;
    bot
}

impl RunningBot {
    /// The bot's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.handle.stats()
    }

    /// Waits until the gateway readiness check passes.
    pub async fn wait_connected(&self) {
        testkit::eventually(WAIT, "the gateway to connect", || async {
            self.handle
                .health()
                .get("gateway")
                .is_some_and(|c| c.ready)
                .then_some(())
        })
        .await;
    }

    /// Waits until the counters satisfy `condition`.
    pub async fn wait_stats(
        &self,
        what: &str,
        condition: impl Fn(&StatsSnapshot) -> bool,
    ) -> StatsSnapshot {
        let started = std::time::Instant::now();
        loop {
            let stats = self.stats();
            if condition(&stats) {
                return stats;
            }
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {what}; stats: {stats:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the bot and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the bot stops in time")
            .expect("the bot task does not panic")
            .expect("the bot stops without error");
    }
}

/// Runs a query returning one bigint column; returns the values.
pub async fn ids(db: &DatabaseConnection, sql: &str) -> Vec<i64> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("query failed: {sql}: {e}"))
        .iter()
        .map(|row| {
            row.try_get_by_index::<i64>(0)
                .unwrap_or_else(|e| panic!("first column of `{sql}` is not a bigint: {e}"))
        })
        .collect()
}

/// Ids of every stored message, as the simulator's ground truth wants them.
pub async fn stored_ids(db: &DatabaseConnection) -> Vec<u64> {
    ids(db, "SELECT id FROM messages ORDER BY id")
        .await
        .into_iter()
        .map(|id| u64::try_from(id).expect("stored ids are never negative"))
        .collect()
}

/// Runs a query returning one row of one column of any type.
pub async fn one<T: sea_orm::TryGetable>(db: &DatabaseConnection, sql: &str) -> T {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("query failed: {sql}: {e}"))
        .unwrap_or_else(|| panic!("query returned no row: {sql}"));
    row.try_get_by_index::<T>(0)
        .unwrap_or_else(|e| panic!("first column of `{sql}`: {e}"))
}

/// Waits until a count query returns `expected`.
pub async fn wait_count(db: &DatabaseConnection, sql: &str, expected: i64) {
    let mut last = -1;
    let started = std::time::Instant::now();
    loop {
        let count: i64 = one(db, sql).await;
        if count == expected {
            return;
        }
        if count != last {
            last = count;
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for `{sql}` to be {expected}; last {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throwaway PostgreSQL server the test may stop, with a migrated
/// database on it: its URL and a connection.
pub async fn server_of_our_own() -> (TempCluster, DatabaseArgs, DatabaseConnection) {
    let server = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("join")
        .expect("a throwaway PostgreSQL server starts");
    let admin = connect(
        &DatabaseArgs::from_url(server.cluster.url("postgres")),
        &PoolSettings::new("aplus-test", 2),
    )
    .expect("url parses");
    admin
        .execute_unprepared("CREATE DATABASE aplus_outage")
        .await
        .expect("create database");
    let args = DatabaseArgs::from_url(server.cluster.url("aplus_outage"));
    // The test's own reads must not meet a connection the restart ended.
    let observer = PoolSettings {
        ping_if_idle_for: std::time::Duration::ZERO,
        ..PoolSettings::new("aplus-test", 4)
    };
    let db = connect(&args, &observer).expect("url parses");
    migration::migrate(&db).await.expect("migrations apply");
    (server, args, db)
}

/// Stops the test's own server: a database outage begins.
pub async fn stop_server(server: &TempCluster) {
    let cluster = server.cluster.clone();
    tokio::task::spawn_blocking(move || cluster.stop(StopMode::Fast))
        .await
        .expect("join")
        .expect("the server stops");
}

/// Starts the test's own server again: the outage ends.
pub async fn start_server(server: &TempCluster) {
    let cluster = server.cluster.clone();
    tokio::task::spawn_blocking(move || cluster.start())
        .await
        .expect("join")
        .expect("the server starts again");
}

/// Posts `count` messages (`before 0`, `before 1`, ...) to `channel` and
/// waits until the database holds that many; returns their ids.
pub async fn post_stored(
    db: &DatabaseConnection,
    sim: &Sim,
    channel: u64,
    count: usize,
) -> Vec<u64> {
    let ids: Vec<u64> = (0..count)
        .map(|i| {
            sim.post(NewMessage::text(channel, format!("before {i}")))
                .expect("posted")
        })
        .collect();
    wait_count(db, "SELECT count(*) FROM messages", count as i64).await;
    ids
}

/// During an outage, posts one message after another to `channel` until the
/// bot has noticed and its buffer overflows; `posted` counts every message
/// posted so far and is updated.
pub async fn post_until_overflow(bot: &RunningBot, sim: &Sim, channel: u64, posted: &mut usize) {
    testkit::eventually(WAIT, "the outage buffer to overflow", || {
        *posted += 1;
        sim.post(NewMessage::text(channel, format!("during {posted}")))
            .expect("posted");
        let overflowed = bot.stats().buffer_overflow > 0;
        async move { overflowed.then_some(()) }
    })
    .await;
}
