//! Recovery from what the gateway and the database lose: REST backfill
//! after a new session, and the outage buffer while PostgreSQL is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    self, WAIT, ids, one, post_stored, post_until_overflow, server_of_our_own, start_ready,
    start_server, stop_server, stored_ids, wait_count, world,
};
use discord_sim::{GatewayFault, NewMessage, Target};
use testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_posted_during_an_invalid_session_are_recovered_from_history_over_several_pages() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    let before = w
        .sim
        .post(NewMessage::text(channel, "before the gap"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;

    // The session is discarded at once: nothing posted now is dispatched to
    // anyone, and serenity identifies again only after its restart delay.
    let calls_before = w.sim.rest_calls().len();
    w.sim.inject(
        Target::All,
        GatewayFault::InvalidSession { resumable: false },
    );
    let gap: Vec<u64> = (0..250)
        .map(|i| {
            w.sim
                .post(NewMessage::text(channel, format!("in the gap {i}")))
                .expect("posted")
        })
        .collect();
    assert!(
        gap.iter().all(|id| w.sim.dispatch_count(*id) == 0),
        "the gap is only in history"
    );
    w.sim
        .wait_for_identifies(2, WAIT)
        .await
        .expect("a new session");

    wait_count(&t.db, "SELECT count(*) FROM messages", 251).await;
    let after = w
        .sim
        .post(NewMessage::text(channel, "after the gap"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 252).await;
    let comparison = w
        .sim
        .ground_truth()
        .compare_channels(stored_ids(&t.db).await, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");
    assert!(gap[0] > before && after > gap[249]);

    let stats = bot.stats();
    assert_eq!(stats.stored_backfill, 250, "{stats:#?}");
    assert!(stats.readies >= 2, "{stats:#?}");
    let pages: Vec<_> = w
        .sim
        .rest_calls()
        .into_iter()
        .skip(calls_before)
        .filter(|c| c.path.ends_with("/messages") && c.query_param("after").is_some())
        .collect();
    assert!(
        pages.len() >= 3,
        "250 messages take three pages of 100: {pages:#?}"
    );
    let backfilled_events: i64 = one(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.created' AND payload->>'source' = 'backfill'",
    )
    .await;
    assert_eq!(backfilled_events, 250);

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_database_outage_under_a_steady_stream_loses_nothing_and_keeps_the_buffer_within_its_bound()
 {
    let (server, args, db) = server_of_our_own().await;

    let w = world(2).await;
    const BUFFER: usize = 50;
    let mut config = common::config(args, &w.sim, &w.channels);
    config.buffer = BUFFER;
    let bot = start_ready(config).await;

    // A steady stream, 20 messages a second, across two channels.
    let streaming = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicUsize::new(0));
    let stream = {
        let sim = w.sim.clone();
        let channels = w.channels.clone();
        let streaming = Arc::clone(&streaming);
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut posted = 0usize;
            while streaming.load(Ordering::Relaxed) {
                sim.post(NewMessage::text(
                    channels[posted % 2],
                    format!("stream {posted}"),
                ))
                .expect("posted");
                posted += 1;
                sent.store(posted, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            posted
        })
    };
    bot.wait_stats("the stream to flow", |s| s.stored() >= 20)
        .await;

    stop_server(&server).await;
    let outage_began = Instant::now();
    // The outage is the scenario itself: thirty seconds of a stopped server.
    let mut saw_not_ready = false;
    while outage_began.elapsed() < Duration::from_secs(30) {
        saw_not_ready |= !bot.handle.health().is_ready();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let during = bot.stats();
    assert!(bot.handle.database_down(), "the bot noticed the outage");
    assert!(saw_not_ready, "/readyz reported the outage");
    start_server(&server).await;

    // The bot recovers; twenty more messages stream in live, then stop and count.
    testkit::eventually(WAIT, "the outage to end", || async {
        (!bot.handle.database_down()).then_some(())
    })
    .await;
    let at_recovery = sent.load(Ordering::Relaxed);
    testkit::eventually(WAIT, "twenty more messages", || async {
        (sent.load(Ordering::Relaxed) >= at_recovery + 20).then_some(())
    })
    .await;
    streaming.store(false, Ordering::Relaxed);
    let posted = stream.await.expect("stream task");
    wait_count(&db, "SELECT count(*) FROM messages", posted as i64).await;
    wait_count(
        &db,
        "SELECT count(*) FROM events WHERE kind = 'message.created'",
        posted as i64,
    )
    .await;
    let comparison = w
        .sim
        .ground_truth()
        .compare_channels(stored_ids(&db).await, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");

    let stats = bot
        .wait_stats("the outage to end", |s| s.buffer_high_water > 0)
        .await;
    assert!(!bot.handle.database_down());
    assert!(
        stats.buffer_high_water <= BUFFER as u64,
        "the buffer kept its bound: {stats:#?}"
    );
    assert!(
        during.buffer_overflow > 0,
        "thirty seconds of stream overflow a buffer of {BUFFER}: {during:#?}"
    );
    // A write dropped from the full buffer is never retried from memory:
    // only the backfill can have stored its message.
    assert!(
        stats.stored_backfill >= stats.buffer_overflow,
        "backfill recovered what overflowed: {stats:#?}"
    );
    testkit::eventually(WAIT, "readiness to come back", || async {
        bot.handle.health().is_ready().then_some(())
    })
    .await;

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_posted_while_the_bot_was_down_is_backfilled_at_start_threads_and_recent_holes_included()
 {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let thread = w.sim.create_thread(channel, "NVDA").expect("a thread");
    let first = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    w.sim
        .post(NewMessage::text(channel, "in the channel"))
        .expect("posted");
    w.sim
        .post(NewMessage::text(thread, "in the thread"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 2).await;
    first.stop().await;

    // While the bot is down: new messages in the channel and the thread, and
    // one a minute older than the last stored message, as a write that was
    // in flight when a process died leaves behind.
    for i in 0..3 {
        w.sim
            .post_history(NewMessage::text(channel, format!("missed {i}")))
            .expect("posted");
        w.sim
            .post_history(NewMessage::text(thread, format!("missed in thread {i}")))
            .expect("posted");
    }
    let hole = w
        .sim
        .post_history(
            NewMessage::text(channel, "lost in flight")
                .at(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .expect("posted");
    let max_before: i64 = one(&t.db, "SELECT max(id) FROM messages").await;
    assert!(
        (hole as i64) < max_before,
        "the hole lies below the high-water mark"
    );

    let second = common::start(common::config(t.args(), &w.sim, &w.channels));
    wait_count(&t.db, "SELECT count(*) FROM messages", 9).await;
    let comparison = w
        .sim
        .ground_truth()
        .compare_channels(stored_ids(&t.db).await, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");
    assert_eq!(second.handle.channels().threads(), vec![thread]);

    second.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_dropped_from_the_full_outage_buffer_are_read_back_after_the_outage() {
    let (server, args, db) = server_of_our_own().await;
    let w = world(1).await;
    let channel = w.channels[0];
    const BUFFER: usize = 5;
    let mut config = common::config(args, &w.sim, &w.channels);
    config.buffer = BUFFER;
    let bot = start_ready(config).await;
    let stored = post_stored(&db, &w.sim, channel, 20).await;

    stop_server(&server).await;
    // New messages until the bot has noticed and its buffer is full.
    let mut posted = 20;
    post_until_overflow(&bot, &w.sim, channel, &mut posted).await;
    let dropped_before = bot.stats().buffer_overflow;
    let (edited, deleted) = stored.split_at(8);
    let deleted = &deleted[..6];
    for &id in edited {
        w.sim.edit(id, &format!("edited {id}")).expect("edit");
    }
    for &id in deleted {
        w.sim.delete(id).expect("delete");
    }
    // One message edited and then deleted: the delete wins.
    let edited_then_deleted = stored[19];
    w.sim
        .edit(edited_then_deleted, "edited, then deleted")
        .expect("edit");
    w.sim.delete(edited_then_deleted).expect("delete");
    let dropped = bot
        .wait_stats("every edit and delete to be dropped", |s| {
            s.buffer_overflow >= dropped_before + 16
        })
        .await;
    assert!(bot.handle.database_down(), "{dropped:#?}");

    start_server(&server).await;
    let stats = bot
        .wait_stats("the dropped edits and deletes to be read back", |s| {
            s.refetched >= 15
        })
        .await;
    assert_eq!(stats.refetched, 15, "one read per message: {stats:#?}");
    assert_eq!(stats.refetch_overflow, 0, "{stats:#?}");

    for &id in edited {
        let content: String = one(
            &db,
            &format!("SELECT content FROM messages WHERE id = {id}"),
        )
        .await;
        assert_eq!(content, format!("edited {id}"));
    }
    let gone: Vec<String> = deleted
        .iter()
        .chain([&edited_then_deleted])
        .map(ToString::to_string)
        .collect();
    wait_count(
        &db,
        &format!(
            "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL AND id IN ({})",
            gone.join(",")
        ),
        7,
    )
    .await;
    wait_count(
        &db,
        "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
        7,
    )
    .await;
    wait_count(
        &db,
        "SELECT count(*) FROM events WHERE kind = 'message.updated'",
        8,
    )
    .await;
    wait_count(
        &db,
        "SELECT count(*) FROM events WHERE kind = 'message.deleted'",
        7,
    )
    .await;
    // And nothing posted during the outage is missing (the ground truth
    // expects the messages Discord still has).
    wait_count(&db, "SELECT count(*) FROM messages", posted as i64).await;
    let live: Vec<u64> = ids(
        &db,
        "SELECT id FROM messages WHERE deleted_at IS NULL ORDER BY id",
    )
    .await
    .into_iter()
    .map(|id| u64::try_from(id).expect("stored ids are never negative"))
    .collect();
    let comparison = w.sim.ground_truth().compare_channels(live, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_made_while_the_bot_was_down_are_caught_up_from_recent_history() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let first = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            w.sim
                .post(NewMessage::text(channel, format!("message {i}")))
                .expect("posted"),
        );
    }
    wait_count(&t.db, "SELECT count(*) FROM messages", 10).await;
    // One edit the bot saw live; history must not count it again.
    w.sim.edit(ids[0], "edited live").expect("edit");
    first
        .wait_stats("the live edit", |s| s.edits_updated == 1)
        .await;
    first.stop().await;

    // While the bot is down: three edits (one of the message edited live
    // before), two deletes, two new messages.
    for &id in &ids[..3] {
        w.sim
            .edit(id, &format!("edited while down {id}"))
            .expect("edit");
    }
    for &id in &ids[7..9] {
        w.sim.delete(id).expect("delete");
    }
    for i in 0..2 {
        w.sim
            .post_history(NewMessage::text(channel, format!("new while down {i}")))
            .expect("posted");
    }

    let second = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    let stats = second
        .wait_stats("the changes made while down", |s| {
            s.history_edits + s.history_deletes >= 5
        })
        .await;
    wait_count(&t.db, "SELECT count(*) FROM messages", 12).await;
    assert_eq!(stats.history_edits, 3, "{stats:#?}");
    assert_eq!(stats.history_deletes, 2, "{stats:#?}");
    for &id in &ids[..3] {
        let content: String = one(
            &t.db,
            &format!("SELECT content FROM messages WHERE id = {id}"),
        )
        .await;
        assert_eq!(content, format!("edited while down {id}"));
    }
    wait_count(
        &t.db,
        &format!(
            "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL AND id IN ({}, {})",
            ids[7], ids[8]
        ),
        2,
    )
    .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
        2,
    )
    .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.updated'",
        4,
    )
    .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.deleted'",
        2,
    )
    .await;

    // The same for the gap of a new session in the same process (INVALID_SESSION,
    // not resumable): what changed in the gap shows only in history.
    w.sim.inject(
        Target::All,
        GatewayFault::InvalidSession { resumable: false },
    );
    w.sim.edit(ids[3], "edited in the gap").expect("edit");
    w.sim.delete(ids[4]).expect("delete");
    w.sim
        .wait_for_identifies(3, WAIT)
        .await
        .expect("a new session");
    let after = second
        .wait_stats("the changes made in the gap", |s| {
            s.history_edits + s.history_deletes >= 7
        })
        .await;
    assert_eq!(after.history_edits, 4, "{after:#?}");
    assert_eq!(after.history_deletes, 3, "{after:#?}");
    let content: String = one(
        &t.db,
        &format!("SELECT content FROM messages WHERE id = {}", ids[3]),
    )
    .await;
    assert_eq!(content, "edited in the gap");
    wait_count(
        &t.db,
        "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
        3,
    )
    .await;

    second.stop().await;
    w.sim.shutdown().await;
}
