//! Group commit: the writer task writes what is queued as one transaction,
//! a full queue makes submitters wait instead of starting an outage, and a
//! write PostgreSQL refuses is rejected alone.

use std::sync::Arc;
use std::time::Duration;

use bot::convert::Update;
use bot::ingest::{self, Applied, EditResult, Write};
use bot::ledger::Ledger;
use bot::stats::Stats;
use bot::writer::Writer;
use outbox::payload::Source;
use outbox::record::{Deleted, Edited, MessageEdit, Recorded};
use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use service::db::PoolSettings;
use testkit::{TestDb, factory};
use tokio_util::sync::CancellationToken;

fn create(id: i64, content: &str) -> Write {
    Write::Create {
        message: factory::message(id, 1, content),
        source: Source::Gateway,
    }
}

fn edit(id: i64, content: &str) -> Write {
    Write::Edit(Update {
        channel_id: 1,
        edit: MessageEdit {
            id,
            content: Some(content.to_owned()),
            edited_at: None,
            embeds: None,
        },
        full: None,
    })
}

fn delete(id: i64) -> Write {
    Write::Delete { id, channel_id: 1 }
}

/// The writer task's own one-connection pool, as the bot builds it.
fn writer_pool(t: &TestDb) -> DatabaseConnection {
    let mut settings = PoolSettings::new("aplus-bot-writer-test", 1);
    settings.acquire_timeout = Duration::from_secs(3);
    t.pool(&settings)
}

/// An empty gap ledger on the test database.
fn ledger(t: &TestDb, stats: &Arc<Stats>) -> Arc<Ledger> {
    Arc::new(Ledger::new(t.db.clone(), Arc::clone(stats)))
}

/// A writer on the test database with its write loop running.
fn running_writer(t: &TestDb, queue: usize) -> (Arc<Writer>, Arc<Stats>, CancellationToken) {
    let stats = Arc::new(Stats::default());
    let writer = Arc::new(Writer::new(
        t.db.clone(),
        writer_pool(t),
        ledger(t, &stats),
        100,
        queue,
        Duration::from_millis(100),
        Arc::clone(&stats),
    ));
    let stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&writer).write_loop(stop.clone()));
    (writer, stats, stop)
}

#[tokio::test]
async fn creates_an_edit_and_deletes_of_the_same_messages_in_one_group_end_in_the_right_state() {
    let t = TestDb::new().await;
    let group = [
        create(70, "v1"),
        // The edit sees the create queued just before it.
        edit(70, "v2"),
        create(71, "doomed"),
        delete(71),
        // A delete before its create: the create is stored already deleted.
        delete(72),
        create(72, "late"),
        // A replay in the same group is a duplicate.
        create(70, "v1 again"),
    ];
    let outcome = ingest::apply(&t.db, &group)
        .await
        .expect("the group commits");
    assert!(outcome.notify_error.is_none());
    let applied = &outcome.applied;
    assert_eq!(applied.len(), group.len(), "one result per write");
    assert!(matches!(
        applied[1],
        Applied::Edited(EditResult::Edit(Edited::Updated { .. }))
    ));
    assert!(matches!(
        applied[3],
        Applied::Deleted(Deleted::Deleted { .. })
    ));
    assert_eq!(applied[4], Applied::Deleted(Deleted::Tombstoned));
    assert!(matches!(
        applied[5],
        Applied::Created {
            recorded: Recorded::Stored {
                tombstoned: true,
                ..
            },
            ..
        }
    ));
    assert_eq!(
        applied[6],
        Applied::Created {
            recorded: Recorded::Duplicate,
            source: Source::Gateway
        }
    );

    assert_eq!(
        t.scalar(
            "SELECT count(*) FROM messages WHERE id = 70 AND content = 'v2' AND deleted_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id IN (71, 72) AND deleted_at IS NOT NULL")
            .await,
        2
    );
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 3);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        3
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.updated' AND message_id = 70")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.deleted' AND message_id = 71")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(DISTINCT txid) FROM events").await,
        1,
        "the whole group is one transaction"
    );
    assert_eq!(outcome.event_ids().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_a_small_queue_waits_for_slots_and_stores_every_message_once_without_an_outage()
 {
    let t = TestDb::new().await;
    let (writer, stats, stop) = running_writer(&t, 4);

    // 2,000 submits from 40 tasks into a queue of 4: nearly every submit
    // finds the queue full and waits.
    let mut tasks = Vec::new();
    for task in 0..40i64 {
        let writer = Arc::clone(&writer);
        tasks.push(tokio::spawn(async move {
            for i in 0..50i64 {
                let id = 10_000 + task * 50 + i;
                writer.submit(create(id, "burst")).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter");
    }
    writer.settled().await;

    let s = stats.snapshot();
    assert_eq!(s.outages, 0, "a full queue is not an outage: {s:#?}");
    assert!(!writer.is_down());
    assert_eq!(s.buffer_overflow, 0, "{s:#?}");
    assert_eq!(s.buffer_high_water, 0, "nothing went to the outage buffer");
    assert_eq!(s.stored_gateway, 2_000, "{s:#?}");
    assert_eq!(s.database_rejected, 0);
    assert!(
        s.write_groups <= 1_000,
        "queued writes are taken as groups: {} groups",
        s.write_groups
    );
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 2_000);
    assert_eq!(
        t.scalar(
            "SELECT count(*) FROM messages m WHERE (SELECT count(*) FROM events e \
             WHERE e.message_id = m.id AND e.kind = 'message.created') = 1"
        )
        .await,
        2_000,
        "every message has exactly one event"
    );
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 2_000);
    stop.cancel();
}

#[tokio::test]
async fn a_write_the_database_refuses_is_rejected_alone_and_the_rest_of_its_group_is_stored() {
    let t = TestDb::new().await;
    // A check that fails on the data (SQLSTATE 23514): permanent.
    t.db.execute_unprepared(
        "ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content <> 'poison')",
    )
    .await
    .expect("constraint");
    let (writer, stats, stop) = running_writer(&t, 100);

    let group = vec![
        create(1, "a"),
        create(2, "b"),
        edit(1, "a2"),
        create(3, "poison"),
        create(4, "d"),
        delete(2),
        create(5, "e"),
    ];
    writer.write_group(group).await;

    let s = stats.snapshot();
    assert_eq!(s.database_rejected, 1, "only the culprit: {s:#?}");
    assert_eq!(s.outages, 0, "a data error is not an outage");
    assert_eq!(s.buffer_high_water, 0);
    assert_eq!(s.stored_gateway, 4);
    assert_eq!(s.edits_updated, 1);
    assert_eq!(s.deletes_deleted, 1);
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 4);
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 3").await,
        0
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 1 AND content = 'a2'")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 2 AND deleted_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        4
    );

    // The same through the queue.
    writer.submit(create(6, "poison")).await;
    writer.submit(create(7, "g")).await;
    writer.settled().await;
    let s = stats.snapshot();
    assert_eq!(s.database_rejected, 2);
    assert_eq!(s.stored_gateway, 5);
    assert_eq!(s.outages, 0);
    stop.cancel();
}

#[tokio::test]
async fn at_shutdown_the_writer_writes_what_is_queued_and_counts_what_comes_after() {
    let t = TestDb::new().await;
    let stats = Arc::new(Stats::default());
    let writer = Arc::new(Writer::new(
        t.db.clone(),
        writer_pool(&t),
        ledger(&t, &stats),
        100,
        1_000,
        Duration::from_millis(100),
        Arc::clone(&stats),
    ));
    for id in 1..=600 {
        writer.submit(create(id, "queued")).await;
    }
    assert_eq!(writer.queued(), 600);

    // Stopped before it starts: it still writes everything queued.
    let stop = CancellationToken::new();
    stop.cancel();
    Arc::clone(&writer).write_loop(stop).await;
    assert_eq!(writer.queued(), 0);
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 600);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 600);
    assert_eq!(stats.snapshot().write_groups, 2, "500 and then 100");

    // The queue is closed now: a late write is counted, not lost silently.
    writer.submit(create(601, "late")).await;
    writer.settled().await;
    assert_eq!(stats.snapshot().write_queue_closed, 1);
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 600);
}
