//! Claiming and completing events: exactly-once effects across concurrent
//! consumers, retries, dead events, and the watermark.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox::consume::{self, ClaimedEvent, ConsumerConfig, Handler, HandlerError};
use outbox::payload::Source;
use outbox::{Backoff, record, watermark};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use testkit::{TestDb, factory};

/// Records `n` messages (ids from `first`), in transactions of 500.
async fn seed(t: &TestDb, first: i64, n: i64) {
    let mut id = first;
    while id < first + n {
        let end = (id + 500).min(first + n);
        let txn = t.db.begin().await.expect("begin");
        let batch = (id..end).map(|i| factory::message(i, 1, "x")).collect();
        record::record_messages(&txn, batch, Source::Gateway)
            .await
            .expect("record");
        txn.commit().await.expect("commit");
        id = end;
    }
}

/// An effect per event: a row in `effects`, whose primary key makes a second
/// application fail loudly. Events of messages listed in `poison` fail.
#[derive(Clone, Default)]
struct CountingHandler {
    poison: HashSet<i64>,
    seen: Arc<Mutex<Vec<uuid::Uuid>>>,
}

impl Handler for CountingHandler {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &ClaimedEvent,
    ) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(event.id);
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO effects (event_id) VALUES ($1)",
            [event.id.into()],
        ))
        .await?;
        if self.poison.contains(&event.message_id) {
            anyhow::bail!("poison message {}", event.message_id);
        }
        Ok(())
    }
}

async fn with_effects_table(t: &TestDb) {
    t.exec("CREATE TABLE effects (event_id uuid PRIMARY KEY)")
        .await;
}

fn fast_retry(worker: &str) -> ConsumerConfig {
    ConsumerConfig {
        max_attempts: 3,
        retry: Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
        ..ConsumerConfig::new(worker)
    }
}

#[tokio::test]
async fn four_consumers_process_five_thousand_events_exactly_once() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    seed(&t, 1, 5_000).await;
    let poison: HashSet<i64> = [7, 777, 4_321].into_iter().collect();

    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = t.db.clone();
        let handler = CountingHandler {
            poison: poison.clone(),
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move {
            let config = fast_retry(&format!("w{w}"));
            let mut idle_rounds = 0;
            let mut total = consume::BatchReport::default();
            while idle_rounds < 20 {
                let r = consume::process_batch(&db, &config, &handler)
                    .await
                    .expect("batch");
                total.processed += r.processed;
                total.dead += r.dead;
                total.duplicates += r.duplicates;
                if r.claimed == 0 {
                    idle_rounds += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                } else {
                    idle_rounds = 0;
                }
                if w == 0 {
                    watermark::advance(&db, 4).await.expect("advance");
                }
            }
            total
        }));
    }
    let mut processed = 0;
    let mut dead = 0;
    for task in tasks {
        let r = task.await.expect("task");
        processed += r.processed;
        dead += r.dead;
    }
    assert_eq!(processed, 4_997);
    assert_eq!(dead, 3);
    assert_eq!(t.scalar("SELECT count(*) FROM inbox").await, 5_000);
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        4_997
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'dead' AND attempts = 3 AND last_error LIKE 'poison message%'")
            .await,
        3
    );
    // Effects of processed events are there once (primary key); the failed
    // attempts of poison events rolled back with their savepoints.
    assert_eq!(t.scalar("SELECT count(*) FROM effects").await, 4_997);
    assert_eq!(
        t.scalar("SELECT count(*) FROM effects f JOIN inbox i ON i.event_id = f.event_id WHERE i.status <> 'processed'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_second_delivery_of_a_processed_event_applies_nothing() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    seed(&t, 1, 3).await;
    let handler = CountingHandler::default();
    let config = fast_retry("w");
    let first = consume::process_batch(&t.db, &config, &handler)
        .await
        .expect("batch");
    assert_eq!(first.processed, 3);
    // Nothing is claimable any more, however often the consumer asks.
    for _ in 0..3 {
        let again = consume::process_batch(&t.db, &config, &handler)
            .await
            .expect("batch");
        assert_eq!(again.claimed, 0);
    }
    assert_eq!(t.scalar("SELECT count(*) FROM effects").await, 3);
}

#[tokio::test]
async fn a_failed_event_is_retried_after_its_backoff_and_then_succeeds() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    seed(&t, 1, 1).await;
    let config = ConsumerConfig {
        retry: Backoff::new(Duration::from_millis(300), Duration::from_millis(300)),
        ..fast_retry("w")
    };
    let failing = CountingHandler {
        poison: [1].into_iter().collect(),
        ..Default::default()
    };
    let r = consume::process_batch(&t.db, &config, &failing)
        .await
        .expect("batch");
    assert_eq!(r.failed, 1);
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'failed' AND attempts = 1 AND next_attempt_at > now()")
            .await,
        1
    );
    // Not due yet.
    let healthy = CountingHandler::default();
    let early = consume::process_batch(&t.db, &config, &healthy)
        .await
        .expect("batch");
    assert_eq!(early.claimed, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = consume::process_batch(&t.db, &config, &healthy)
        .await
        .expect("batch");
    assert_eq!(late.processed, 1);
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed' AND attempts = 2")
            .await,
        1
    );
}

#[tokio::test]
async fn a_panicking_handler_is_recorded_as_a_failure_not_a_crash() {
    #[derive(Clone)]
    struct Panics;
    impl Handler for Panics {
        async fn handle(
            &self,
            _: &DatabaseTransaction,
            event: &ClaimedEvent,
        ) -> Result<(), HandlerError> {
            if event.message_id == 2 {
                panic!("parser bug");
            }
            Ok(())
        }
    }
    let t = TestDb::new().await;
    seed(&t, 1, 3).await;
    let r = consume::process_batch(&t.db, &fast_retry("w"), &Panics)
        .await
        .expect("batch");
    assert_eq!((r.processed, r.failed), (2, 1));
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'failed' AND last_error LIKE 'handler panicked: parser bug%'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_watermark_stops_at_the_oldest_unprocessed_event_and_then_moves_past_it() {
    let t = TestDb::new().await;
    seed(&t, 1, 10).await;
    let before = watermark::current(&t.db).await.expect("wm");
    // Nothing processed: the watermark may not pass any event.
    let wm = watermark::advance(&t.db, 4).await.expect("advance");
    let first_txid = t.scalar("SELECT min(txid::text::bigint) FROM events").await as u64;
    assert!(
        wm <= first_txid,
        "watermark {wm} passed unprocessed txid {first_txid}"
    );
    assert!(wm >= before);

    let handler = CountingHandler::default();
    t.exec("CREATE TABLE effects (event_id uuid PRIMARY KEY)")
        .await;
    consume::process_batch(&t.db, &fast_retry("w"), &handler)
        .await
        .expect("batch");
    let last_txid = t.scalar("SELECT max(txid::text::bigint) FROM events").await as u64;
    // Transaction ids are cluster-wide: a transaction still running anywhere
    // on the server (another test's, in another database) holds the horizon
    // back for a moment. The watermark passes once those have finished.
    testkit::eventually(
        Duration::from_secs(30),
        "the watermark to pass every processed event",
        || async {
            let wm = watermark::advance(&t.db, 4).await.expect("advance");
            (wm > last_txid).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_consumer_claims_an_event_that_an_older_transaction_commits_after_newer_ones() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    // The older transaction takes its transaction id first and commits last.
    let older = t.db.begin().await.expect("begin");
    record::record_message(&older, factory::message(1, 1, "late"), Source::Gateway)
        .await
        .expect("record");
    seed(&t, 2, 3).await;

    let mut consumer = consume::Consumer::new(fast_retry("w"));
    let handler = CountingHandler::default();
    let first = consumer.next_batch(&t.db, &handler).await.expect("batch");
    assert_eq!(first.processed, 3, "the newer events, committed");
    older.commit().await.expect("commit");
    // Straight away, well inside the rescan interval: the cursor must not
    // have moved past the older transaction's event.
    let second = consumer.next_batch(&t.db, &handler).await.expect("batch");
    assert_eq!(second.processed, 1);
    assert_eq!(t.scalar("SELECT count(*) FROM effects").await, 4);
}

#[tokio::test]
async fn events_another_consumer_held_and_released_are_claimed_within_the_rescan_interval() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    seed(&t, 1, 10).await;
    // Another consumer holds the first five, as an open batch does.
    let holder = t.db.begin().await.expect("begin");
    holder
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM events ORDER BY txid, id LIMIT 5 FOR UPDATE",
        ))
        .await
        .expect("lock");

    let mut consumer = consume::Consumer::new(fast_retry("w"));
    let handler = CountingHandler::default();
    let first = consumer.next_batch(&t.db, &handler).await.expect("batch");
    assert_eq!(first.processed, 5, "the five nobody held");
    // Its batch rolls back: the five are claimable again, behind the cursor.
    holder.rollback().await.expect("rollback");
    let started = std::time::Instant::now();
    let mut processed = 0;
    while processed < 5 {
        assert!(
            started.elapsed() < consume::RESCAN_INTERVAL + Duration::from_secs(2),
            "the released events were not claimed within the rescan interval"
        );
        processed += consumer
            .next_batch(&t.db, &handler)
            .await
            .expect("batch")
            .processed;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.scalar("SELECT count(*) FROM effects").await, 10);
}

/// The claim keeps its own form of the pending predicate (it must lock the
/// rows it reads; see `consume::claim`), so it is checked here against the
/// one definition, the SQL function `outbox_pending_events()`, on a
/// database holding every kind of event: completed below the watermark,
/// failed with the retry not yet due, dead, and new on either side of it.
#[tokio::test]
async fn the_claim_takes_exactly_the_pending_events() {
    let t = TestDb::new().await;
    with_effects_table(&t).await;
    seed(&t, 1, 40).await;
    t.exec(
        "INSERT INTO inbox (event_id, status, attempts, processed_at, worker) \
         SELECT id, 'processed', 1, now(), 'earlier' FROM events WHERE message_id <= 10",
    )
    .await;
    t.exec(
        "INSERT INTO inbox (event_id, status, attempts, next_attempt_at, worker) \
         SELECT id, 'failed', 1, now() + interval '1 hour', 'earlier' \
         FROM events WHERE message_id BETWEEN 11 AND 15",
    )
    .await;
    t.exec(
        "INSERT INTO inbox (event_id, status, attempts, last_error, worker) \
         SELECT id, 'dead', 8, 'gave up', 'earlier' FROM events WHERE message_id BETWEEN 16 AND 18",
    )
    .await;
    watermark::advance(&t.db, 4).await.expect("advance");
    seed(&t, 41, 10).await;

    let pending: HashSet<uuid::Uuid> =
        t.db.query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM outbox_pending_events()",
        ))
        .await
        .expect("pending events")
        .iter()
        .map(|row| row.try_get_by::<uuid::Uuid, _>("id").expect("id"))
        .collect();
    assert_eq!(pending.len(), 32, "22 older and 10 newer events");

    let handler = CountingHandler::default();
    let config = ConsumerConfig {
        batch_size: 1_000,
        ..fast_retry("w")
    };
    let report = consume::process_batch(&t.db, &config, &handler)
        .await
        .expect("batch");
    let claimed: HashSet<uuid::Uuid> = handler.seen.lock().unwrap().iter().copied().collect();
    assert_eq!(report.claimed, claimed.len());
    assert_eq!(claimed, pending);
}
