//! The scheduled history sweep (what a healthy-looking gateway silently
//! dropped) and the gap ledger that outlives the process.

use std::time::Duration;

use crate::common::{
    self, WAIT, ids, one, post_stored, post_until_overflow, server_of_our_own, start, start_ready,
    start_server, stop_server, wait_count, world,
};
use discord_sim::{NewMessage, SilentLoss};
use testkit::TestDb;

/// Long enough for the sweep to count what it stores as missing, not as
/// still on its way.
const SETTLE: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_brings_back_what_a_healthy_gateway_silently_dropped_and_a_second_finds_nothing() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let mut config = common::config(t.args(), &w.sim, &w.channels);
    config.sweep_schedule = bot::sweep::SweepSchedule::parse("off").expect("valid");
    config.sweep_skip_after_backfill = Duration::ZERO;
    let bot = start_ready(config).await;

    let heard: Vec<u64> = (0..10)
        .map(|i| {
            w.sim
                .post(NewMessage::text(channel, format!("heard {i}")))
                .expect("posted")
        })
        .collect();
    wait_count(&t.db, "SELECT count(*) FROM messages", 10).await;

    // The session stays up; these events never reach it.
    w.sim
        .set_silent_loss(Some(SilentLoss { rate: 1.0, seed: 1 }));
    let dropped: Vec<u64> = (0..5)
        .map(|i| {
            w.sim
                .post(NewMessage::text(channel, format!("never delivered {i}")))
                .expect("posted")
        })
        .collect();
    for &id in &heard[..3] {
        w.sim.edit(id, &format!("edited {id}")).expect("edit");
    }
    for &id in &heard[3..5] {
        w.sim.delete(id).expect("delete");
    }
    // A heard message above every dropped one: a backfill from the largest
    // stored id would see none of them.
    w.sim.set_silent_loss(None);
    let newest = w
        .sim
        .post(NewMessage::text(channel, "heard last"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 11).await;
    // The newest stored message is deleted silently: nothing after it in
    // history, so only the end of history tells.
    w.sim
        .set_silent_loss(Some(SilentLoss { rate: 1.0, seed: 2 }));
    w.sim.delete(newest).expect("delete");
    w.sim.set_silent_loss(None);
    assert_eq!(w.sim.stats().silently_dropped, 11);
    assert_eq!(bot.stats().backfill_runs, 1, "no backfill was asked for");
    tokio::time::sleep(SETTLE).await;

    let outcome = bot
        .handle
        .sweeper()
        .sweep(channel)
        .await
        .expect("the sweep runs")
        .expect("not skipped");
    let r = &outcome.report;
    assert_eq!(
        (r.seen, r.missing, r.edits, r.deletes),
        (13, 5, 3, 3),
        "{outcome:?}"
    );
    for &id in &heard[..3] {
        let content: String = one(
            &t.db,
            &format!("SELECT content FROM messages WHERE id = {id}"),
        )
        .await;
        assert_eq!(content, format!("edited {id}"));
    }
    let swept = ids(
        &t.db,
        "SELECT message_id FROM events WHERE kind = 'message.created' \
         AND payload->>'source' = 'sweep' ORDER BY message_id",
    )
    .await;
    let expected: Vec<i64> = dropped.iter().map(|&id| id as i64).collect();
    assert_eq!(
        swept, expected,
        "each missing message stored with its event"
    );
    let live: Vec<u64> = ids(&t.db, "SELECT id FROM messages WHERE deleted_at IS NULL")
        .await
        .into_iter()
        .map(|id| id as u64)
        .collect();
    let comparison = w.sim.ground_truth().compare_channels(live, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");

    let row: (i64, i64, i64, i64) = (
        one(&t.db, "SELECT listed FROM upstream_sweeps").await,
        one(&t.db, "SELECT missing FROM upstream_sweeps").await,
        one(&t.db, "SELECT edits FROM upstream_sweeps").await,
        one(&t.db, "SELECT deletes FROM upstream_sweeps").await,
    );
    assert_eq!(row, (13, 5, 3, 3));
    let worst: i64 = one(
        &t.db,
        "SELECT (min(ratio) * 100)::bigint FROM upstream_coverage",
    )
    .await;
    assert_eq!(worst, 100, "every listed message is stored");

    // Nothing is left: a second sweep finds nothing and stores nothing twice.
    let again = bot
        .handle
        .sweeper()
        .sweep(channel)
        .await
        .expect("the sweep runs")
        .expect("not skipped");
    let r = &again.report;
    assert_eq!(
        (r.stored, r.missing, r.edits, r.deletes),
        (0, 0, 0, 0),
        "{again:?}"
    );
    wait_count(&t.db, "SELECT count(*) FROM upstream_sweeps", 2).await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.created'",
        16,
    )
    .await;

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_just_backfilled_from_below_the_window_is_not_swept_again() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let mut config = common::config(t.args(), &w.sim, &w.channels);
    config.sweep_schedule = bot::sweep::SweepSchedule::parse("off").expect("valid");
    // The first backfill of an empty database reads all of history.
    let bot = start_ready(config).await;
    let outcome = bot
        .handle
        .sweeper()
        .sweep(w.channels[0])
        .await
        .expect("no error");
    assert_eq!(outcome, None, "skipped");
    assert_eq!(
        bot.handle
            .sweeper()
            .counts()
            .skipped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_ledger_of_a_bot_stopped_during_an_outage_is_read_back_by_the_next_one() {
    let (server, args, db) = server_of_our_own().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let dir = std::env::temp_dir().join(format!("aplus-ledger-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut config = common::config(args, &w.sim, &w.channels);
    config.buffer = 5;
    config.shutdown_timeout = Duration::from_secs(1);
    config.ledger_file = dir.join("ledger");
    config.sweep_schedule = bot::sweep::SweepSchedule::parse("off").expect("valid");
    let bot = start_ready(config.clone()).await;
    let stored = post_stored(&db, &w.sim, channel, 12).await;

    stop_server(&server).await;
    let mut posted = 12;
    post_until_overflow(&bot, &w.sim, channel, &mut posted).await;
    let dropped_before = bot.stats().buffer_overflow;
    for &id in &stored[..4] {
        w.sim.edit(id, &format!("edited {id}")).expect("edit");
    }
    for &id in &stored[4..7] {
        w.sim.delete(id).expect("delete");
    }
    bot.wait_stats("the edits and deletes to be dropped", |s| {
        s.buffer_overflow >= dropped_before + 7
    })
    .await;
    // The process ends with the database still down: its memory is gone.
    bot.stop().await;

    let next = start(config);
    start_server(&server).await;
    next.wait_stats("the dropped edits and deletes to be read back", |s| {
        s.refetched >= 7
    })
    .await;
    for &id in &stored[..4] {
        testkit::eventually(WAIT, "the edit to be applied", || {
            let db = db.clone();
            async move {
                let content: String = one(
                    &db,
                    &format!("SELECT content FROM messages WHERE id = {id}"),
                )
                .await;
                (content == format!("edited {id}")).then_some(())
            }
        })
        .await;
    }
    wait_count(
        &db,
        "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
        3,
    )
    .await;
    wait_count(&db, "SELECT count(*) FROM messages", posted as i64).await;
    // Settled: nothing is left in the ledger.
    wait_count(&db, "SELECT count(*) FROM gap_refetch", 0).await;
    wait_count(&db, "SELECT count(*) FROM gap_losses", 0).await;

    next.stop().await;
    w.sim.shutdown().await;
    std::fs::remove_dir_all(&dir).expect("clean up");
}
