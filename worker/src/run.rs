//! The worker service: listener, consumer loops, watermark, health.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use outbox::Backoff;
use outbox::consume::{Consumer, ConsumerConfig};
use outbox::listener::{self, Listener, ListenerConfig};
use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use service::Health;
use service::db::{PoolSettings, connect};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::WorkerConfig;
use crate::handler::SetupHandler;

/// How often the watermark is moved forward. Each consumer loop claims from
/// the watermark once per [`outbox::consume::RESCAN_INTERVAL`], so this bounds how
/// far such a claim walks over completed events.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the worker until `shutdown` fires, then lets in-flight batches finish
/// (up to the configured deadline). Returns the bound health address through
/// `on_ready`, for tests that use port 0.
pub async fn run(
    config: WorkerConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(std::net::SocketAddr) + Send,
) -> anyhow::Result<()> {
    // Metrics recorded before the recorder exists are lost; every series
    // starts at its zero before anything records.
    crate::metrics::install();
    let name = config.worker_name();
    let mut settings = PoolSettings::new(format!("aplus-worker {name}"), config.concurrency + 2);
    settings.idle_in_transaction_timeout = Some(config.lease);
    let db = connect(&config.database, &settings).context("reading the database url")?;
    let mut listen_settings = PoolSettings::new(
        format!("{} {name}", listener::LISTENER_APPLICATION_PREFIX),
        1,
    );
    listen_settings.statement_timeout = None;
    listen_settings.idle_in_transaction_timeout = None;
    let listen_options = service::db::connect_options(&config.database, &listen_settings)
        .context("reading the database url")?;

    let health = Health::new();
    health.set("database", false, "not checked yet");
    health.set("listener", false, "connecting");
    let (addr, http) = service::http::serve(
        config.http_listen,
        service::http::router(health.clone()),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("binding {}", config.http_listen))?;
    on_ready(addr);

    // The listener outlives the consumers' shutdown by a little: it stops with
    // its own token once they are done.
    let listener_stop = CancellationToken::new();
    let (listener, listener_task) = listener::spawn(
        listen_options,
        db.clone(),
        ListenerConfig {
            heartbeat_interval: config.heartbeat_interval,
            heartbeat_timeout: config.heartbeat_timeout,
            reconnect: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        },
        listener_stop.clone(),
    );

    let consumer = Arc::new(ConsumerConfig {
        worker: name.clone(),
        batch_size: config.batch_size,
        max_attempts: config.max_attempts,
        retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
    });
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
    // One deadline for the whole stop; the listener and the HTTP server get
    // what is left of it, at least a second, so the stop stays well inside
    // the process manager's wait.
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
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match consumer.next_batch(&db, &handler).await {
                Ok(report) => {
                    failures = 0;
                    if report.was_full(consumer.config()) {
                        // More is waiting: let another consumer join in.
                        wake.notify_one();
                        continue;
                    }
                    break;
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(consumer = index, failures, error = %format!("{:#}", anyhow::Error::from(error)), "batch failed; retrying");
                    }
                    let delay = Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
                        .delay(failures);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    break;
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
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
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
