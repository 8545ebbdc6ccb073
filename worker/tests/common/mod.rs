//! Shared helpers of the worker's tests.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use outbox::payload::Source;
use outbox::record::{self, NewMessage};
use sea_orm::TransactionTrait;
use testkit::TestDb;
use tokio_util::sync::CancellationToken;
use worker::WorkerConfig;

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
    let task = tokio::spawn(worker::run(config, shutdown.clone(), |_| {}));
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
