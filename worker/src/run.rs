//! The worker service: listener, consumer loops, watermark, health.
//!
//! [`Worker::build`] reads the configuration into pools and settings (it
//! connects lazily, so it fails only on a configuration that cannot work);
//! [`Worker::run`] serves until the shutdown token fires, then stops within
//! one deadline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use outbox::Backoff;
use outbox::consume::{Consumer, ConsumerConfig};
use outbox::listener::{self, Listener, ListenerConfig};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use service::Health;
use service::db::connect;
use service::retry::LogPolicy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::WorkerConfig;
use crate::handler::SetupHandler;

/// How often the watermark is moved forward. Each consumer loop claims from
/// the watermark once per [`outbox::consume::RESCAN_INTERVAL`], so this bounds how
/// far such a claim walks over completed events.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

/// How often `/readyz` and the listener gauges are brought up to date.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// A consumer loop's wait after a failed batch (the database is down or
/// refusing): short at first, at most 5 s, so it is back within seconds of
/// a recovery without hammering a database that is down.
const BATCH_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Which failed batches of a run of failures a consumer loop logs at `warn`
/// (one line per failed batch would flood the log during an outage).
const BATCH_FAILURE_LOG: LogPolicy = LogPolicy::Every(20);

/// The worker, configured and ready to run.
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
    name: String,
    db: DatabaseConnection,
    listen_options: PgConnectOptions,
}

impl Worker {
    /// The worker's pools and settings. The pools connect lazily: an error
    /// here is a database URL that cannot work.
    pub fn build(config: WorkerConfig) -> anyhow::Result<Self> {
        let name = config.worker_name();
        let settings = config.pool_settings(format!("aplus-worker {name}"), config.concurrency + 2);
        let db = connect(&config.database, &settings).context("reading the database url")?;
        let mut listen_settings = config.pool_settings(
            format!("{} {name}", listener::LISTENER_APPLICATION_PREFIX),
            1,
        );
        listen_settings.statement_timeout = None;
        listen_settings.idle_in_transaction_timeout = None;
        let listen_options = service::db::connect_options(&config.database, &listen_settings)
            .context("reading the database url")?;
        Ok(Self {
            config,
            name,
            db,
            listen_options,
        })
    }

    /// Runs the worker until `shutdown` fires, then lets in-flight batches
    /// finish (up to the configured deadline).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            config,
            name,
            db,
            listen_options,
        } = self;
        // Metrics recorded before the recorder exists are lost; every series
        // starts at its zero before anything records.
        crate::metrics::install();
        let health = Health::new();
        health.set("database", false, "not checked yet");
        health.set("listener", false, "connecting");
        let (_addr, http) = service::http::serve(
            config.http_listen,
            service::http::router(health.clone()),
            shutdown.clone(),
        )
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;

        // The listener outlives the consumers' shutdown by a little: it stops
        // with its own token once they are done.
        let listener_stop = CancellationToken::new();
        let (listener, listener_task) = listener::spawn(
            listen_options,
            db.clone(),
            ListenerConfig {
                heartbeat_interval: config.heartbeat_interval,
                heartbeat_timeout: config.heartbeat_timeout,
                ..ListenerConfig::default()
            },
            listener_stop.clone(),
        );

        let consumer = Arc::new(config.consumer(name.clone()));
        let tracker = TaskTracker::new();
        for index in 0..config.concurrency.max(1) {
            tracker.spawn(consume_loop(
                index,
                db.clone(),
                consumer.clone(),
                listener.wake.clone(),
                config.poll_interval,
                shutdown.clone(),
            ));
        }
        tracker.spawn(watermark_loop(db.clone(), shutdown.clone()));
        tracker.spawn(health_loop(
            db.clone(),
            listener.clone(),
            health.clone(),
            shutdown.clone(),
        ));
        tracker.close();
        tracing::info!(worker = %name, concurrency = config.concurrency, batch_size = config.batch_size, poll_interval = ?config.poll_interval, "worker started");

        shutdown.cancelled().await;
        tracing::info!("stopping: no new claims; finishing in-flight batches");
        // One deadline for the whole stop; the listener and the HTTP server
        // get what is left of it, at least a second, so the stop stays well
        // inside the process manager's wait.
        let deadline = service::shutdown::Deadline::after(config.shutdown_timeout);
        if deadline.run(tracker.wait()).await.is_none() {
            tracing::warn!(deadline = ?config.shutdown_timeout, "in-flight batches did not finish in time; their transactions roll back");
        }
        listener_stop.cancel();
        let last = || deadline.remaining().max(Duration::from_secs(1));
        let _ = tokio::time::timeout(last(), listener_task).await;
        let _ = tokio::time::timeout(last(), http).await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// One consumer: waits for a wake-up (a notification, a reconnect's
/// catch-up, or the poll interval), then drains batches until one is not full.
async fn consume_loop(
    index: u32,
    db: DatabaseConnection,
    config: Arc<ConsumerConfig>,
    wake: Arc<Notify>,
    poll_interval: Duration,
    shutdown: CancellationToken,
) {
    let handler = SetupHandler;
    let mut consumer = Consumer::new(ConsumerConfig::clone(&config));
    let mut failures: u32 = 0;
    // Polling off (`0`) means waiting on notifications only.
    let poll = if poll_interval.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        poll_interval
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        // After a full batch more is waiting: let another consumer join in.
        let drained = consumer
            .drain(&db, &handler, &shutdown, || {
                failures = 0;
                wake.notify_one();
            })
            .await;
        match drained {
            Ok(_) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                let error = format!("{:#}", anyhow::Error::from(error));
                if BATCH_FAILURE_LOG.warns(failures) {
                    tracing::warn!(consumer = index, failures, error = %error, "batch failed; retrying");
                } else {
                    tracing::debug!(consumer = index, failures, error = %error, "batch failed; retrying");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(BATCH_RETRY.delay(failures)) => {}
                }
            }
        }
    }
}

async fn watermark_loop(db: DatabaseConnection, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(WATERMARK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match outbox::watermark::advance(&db, 20).await {
            Ok(wm) => metrics::gauge!("aplus_outbox_watermark").set(wm as f64),
            Err(error) => tracing::debug!(%error, "watermark not advanced"),
        }
    }
}

/// Keeps `/readyz` and the listener gauges current.
async fn health_loop(
    db: DatabaseConnection,
    listener: Listener,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match db.execute_unprepared("SELECT 1").await {
            Ok(_) => health.set("database", true, "answering"),
            Err(error) => health.set("database", false, format!("unreachable: {error}")),
        }
        let stats = &listener.stats;
        if stats.is_connected() {
            health.set("listener", true, "LISTEN \"events\" connected");
        } else {
            health.set(
                "listener",
                false,
                "LISTEN connection down; reconnecting (polling continues)",
            );
        }
        if let Some(at) = stats.last_heartbeat() {
            metrics::gauge!("aplus_listener_last_heartbeat_age_seconds")
                .set(at.elapsed().as_secs_f64());
        }
        if let Some(at) = stats.last_notification() {
            metrics::gauge!("aplus_listener_last_notification_age_seconds")
                .set(at.elapsed().as_secs_f64());
        }
    }
}
