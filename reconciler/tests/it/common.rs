//! Helpers shared by the reconciler's tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use outbox::consume::{ClaimedEvent, Consumer, ConsumerConfig, Handler, HandlerError};
use outbox::listener::{self, Listener, ListenerConfig};
use outbox::payload::Source;
use outbox::{Backoff, record};
use reconciler::{Horizons, PassConfig, PassOutcome, PassReport};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use service::db::{PoolSettings, connect_options};
use testkit::{TestDb, eventually, factory};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Records messages with their events, as the bot does, but never NOTIFYs:
/// orphans made on purpose. Returns the event ids.
pub async fn record_unnotified(t: &TestDb, ids: impl IntoIterator<Item = i64>) -> Vec<Uuid> {
    let batch: Vec<_> = ids
        .into_iter()
        .map(|i| factory::message(i, 1, "x"))
        .collect();
    let txn = t.db.begin().await.expect("begin");
    let recorded = record::record_messages(&txn, batch, Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    recorded
        .into_iter()
        .map(|(_, r)| r.event_id().expect("a new message"))
        .collect()
}

/// Inserts messages with plain SQL, without events: what a bug or a manual
/// import would leave behind.
pub async fn insert_bare_messages(t: &TestDb, first: i64, last: i64) {
    t.exec(&format!(
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, raw) \
         SELECT i, 1, 42, 'trader', 'no event ' || i, now(), '{{}}'::jsonb \
         FROM generate_series({first}::bigint, {last}::bigint) AS i"
    ))
    .await;
}

/// Waits until every event is older than `age` by the database clock, so a
/// grace of `age` counts each unclaimed one as an orphan.
pub async fn until_events_older_than(t: &TestDb, age: Duration) {
    let sql = format!(
        "SELECT count(*) FROM events WHERE created_at >= now() - interval '{} milliseconds'",
        age.as_millis()
    );
    eventually(
        Duration::from_secs(30),
        "every event to be older than the grace",
        || async { (t.scalar(&sql).await == 0).then_some(()) },
    )
    .await;
}

/// A pass configuration for tests: the defaults, named.
pub fn config(instance: &str) -> PassConfig {
    PassConfig::new(instance)
}

/// The database's clock.
pub async fn db_now(t: &TestDb) -> DateTime<Utc> {
    reconciler::horizon::database_now(&t.db)
        .await
        .expect("database clock")
}

/// Runs one pass at the database's `now` and returns its report.
pub async fn pass(t: &TestDb, config: &PassConfig) -> PassReport {
    let horizons = Horizons::from_database(&t.db, config)
        .await
        .expect("horizons");
    completed(
        reconciler::run_once(&t.db, config, horizons)
            .await
            .expect("pass"),
    )
}

/// Runs one pass at a chosen `now`.
pub async fn pass_at(t: &TestDb, config: &PassConfig, now: DateTime<Utc>) -> PassReport {
    let horizons = Horizons::at(now, config).expect("horizons");
    completed(
        reconciler::run_once(&t.db, config, horizons)
            .await
            .expect("pass"),
    )
}

pub fn completed(outcome: PassOutcome) -> PassReport {
    match outcome {
        PassOutcome::Completed(report) => {
            assert!(
                report.errors.is_empty(),
                "failed steps: {:?}",
                report.errors
            );
            *report
        }
        PassOutcome::Skipped => panic!("the pass was skipped"),
    }
}

/// A handler that applies nothing, and fails for the listed message ids.
#[derive(Clone, Default)]
pub struct TestHandler {
    pub failing: HashSet<i64>,
}

impl Handler for TestHandler {
    async fn handle(
        &self,
        _: &DatabaseTransaction,
        event: &ClaimedEvent,
    ) -> Result<(), HandlerError> {
        if self.failing.contains(&event.message_id) {
            anyhow::bail!("cannot parse message {}", event.message_id);
        }
        Ok(())
    }
}

/// Processes everything claimable now, with `max_attempts` attempts per event.
pub async fn drain(t: &TestDb, failing: &[i64], max_attempts: u32) {
    let config = ConsumerConfig {
        max_attempts,
        retry: Backoff::new(Duration::from_secs(600), Duration::from_secs(600)),
        ..ConsumerConfig::new("test-worker")
    };
    let handler = TestHandler {
        failing: failing.iter().copied().collect(),
    };
    Consumer::new(config)
        .drain(&t.db, &handler, &CancellationToken::new(), || {})
        .await
        .expect("batch");
}

/// Starts the worker's listener on a pool of its own.
pub fn start_listener(t: &TestDb, shutdown: &CancellationToken) -> Listener {
    let mut settings = PoolSettings::new("aplus-test-listener", 1);
    settings.statement_timeout = None;
    let connect = connect_options(&t.args(), &settings).expect("listener options");
    let config = ListenerConfig {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_timeout: Duration::from_secs(5),
        ..ListenerConfig::default()
    };
    let (listener, _task) = listener::spawn(connect, t.db.clone(), config, shutdown.clone());
    listener
}

/// A consumer that drains only when woken by its listener: no polling, so
/// an event that is never notified stays unprocessed.
pub fn start_consumer(
    t: &TestDb,
    listener: &Listener,
    shutdown: &CancellationToken,
) -> Arc<AtomicUsize> {
    let processed = Arc::new(AtomicUsize::new(0));
    let (db, wake, shutdown, counter) = (
        t.db.clone(),
        listener.wake.clone(),
        shutdown.clone(),
        processed.clone(),
    );
    tokio::spawn(async move {
        let mut consumer = Consumer::new(ConsumerConfig::new("test-consumer"));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
            }
            if let Ok(report) = consumer
                .drain(&db, &TestHandler::default(), &shutdown, || {})
                .await
            {
                counter.fetch_add(report.processed, Ordering::SeqCst);
            }
        }
    });
    processed
}
