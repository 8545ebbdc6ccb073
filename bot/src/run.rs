//! The bot service: wiring, background tasks, and an orderly shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use service::Health;
use service::db::{PoolSettings, connect};
use service::retry::{Backoff, LogPolicy, until_ok};
use service::shutdown::Deadline;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backfill::{BackfillSettings, Backfiller};
use crate::channels::Channels;
use crate::config::{BotConfig, Shards};
use crate::error::{BotError, error_chain};
use crate::gateway;
use crate::ledger::Ledger;
use crate::rest::Rest;
use crate::stats::{Stats, StatsSnapshot};
use crate::sweep::{SweepSettings, Sweeper};
use crate::writer::Writer;

/// How often readiness (gateway, database) is re-checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// A bot, built and ready to run.
#[derive(Debug)]
pub struct Bot {
    config: BotConfig,
    shards: Shards,
    db: DatabaseConnection,
    stats: Arc<Stats>,
    health: Health,
    rest: Rest,
    channels: Arc<Channels>,
    ledger: Arc<Ledger>,
    writer: Arc<Writer>,
    backfiller: Arc<Backfiller>,
    sweeper: Arc<Sweeper>,
    /// Stops the background tasks (after the gateway is down).
    tasks_stop: CancellationToken,
    http_addr: Arc<OnceLock<SocketAddr>>,
}

/// A view of a running bot, for tests and tools.
#[derive(Debug, Clone)]
pub struct BotHandle {
    stats: Arc<Stats>,
    health: Health,
    writer: Arc<Writer>,
    backfiller: Arc<Backfiller>,
    sweeper: Arc<Sweeper>,
    channels: Arc<Channels>,
    http_addr: Arc<OnceLock<SocketAddr>>,
}

impl BotHandle {
    /// The bot's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The readiness checks behind `/readyz`.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Where `/healthz`, `/readyz` and `/metrics` listen, once bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr.get().copied()
    }

    /// Writes held in memory during a database outage.
    pub fn buffered(&self) -> usize {
        self.writer.buffered()
    }

    /// Whether a database outage is in progress.
    pub fn database_down(&self) -> bool {
        self.writer.is_down()
    }

    /// The backfill runner (to backfill a channel on demand).
    pub fn backfiller(&self) -> &Arc<Backfiller> {
        &self.backfiller
    }

    /// The history sweeper (to sweep a channel on demand).
    pub fn sweeper(&self) -> &Arc<Sweeper> {
        &self.sweeper
    }

    /// The watched channels.
    pub fn channels(&self) -> &Arc<Channels> {
        &self.channels
    }
}

impl Bot {
    /// Builds the bot: a lazy database pool (the bot starts while PostgreSQL
    /// is down), the REST client and the shared state, after checking the
    /// configuration. Connects to nothing yet.
    pub fn build(config: BotConfig) -> Result<Bot, BotError> {
        // Metrics recorded before the recorder exists are lost; every
        // series starts at its zero before anything records.
        crate::metrics::install();
        let shards = config.shards().map_err(BotError::Config)?;
        let stats = Arc::new(Stats::default());
        let health = Health::new();
        health.set("gateway", false, "connecting");
        health.set("database", false, "not checked yet");
        let mut settings =
            PoolSettings::new("aplus-bot", config.database.database_max_connections.max(2));
        settings.acquire_timeout = Duration::from_secs(3);
        let db = connect(&config.database, &settings).map_err(BotError::DatabaseUrl)?;
        // The writer task's own connection (see `Writer::new`).
        let mut write_settings = PoolSettings::new("aplus-bot-writer", 1);
        write_settings.acquire_timeout = settings.acquire_timeout;
        let write_db = connect(&config.database, &write_settings).map_err(BotError::DatabaseUrl)?;
        let tasks_stop = CancellationToken::new();
        let rest = Rest::new(
            &config.api_base(),
            &config.discord_token,
            Arc::clone(&stats),
            tasks_stop.clone(),
        )
        .map_err(|e| BotError::Config(e.to_string()))?;
        let channels = Arc::new(Channels::new(
            config.channels.iter().copied(),
            shards,
            rest.clone(),
            health.clone(),
        ));
        let mut ledger = Ledger::new(db.clone(), Arc::clone(&stats));
        if let Some(path) = config.ledger_path() {
            ledger = ledger.with_file(path);
        }
        let ledger = Arc::new(ledger);
        let writer = Arc::new(Writer::new(
            db.clone(),
            write_db,
            Arc::clone(&ledger),
            config.buffer,
            config.write_queue,
            config.retry_max,
            Arc::clone(&stats),
        ));
        let backfiller = Arc::new(Backfiller::new(
            Arc::clone(&writer),
            db.clone(),
            Arc::clone(&ledger),
            rest.clone(),
            Arc::clone(&channels),
            Arc::clone(&stats),
            BackfillSettings {
                keep_bot_messages: config.keep_bot_messages,
                overlap: config.backfill_overlap,
            },
            tasks_stop.clone(),
        ));
        let sweeper = Arc::new(Sweeper::new(
            Arc::clone(&backfiller),
            Arc::clone(&channels),
            Arc::clone(&writer),
            db.clone(),
            SweepSettings {
                schedule: config.sweep_schedule.clone(),
                window: config.sweep_window,
                skip_after_backfill: config.sweep_skip_after_backfill,
            },
            tasks_stop.clone(),
        ));
        Ok(Bot {
            config,
            shards,
            db,
            stats,
            health,
            rest,
            channels,
            ledger,
            writer,
            backfiller,
            sweeper,
            tasks_stop,
            http_addr: Arc::new(OnceLock::new()),
        })
    }

    /// A handle on the bot's counters and state, usable while it runs.
    pub fn handle(&self) -> BotHandle {
        BotHandle {
            stats: Arc::clone(&self.stats),
            health: self.health.clone(),
            writer: Arc::clone(&self.writer),
            backfiller: Arc::clone(&self.backfiller),
            sweeper: Arc::clone(&self.sweeper),
            channels: Arc::clone(&self.channels),
            http_addr: Arc::clone(&self.http_addr),
        }
    }

    /// Runs until `shutdown` fires (then stops in order: gateway, in-flight
    /// writes, buffer) or the gateway fails for good.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BotError> {
        let Bot {
            config,
            shards,
            db,
            stats,
            health,
            rest,
            channels,
            ledger,
            writer,
            backfiller,
            sweeper,
            tasks_stop,
            http_addr,
        } = self;
        let http_stop = CancellationToken::new();
        let (addr, http) = service::http::serve(
            config.http_listen,
            service::http::router(health.clone()),
            http_stop.clone(),
        )
        .await
        .map_err(|source| BotError::Bind {
            addr: config.http_listen,
            source,
        })?;
        let _ = http_addr.set(addr);

        let api_base = config.api_base();
        let simulator = config.discord_api_url.is_some();
        if simulator {
            tracing::warn!(api = %api_base, "DISCORD_API_URL is set: talking to a simulator; serenity's REST proxy is on and its rate limiter off");
        }
        tracing::info!(
            channels = ?config.channels,
            keep_bot_messages = config.keep_bot_messages,
            buffer = config.buffer,
            write_queue = config.write_queue,
            shards = ?shards,
            database = %config.database.redacted_url(),
            "bot starting"
        );

        // The writer task stops on its own token, after the gateway and the
        // handler calls, so that it writes what they queued.
        let writer_stop = CancellationToken::new();
        let mut write_loop = tokio::spawn(Arc::clone(&writer).write_loop(writer_stop.clone()));
        let tasks = TaskTracker::new();
        tasks.spawn(Arc::clone(&writer).drain_loop(tasks_stop.clone()));
        tasks.spawn(recovery_loop(
            Arc::clone(&writer),
            Arc::clone(&ledger),
            Arc::clone(&backfiller),
            tasks_stop.clone(),
        ));
        tasks.spawn(start_up_checks(
            Arc::clone(&channels),
            Arc::clone(&backfiller),
            db.clone(),
            tasks_stop.clone(),
        ));
        tasks.spawn(load_ledger(
            Arc::clone(&ledger),
            Arc::clone(&backfiller),
            tasks_stop.clone(),
        ));
        tasks.spawn(Arc::clone(&sweeper).run());

        let in_flight = TaskTracker::new();
        let handler = crate::handler::Handler::new(
            Arc::clone(&writer),
            Arc::clone(&channels),
            Arc::clone(&backfiller),
            Arc::clone(&stats),
            config.keep_bot_messages,
            in_flight.clone(),
        );
        // serenity asks the API for the gateway URL once and, if that fails,
        // connects to Discord's real gateway instead: never let that happen
        // to a simulator that is still starting (a process manager starts
        // both at once).
        if simulator && !wait_for_api(&rest, &shutdown).await {
            writer_stop.cancel();
            tasks_stop.cancel();
            http_stop.cancel();
            return Ok(());
        }
        let mut client =
            match gateway::client(&config.discord_token, &api_base, simulator, handler).await {
                Ok(client) => client,
                Err(error) => {
                    writer_stop.cancel();
                    tasks_stop.cancel();
                    http_stop.cancel();
                    return Err(error);
                }
            };
        identify_budget(&client, shards).await;
        let manager = Arc::clone(&client.shard_manager);
        let expected_shards = shards.count() as usize;
        tasks.spawn(health_loop(
            db.clone(),
            Arc::clone(&writer),
            Arc::clone(&manager),
            expected_shards,
            health.clone(),
            tasks_stop.clone(),
        ));
        tasks.close();

        // One deadline for the whole stop, set when it begins.
        let mut deadline = None;
        let result = {
            let gateway = gateway::start(&mut client, shards);
            tokio::pin!(gateway);
            tokio::select! {
                result = &mut gateway => match result {
                    Ok(()) if shutdown.is_cancelled() => Ok(()),
                    Ok(()) => Err(BotError::GatewayStopped),
                    Err(error) => Err(BotError::from_gateway(error)),
                },
                _ = shutdown.cancelled() => {
                    tracing::info!(deadline = ?config.shutdown_timeout, "stopping: closing the gateway session");
                    let stop = Deadline::after(config.shutdown_timeout);
                    deadline = Some(stop);
                    manager.shutdown_all().await;
                    if stop.run(&mut gateway).await.is_none() {
                        tracing::warn!("the gateway did not close in time");
                    }
                    Ok(())
                }
            }
        };
        metrics::gauge!("aplus_bot_gateway_connected").set(0.0);
        health.set("gateway", false, "stopped");
        if let Err(error) = &result {
            // A fatal close stops every shard; make sure none lingers.
            manager.shutdown_all().await;
            tracing::error!(error = %error_chain(error), "gateway stopped");
        }

        // In-flight handler calls queue their writes (the writer task keeps
        // taking them, so a full queue frees up), the writer task writes
        // what is queued (or buffers it during an outage), then the buffer
        // gets a last chance, then the background tasks stop.
        let deadline = deadline.unwrap_or_else(|| Deadline::after(config.shutdown_timeout));
        in_flight.close();
        if deadline.run(in_flight.wait()).await.is_none() {
            tracing::warn!("in-flight writes did not finish in time");
        }
        writer_stop.cancel();
        if deadline.run(&mut write_loop).await.is_none() {
            tracing::warn!(
                left = writer.queued(),
                "queued writes were not all written in time; their messages are backfilled at the next start"
            );
            write_loop.abort();
        }
        tasks_stop.cancel();
        backfiller.stopped(deadline.remaining()).await;
        writer.flush(deadline.remaining()).await;
        let _ = deadline.run(tasks.wait()).await;
        http_stop.cancel();
        let _ = http.await;
        let s = stats.snapshot();
        tracing::info!(
            stored = s.stored(),
            duplicates = s.duplicates(),
            rejected = s.rejected(),
            buffer_overflow = s.buffer_overflow,
            refused_at_shutdown = s.write_queue_closed,
            left_queued = writer.queued(),
            left_buffered = writer.buffered(),
            "bot stopped"
        );
        result
    }
}

/// Runs the bot until `shutdown` fires or the gateway fails for good.
pub async fn run(config: BotConfig, shutdown: CancellationToken) -> Result<(), BotError> {
    Bot::build(config)?.run(shutdown).await
}

/// Waits until the API answers `GET /gateway`; false if `shutdown` fired first.
async fn wait_for_api(rest: &Rest, shutdown: &CancellationToken) -> bool {
    let url = until_ok(
        "reaching the simulator's API (the gateway waits for it)",
        Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
        LogPolicy::First,
        shutdown,
        || async { rest.gateway().await.map_err(|e| error_chain(&e)) },
    )
    .await;
    if let Some(url) = &url {
        tracing::debug!(gateway = %url, "the simulator answers");
    }
    url.is_some()
}

/// Logs what `/gateway/bot` says about sharding and identifying, and warns
/// when the plan does not fit it. serenity identifies this process's shards
/// one every 5 seconds whatever `max_concurrency` allows, the pace Discord
/// asks of `max_concurrency` 1, so one process never identifies too fast;
/// processes started together share Discord's budget (one identify per
/// bucket `shard % max_concurrency` per 5 s), and a shard refused for it is
/// identified again by serenity.
async fn identify_budget(client: &serenity::Client, shards: Shards) {
    match client.http.get_bot_gateway().await {
        Ok(gateway) => {
            let limit = gateway.session_start_limit;
            tracing::info!(
                recommended_shards = gateway.shards,
                total_shards = shards.total(),
                shards_here = shards.count(),
                max_concurrency = limit.max_concurrency,
                identifies_left = limit.remaining,
                "gateway sharding"
            );
            if shards.total() < gateway.shards {
                tracing::warn!(
                    recommended = gateway.shards,
                    configured = shards.total(),
                    "Discord recommends more shards than --shards; it refuses too few shards (close 4011)"
                );
            }
            if u64::from(shards.count()) > limit.remaining {
                tracing::warn!(
                    remaining = limit.remaining,
                    reset_after_ms = limit.reset_after,
                    "fewer identifies left today than shards to start; Discord resets the token when they run out"
                );
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "could not read /gateway/bot; starting the shards anyway")
        }
    }
}

/// Backfills every channel each time a database outage ends.
async fn recovery_loop(
    writer: Arc<Writer>,
    ledger: Arc<Ledger>,
    backfiller: Arc<Backfiller>,
    stop: CancellationToken,
) {
    let recovered = writer.recovered();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = recovered.notified() => {
                // The ledger first: a bot killed during the backfills that
                // follow must still find it.
                if let Err(error) = ledger.save(false).await {
                    tracing::warn!(%error, "could not save the gap ledger; its file keeps it");
                }
                backfiller.request_all("database recovered");
            }
        }
    }
}

/// Verifies each listed channel, then learns the threads that already have
/// stored messages (retrying while the database is down) and backfills them.
async fn start_up_checks(
    channels: Arc<Channels>,
    backfiller: Arc<Backfiller>,
    db: DatabaseConnection,
    stop: CancellationToken,
) {
    let states = channels.verify().await;
    let readable = states
        .iter()
        .filter(|(_, s)| matches!(s, crate::channels::ChannelState::Readable { .. }))
        .count();
    tracing::info!(readable, listed = states.len(), "channel check done");
    let threads = until_ok(
        "listing the threads with stored messages (until the database answers)",
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        LogPolicy::First,
        &stop,
        || async {
            channels
                .load_known_threads(&db)
                .await
                .map_err(|e| error_chain(&e))
        },
    )
    .await;
    if let Some(threads @ 1..) = threads {
        tracing::info!(
            threads,
            "watching threads that already have stored messages"
        );
        backfiller.request_all("known threads");
    }
}

/// Reads back the gap ledger an earlier process left in PostgreSQL (and
/// writes there what its file held), retrying until the database answers,
/// then backfills every channel if it held anything.
async fn load_ledger(ledger: Arc<Ledger>, backfiller: Arc<Backfiller>, stop: CancellationToken) {
    let entries = until_ok(
        "loading the gap ledger (until the database answers)",
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
        LogPolicy::First,
        &stop,
        || ledger.save(true),
    )
    .await;
    if let Some(entries @ 1..) = entries {
        metrics::counter!("aplus_bot_gap_ledger_loaded_total").increment(entries as u64);
        tracing::info!(
            entries,
            "gap ledger of an earlier process loaded; backfilling"
        );
        backfiller.request_all("gap ledger loaded");
    }
}

/// Keeps `/readyz` and the gateway and database gauges current: ready only
/// when every shard is connected and the database answers.
async fn health_loop(
    db: DatabaseConnection,
    writer: Arc<Writer>,
    manager: Arc<serenity::all::ShardManager>,
    expected_shards: usize,
    health: Health,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (connected, running) = gateway::connected_shards(&manager).await;
        let up = connected >= expected_shards;
        metrics::gauge!("aplus_bot_gateway_connected").set(if up { 1.0 } else { 0.0 });
        metrics::gauge!("aplus_bot_gateway_shards_connected").set(connected as f64);
        health.set(
            "gateway",
            up,
            if up {
                format!("connected ({connected} of {expected_shards} shards)")
            } else {
                format!("connecting ({connected} of {expected_shards} shards connected, {running} running)")
            },
        );
        let ping = tokio::select! {
            _ = stop.cancelled() => return,
            ping = db.execute_unprepared("SELECT 1") => ping,
        };
        match ping {
            Ok(_) if writer.is_down() => health.set(
                "database",
                false,
                format!(
                    "answering again; draining {} buffered writes",
                    writer.buffered()
                ),
            ),
            Ok(_) => health.set("database", true, "answering"),
            Err(error) => health.set(
                "database",
                false,
                format!(
                    "unreachable ({}); {} writes buffered",
                    error_chain(&error),
                    writer.buffered()
                ),
            ),
        }
    }
}
