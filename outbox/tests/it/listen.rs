//! NOTIFY after commit, the LISTEN loop's reconnect and catch-up, heartbeats
//! and forged notifications.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outbox::consume::{ClaimedEvent, Consumer, ConsumerConfig, Handler, HandlerError};
use outbox::listener::{self, Listener, ListenerConfig};
use outbox::payload::Source;
use outbox::{notify, record};
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{DatabaseTransaction, TransactionTrait};
use service::db::{PoolSettings, connect_options};
use testkit::{TestDb, eventually, factory};
use tokio_util::sync::CancellationToken;

struct Noop;
impl Handler for Noop {
    async fn handle(&self, _: &DatabaseTransaction, _: &ClaimedEvent) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn listener_config() -> ListenerConfig {
    ListenerConfig {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(1_500),
        ..ListenerConfig::default()
    }
}

fn start_listener(t: &TestDb, shutdown: &CancellationToken) -> Listener {
    let mut settings = PoolSettings::new("aplus-test-listener", 1);
    settings.statement_timeout = None;
    let options = connect_options(&t.args(), &settings).expect("options");
    let (listener, _task) =
        listener::spawn(options, t.db.clone(), listener_config(), shutdown.clone());
    listener
}

/// A consumer that drains on every wake, as the worker does.
fn start_consumer(
    t: &TestDb,
    listener: &Listener,
    shutdown: &CancellationToken,
) -> Arc<std::sync::atomic::AtomicUsize> {
    let processed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (db, wake, shutdown, counter) = (
        t.db.clone(),
        listener.wake.clone(),
        shutdown.clone(),
        processed.clone(),
    );
    tokio::spawn(async move {
        let mut consumer = Consumer::new(ConsumerConfig::new("test"));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
            }
            if let Ok(r) = consumer.drain(&db, &Noop, &shutdown, || {}).await {
                counter.fetch_add(r.processed, Ordering::SeqCst);
            }
        }
    });
    processed
}

async fn record_one(t: &TestDb, id: i64) -> uuid::Uuid {
    let txn = t.db.begin().await.expect("begin");
    let r = record::record_message(&txn, factory::message(id, 1, "x"), Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    r.event_id().expect("stored")
}

#[tokio::test]
async fn a_notification_arrives_only_after_commit_and_carries_only_the_event_id() {
    let t = TestDb::new().await;
    let mut pg = PgListener::connect(&t.url)
        .await
        .expect("listen connection");
    pg.listen(outbox::CHANNEL).await.expect("listen");

    let txn = t.db.begin().await.expect("begin");
    let recorded = record::record_message(&txn, factory::message(1, 1, "x"), Source::Gateway)
        .await
        .expect("record");
    let event_id = recorded.event_id().expect("stored");
    let early = tokio::time::timeout(Duration::from_millis(300), pg.recv()).await;
    assert!(early.is_err(), "nothing may be notified before commit");
    txn.commit().await.expect("commit");
    notify::notify(&t.db, &[event_id]).await.expect("notify");

    let n = tokio::time::timeout(Duration::from_secs(10), pg.recv())
        .await
        .expect("a notification after commit")
        .expect("recv");
    assert_eq!(n.channel(), "events");
    assert_eq!(n.payload(), event_id.to_string());
}

#[tokio::test]
async fn the_listener_is_visible_in_pg_stat_activity_and_wakes_the_consumer() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    let processed = start_consumer(&t, &listener, &shutdown);
    eventually(Duration::from_secs(20), "a LISTEN \"events\" session", || async {
        let n = t
            .scalar(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query = 'LISTEN \"events\"' AND application_name = 'aplus-test-listener'",
                t.name
            ))
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert_eq!(
        t.scalar("SELECT listener_connections FROM pipeline_health")
            .await,
        1
    );

    let id = record_one(&t, 5).await;
    notify::notify(&t.db, &[id]).await.expect("notify");
    eventually(
        Duration::from_secs(10),
        "the event to be processed",
        || async { (processed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn the_listener_reconnects_after_termination_and_catches_up_without_a_notification() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    let processed = start_consumer(&t, &listener, &shutdown);
    eventually(
        Duration::from_secs(20),
        "the listener to connect",
        || async { listener.stats.is_connected().then_some(()) },
    )
    .await;

    for round in 0..3i64 {
        let connects = listener.stats.connects.load(Ordering::SeqCst);
        // Ten events, never notified, committed right as the listener's
        // connection is terminated: it can only find them by catching up.
        let txn = t.db.begin().await.expect("begin");
        let batch = (0..10)
            .map(|i| factory::message(100 * (round + 1) + i, 1, "x"))
            .collect();
        record::record_messages(&txn, batch, Source::Gateway)
            .await
            .expect("record");
        sea_orm::ConnectionTrait::execute_unprepared(
            &txn,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'aplus-test-listener'",
                t.name
            ),
        )
        .await
        .expect("terminate");
        txn.commit().await.expect("commit");
        eventually(Duration::from_secs(20), "a reconnect", || async {
            (listener.stats.connects.load(Ordering::SeqCst) > connects).then_some(())
        })
        .await;
        let expected = 10 * (round as usize + 1);
        eventually(
            Duration::from_secs(20),
            "the unnotified events to be processed",
            || async { (processed.load(Ordering::SeqCst) == expected).then_some(()) },
        )
        .await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn forged_notifications_change_nothing() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    let processed = start_consumer(&t, &listener, &shutdown);
    eventually(
        Duration::from_secs(20),
        "the listener to connect",
        || async { listener.stats.is_connected().then_some(()) },
    )
    .await;
    let long = "x".repeat(7_999);
    t.exec(&format!(
        "SELECT pg_notify('events', 'garbage'); SELECT pg_notify('events', '{}'); \
         SELECT pg_notify('events', '{long}'); SELECT pg_notify('events', 'hb:not-ours:1'); \
         SELECT pg_notify('events_control', 'explode');",
        uuid::Uuid::new_v4()
    ))
    .await;
    eventually(
        Duration::from_secs(10),
        "the forged notifications to be seen",
        || async { (listener.stats.ignored.load(Ordering::SeqCst) >= 3).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processed.load(Ordering::SeqCst), 0);
    assert_eq!(t.scalar("SELECT count(*) FROM inbox").await, 0);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 0);
    assert!(listener.stats.is_connected());
    shutdown.cancel();
}

#[tokio::test]
async fn heartbeats_come_back_while_the_connection_is_healthy() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    eventually(Duration::from_secs(20), "three heartbeats", || async {
        (listener.stats.heartbeats.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    assert_eq!(listener.stats.deaf_detected.load(Ordering::SeqCst), 0);
    assert_eq!(listener.stats.connects.load(Ordering::SeqCst), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn a_relisten_request_replaces_the_connection() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    eventually(
        Duration::from_secs(20),
        "the listener to connect",
        || async { listener.stats.is_connected().then_some(()) },
    )
    .await;
    // Requests within two seconds of a connect are ignored (flood guard).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    notify::relisten(&t.db).await.expect("relisten");
    eventually(Duration::from_secs(20), "a second connect", || async {
        (listener.stats.connects.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    assert_eq!(listener.stats.relistens.load(Ordering::SeqCst), 1);
    shutdown.cancel();
}
