//! The LISTEN loop: a dedicated connection, reconnects with backoff, a
//! catch-up signal after every (re)connect, and a self-NOTIFY heartbeat.
//!
//! Notifications are hints. The listener turns each valid one into a wake-up
//! of the consumer ([`Listener::wake`]), which then scans the table; it never
//! trusts a payload beyond "something may be waiting". After every connect it
//! LISTENs first and only then signals a catch-up scan, so nothing committed
//! in between can be missed. A heartbeat it sends itself every
//! `heartbeat_interval` must come back within `heartbeat_timeout`; if not,
//! the connection is dead, half-open or deaf, and is replaced.
//!
//! Every heartbeat also records, in `listener_heartbeats`, when this LISTEN
//! session last read a heartbeat back. The server cannot tell from the
//! session itself whether its client still reads: a LISTEN session is idle
//! either way, and one whose client died or stopped reading holds back every
//! notification. The reconciler reads the record to find and end such
//! sessions (`reconciler recover --stale-listeners`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use service::retry::{LogPolicy, until_ok};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sql::stmt;
use crate::{Backoff, CHANNEL, CONTROL_CHANNEL};

/// Heartbeat payloads start with this; event payloads are bare UUIDs.
const HEARTBEAT_PREFIX: &str = "hb:";

/// The LISTEN session's own identity, as `pg_stat_activity` shows it. Read
/// before the LISTENs, so that `LISTEN "events"` stays the session's last
/// statement.
const SESSION_IDENTITY: &str = "SELECT pid, backend_start, coalesce(application_name, '') \
     FROM pg_stat_activity WHERE pid = pg_backend_pid()";

/// Records when the LISTEN session last read its own heartbeat back. Keyed by
/// `pid`, with `backend_start` beside it: a later session that reuses the pid
/// replaces the row, and a reader matches both, so a row never speaks for
/// another session. The time is the database's clock less the heartbeat's
/// age on this host.
const RECORD_HEARD: &str = "INSERT INTO listener_heartbeats (pid, backend_start, application_name, heard_at) \
     VALUES ($1, $2, $3, now() - make_interval(secs => $4)) \
     ON CONFLICT (pid) DO UPDATE SET backend_start = excluded.backend_start, \
       application_name = excluded.application_name, heard_at = excluded.heard_at";

/// The LISTEN session, as the server knows it.
#[derive(Debug, Clone)]
struct Session {
    pid: i32,
    backend_start: DateTime<Utc>,
    application_name: String,
}

/// The `application_name` prefix of workers' LISTEN sessions
/// (`aplus-worker-listener <worker name>`): the reconciler finds stale
/// listeners by it, so the worker and the reconciler must agree on it.
pub const LISTENER_APPLICATION_PREFIX: &str = "aplus-worker-listener";

/// Timing of the listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// How often the listener NOTIFYs itself.
    pub heartbeat_interval: Duration,
    /// A heartbeat not back within this declares the connection dead or deaf.
    pub heartbeat_timeout: Duration,
    /// Delay between reconnect attempts.
    pub reconnect: Backoff,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(6),
            reconnect: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// Counters and state, shared with health checks and metrics.
#[derive(Debug, Default)]
pub struct ListenerStats {
    connected: AtomicBool,
    /// Successful connects (the first one included).
    pub connects: AtomicU64,
    /// Valid event notifications received.
    pub notifications: AtomicU64,
    /// Notifications ignored: not a UUID, not ours, or forged.
    pub ignored: AtomicU64,
    /// Own heartbeats received back.
    pub heartbeats: AtomicU64,
    /// Connections replaced because a heartbeat did not come back.
    pub deaf_detected: AtomicU64,
    /// Connections replaced because an operator asked (`relisten`).
    pub relistens: AtomicU64,
    last_notification: std::sync::Mutex<Option<Instant>>,
    last_heartbeat: std::sync::Mutex<Option<Instant>>,
}

impl ListenerStats {
    /// True while a LISTEN connection is established.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// When the last valid event notification arrived.
    pub fn last_notification(&self) -> Option<Instant> {
        *self
            .last_notification
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// When the last own heartbeat came back.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        metrics::gauge!("aplus_listener_connected").set(if connected { 1.0 } else { 0.0 });
    }
}

/// Handle of a running listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Woken on every valid notification and after every (re)connect.
    pub wake: Arc<Notify>,
    /// Shared state.
    pub stats: Arc<ListenerStats>,
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Shutdown,
    Lost(String),
    Deaf,
    Relisten,
}

/// Starts the listener task.
///
/// `connect` describes the listener's own connection (give it its own
/// `application_name`); `db` is any other connection, used to send heartbeats.
pub fn spawn(
    connect: PgConnectOptions,
    db: DatabaseConnection,
    config: ListenerConfig,
    shutdown: CancellationToken,
) -> (Listener, tokio::task::JoinHandle<()>) {
    let listener = Listener {
        wake: Arc::new(Notify::new()),
        stats: Arc::new(ListenerStats::default()),
    };
    let handle = listener.clone();
    let task = tokio::spawn(async move {
        run(connect, db, config, handle, shutdown).await;
    });
    (listener, task)
}

async fn run(
    options: PgConnectOptions,
    db: DatabaseConnection,
    config: ListenerConfig,
    listener: Listener,
    shutdown: CancellationToken,
) {
    loop {
        // The first failure and then every tenth at `warn`: a database that
        // is down for minutes must not flood the log.
        let Some((pg_listener, session)) = until_ok(
            "LISTEN connection",
            config.reconnect,
            LogPolicy::Every(10),
            &shutdown,
            || connect(&options),
        )
        .await
        else {
            return;
        };
        listener.stats.connects.fetch_add(1, Ordering::Relaxed);
        listener.stats.set_connected(true);
        // LISTEN is in place: anything committed from now on notifies us, and
        // the consumer's scan picks up everything committed before.
        listener.wake.notify_one();

        let ended = serve(pg_listener, session, &db, &config, &listener, &shutdown).await;
        listener.stats.set_connected(false);
        match ended {
            Ended::Shutdown => return,
            Ended::Lost(reason) => {
                tracing::warn!(%reason, "LISTEN connection lost; reconnecting")
            }
            Ended::Deaf => {
                listener.stats.deaf_detected.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("aplus_listener_deaf_total").increment(1);
                tracing::warn!("LISTEN connection is deaf (heartbeat did not return); replacing it")
            }
            Ended::Relisten => {
                listener.stats.relistens.fetch_add(1, Ordering::Relaxed);
                tracing::info!("relisten requested; replacing the LISTEN connection")
            }
        }
        metrics::counter!("aplus_listener_reconnects_total").increment(1);
        // A short pause before reconnecting: a server that just dropped us is
        // often restarting, and clients reconnecting in lockstep make it worse.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.reconnect.delay(1)) => {}
        }
    }
}

/// Opens a new connection and LISTENs on it.
///
/// Each connection gets a pool of its own, which the listener holds alone:
/// dropping the listener closes the connection. A shared pool would take a
/// deaf or half-open connection back and hand it out again.
async fn connect(
    options: &PgConnectOptions,
) -> Result<(PgListener, Option<Session>), sea_orm::sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnects are ours to make, so that each one is followed by a catch-up.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    // Without its identity the listener still works; only its heartbeats go
    // unrecorded, and the reconciler then judges it by its connect time.
    let session = match sea_orm::sqlx::query_as::<_, (i32, DateTime<Utc>, String)>(SESSION_IDENTITY)
        .fetch_optional(&mut listener)
        .await
    {
        Ok(row) => row.map(|(pid, backend_start, application_name)| Session {
            pid,
            backend_start,
            application_name,
        }),
        Err(error) => {
            tracing::debug!(%error, "cannot read the LISTEN session's identity");
            None
        }
    };
    // The control channel first: `LISTEN "events"` stays the connection's last
    // query, which is how `pipeline_health` recognises a listener.
    listener.listen(CONTROL_CHANNEL).await?;
    listener.listen(CHANNEL).await?;
    Ok((listener, session))
}

/// Reads notifications on a task of its own, so that receiving is never
/// cancelled halfway; the connection is dropped with the task.
fn spawn_reader(
    mut pg_listener: PgListener,
) -> (
    mpsc::Receiver<Result<PgNotification, String>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        loop {
            let item = match pg_listener.try_recv().await {
                Ok(Some(notification)) => Ok(notification),
                Ok(None) => Err("connection closed".to_owned()),
                Err(error) => Err(error.to_string()),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    (rx, task)
}

async fn serve(
    pg_listener: PgListener,
    session: Option<Session>,
    db: &DatabaseConnection,
    config: &ListenerConfig,
    listener: &Listener,
    shutdown: &CancellationToken,
) -> Ended {
    let (mut notifications, reader) = spawn_reader(pg_listener);
    let token = Uuid::new_v4().simple().to_string();
    let connected_at = Instant::now();
    let mut last_seen = Instant::now();
    let mut sent: u64 = 0;
    let mut ticker = tokio::time::interval(config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let ended = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ended::Shutdown,
            item = notifications.recv() => {
                let notification = match item {
                    Some(Ok(n)) => n,
                    Some(Err(reason)) => break Ended::Lost(reason),
                    None => break Ended::Lost("reader stopped".to_owned()),
                };
                if deaf_failpoint() {
                    continue;
                }
                match classify(&notification, &token) {
                    Received::Event => {
                        listener.stats.notifications.fetch_add(1, Ordering::Relaxed);
                        *listener.stats.last_notification.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                        metrics::counter!("aplus_listener_notifications_total", "kind" => "event").increment(1);
                        listener.wake.notify_one();
                    }
                    Received::OwnHeartbeat => {
                        last_seen = Instant::now();
                        listener.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                        *listener.stats.last_heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Some(last_seen);
                    }
                    Received::OtherHeartbeat => {}
                    Received::Relisten => {
                        // A forged flood of these must not keep us reconnecting.
                        if connected_at.elapsed() >= Duration::from_secs(2) {
                            break Ended::Relisten;
                        }
                    }
                    Received::Ignored => {
                        listener.stats.ignored.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("aplus_listener_notifications_total", "kind" => "ignored").increment(1);
                        tracing::debug!(channel = notification.channel(), payload_len = notification.payload().len(), "ignoring a notification that is not an event id");
                    }
                }
            }
            _ = ticker.tick() => {
                if last_seen.elapsed() > config.heartbeat_timeout {
                    break Ended::Deaf;
                }
                sent += 1;
                let payload = format!("{HEARTBEAT_PREFIX}{token}:{sent}");
                // A failed heartbeat is not itself an error: if the database is
                // down, the missing echo replaces the connection in due time.
                // Nor may it hang the loop: sqlx cannot set client keepalives,
                // so a statement on a half-open pooled connection would wait
                // for the kernel's retransmissions (many minutes); bounded, a
                // missing echo is found out at the next tick.
                let beat = db.execute_raw(stmt("SELECT pg_notify($1, $2)", [CHANNEL.into(), payload.into()]));
                match tokio::time::timeout(config.heartbeat_timeout, beat).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "heartbeat not sent"),
                    Err(_) => tracing::debug!("heartbeat not sent in time"),
                }
                if let Some(session) = &session {
                    let record = db.execute_raw(stmt(
                        RECORD_HEARD,
                        [
                            session.pid.into(),
                            session.backend_start.into(),
                            session.application_name.clone().into(),
                            last_seen.elapsed().as_secs_f64().into(),
                        ],
                    ));
                    match tokio::time::timeout(config.heartbeat_timeout, record).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => tracing::debug!(%error, "heartbeat not recorded"),
                        Err(_) => tracing::debug!("heartbeat not recorded in time"),
                    }
                }
            }
        }
    };
    reader.abort();
    ended
}

enum Received {
    Event,
    OwnHeartbeat,
    OtherHeartbeat,
    Relisten,
    Ignored,
}

fn classify(notification: &PgNotification, token: &str) -> Received {
    let payload = notification.payload();
    if notification.channel() == CONTROL_CHANNEL {
        return if payload == "relisten" {
            Received::Relisten
        } else {
            Received::Ignored
        };
    }
    if let Some(rest) = payload.strip_prefix(HEARTBEAT_PREFIX) {
        return match rest.split_once(':') {
            Some((t, _)) if t == token => Received::OwnHeartbeat,
            Some(_) => Received::OtherHeartbeat,
            None => Received::Ignored,
        };
    }
    // Only the canonical hyphenated form the bot sends is accepted.
    if payload.len() == 36 && Uuid::try_parse(payload).is_ok() {
        Received::Event
    } else {
        Received::Ignored
    }
}

/// Test hook: when the `listener-deaf` failpoint is on, every notification is
/// dropped as if the connection had gone deaf.
fn deaf_failpoint() -> bool {
    fail::fail_point!("listener-deaf", |_| true);
    false
}
