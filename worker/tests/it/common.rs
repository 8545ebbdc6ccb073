//! Shared helpers of the worker's tests.

use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use outbox::payload::Source;
use outbox::record::{self, NewMessage};
use sea_orm::TransactionTrait;
use testkit::{TestDb, factory};
use tokio_util::sync::CancellationToken;
use worker::WorkerConfig;

/// A short A+ post for Wednesday June 18th: one setup.
pub const SHORT: &str = "A+ Scalp Trade Setups — Wed Jun 18\n\nSPY\n🔼 Aggressive Breakout Above 596.90 🔼 599.80, 602.00, 605.50";
/// A longer A+ post for the same day: three setups.
pub const LONG: &str = "A+ Scalp Trade Setups — Wed Jun 18\n\nSPY\n🔼 Aggressive Breakout Above 596.90 🔼 599.80, 602.00, 605.50\n🔻 Aggressive Breakdown Below 590.00 🔻 588.00, 585.50, 583.00\n\nTSLA\n❌ Rejection Near 346.90 (343.20, 341.80, 339.50)";

/// A message in channel 1 posted `minutes` after noon UTC on 2025-06-18.
pub fn post(id: i64, minutes: i64, text: &str) -> NewMessage {
    let mut m = factory::message(id, 1, text);
    m.sent_at = Utc
        .with_ymd_and_hms(2025, 6, 18, 12, 0, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::minutes(minutes);
    m
}

/// A worker running in this process on the test database.
pub struct RunningWorker {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("worker task")
            .expect("worker result");
    }
}

/// Worker settings for tests: quick heartbeats and polls.
pub fn config(t: &TestDb) -> WorkerConfig {
    let mut config = WorkerConfig::for_database(t.args());
    config.heartbeat_interval = Duration::from_millis(300);
    config.heartbeat_timeout = Duration::from_secs(2);
    config.poll_interval = Duration::from_millis(500);
    config
}

pub fn start(config: WorkerConfig) -> RunningWorker {
    let shutdown = CancellationToken::new();
    let worker = worker::Worker::build(config).expect("worker settings");
    let task = tokio::spawn(worker.run(shutdown.clone()));
    RunningWorker { shutdown, task }
}

/// Records messages as the bot does: one transaction, then NOTIFY.
pub async fn record_and_notify(t: &TestDb, messages: Vec<NewMessage>) {
    let txn = t.db.begin().await.expect("begin");
    let results = record::record_messages(&txn, messages, Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    let ids: Vec<_> = results.iter().filter_map(|(_, r)| r.event_id()).collect();
    outbox::notify::notify(&t.db, &ids).await.expect("notify");
}

/// Waits until every event has an inbox row, and none is failed.
pub async fn drained(t: &TestDb, timeout: Duration) {
    testkit::eventually(timeout, "every event to be processed", || async {
        let pending = t
            .scalar("SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id AND i.status = 'processed')")
            .await;
        (pending == 0).then_some(())
    })
    .await;
}

/// Records `n` distinct A+ messages of one trading day, two setups each, in
/// transactions of 500: a backlog whose batches take a while to apply.
pub async fn seed_aplus_backlog(t: &TestDb, n: i64) {
    let text = "A+ Scalp Trade Setups — Wed Jun 18\n\nSPY\n🔼 Aggressive Breakout Above 596.90 🔼 599.80, 602.00, 605.50\n🔻 Aggressive Breakdown Below 590.00 🔻 588.00, 585.50, 583.00";
    let mut id = 1;
    while id <= n {
        let end = (id + 500).min(n + 1);
        let batch = (id..end)
            .map(|i| factory::message(i, 1, &format!("{text}\n#{i}")))
            .collect();
        record_and_notify(t, batch).await;
        id = end;
    }
}
