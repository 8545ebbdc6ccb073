//! The repair pass against a real PostgreSQL: orphans re-fired and then
//! processed, two instances never acting twice, missing events written
//! exactly once, bounded scanning that resumes, and pruning by age.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use reconciler::{Horizons, PassOutcome, Reconciler, Schedule, ServiceConfig};
use sea_orm::sqlx::postgres::PgListener;
use service::db::PoolSettings;
use testkit::{TestDb, eventually};
use tokio_util::sync::CancellationToken;

/// Collects event notifications until `quiet` passes without one.
async fn notifications(listener: &mut PgListener, quiet: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(n) = tokio::time::timeout(quiet, listener.recv()).await {
        seen.push(n.expect("notification").payload().to_owned());
    }
    seen
}

#[tokio::test]
async fn orphans_made_on_purpose_are_refired_with_exactly_one_notification_each() {
    let t = TestDb::new().await;
    let orphans = record_unnotified(&t, 1..=5).await;
    let mut listener = PgListener::connect(&t.url)
        .await
        .expect("listen connection");
    listener.listen(outbox::CHANNEL).await.expect("listen");

    let mut config = config("rec-1");
    config.orphan_grace = Duration::from_secs(2);
    until_events_older_than(&t, config.orphan_grace).await;
    // Younger than the grace: in flight, not an orphan.
    let young = record_unnotified(&t, [6]).await;

    let report = pass(&t, &config).await;
    assert_eq!(report.orphans_refired, 5);
    assert_eq!(report.missing_events_created, 0);

    let seen = notifications(&mut listener, Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 5, "one notification per orphan: {seen:?}");
    let seen: HashSet<String> = seen.into_iter().collect();
    let expected: HashSet<String> = orphans.iter().map(|id| id.to_string()).collect();
    assert_eq!(seen, expected);
    assert!(!seen.contains(&young[0].to_string()));
}

#[tokio::test]
async fn orphans_are_processed_within_the_grace_plus_one_schedule_period() {
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let listener = start_listener(&t, &shutdown);
    let processed = start_consumer(&t, &listener, &shutdown);
    eventually(Duration::from_secs(20), "the worker to listen", || async {
        listener.stats.is_connected().then_some(())
    })
    .await;
    // Let the consumer's catch-up scan after connecting find nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    record_unnotified(&t, 1..=5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        processed.load(Ordering::SeqCst),
        0,
        "without a notification or a poll the worker never sees them"
    );

    let grace = Duration::from_secs(1);
    let period = Duration::from_secs(1);
    let mut pass_config = config("rec-service");
    pass_config.orphan_grace = grace;
    let service_config = ServiceConfig {
        pass: pass_config,
        schedule: Schedule::parse("* * * * * *").expect("every second"),
        http_listen: "127.0.0.1:0".parse().expect("literal address"),
        metrics_listen: None,
        migrate: false,
        thresholds: Default::default(),
    };
    let started = Instant::now();
    let service = tokio::spawn(
        Reconciler::build(t.db.clone(), service_config)
            .expect("valid settings")
            .run(shutdown.clone()),
    );
    // Generous slack for a shared two-core machine on top of grace + period.
    eventually(
        grace + period + Duration::from_secs(5),
        "the orphans to be processed",
        || async { (processed.load(Ordering::SeqCst) == 5).then_some(()) },
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        5
    );

    shutdown.cancel();
    service
        .await
        .expect("service task")
        .expect("service stops cleanly");
    assert!(t.scalar("SELECT count(*) FROM reconciler_runs").await >= 1);
    eprintln!("orphans processed {took:?} after the reconciler started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconcilers_started_together_never_double_act() {
    let t = TestDb::new().await;
    record_unnotified(&t, 1..=2_000).await;
    insert_bare_messages(&t, 10_001, 12_000).await;
    let mut listener = PgListener::connect(&t.url)
        .await
        .expect("listen connection");
    listener.listen(outbox::CHANNEL).await.expect("listen");

    let mut config = config("rec");
    config.orphan_grace = Duration::from_millis(1);
    config.scan_page = 100;
    config.orphan_limit = 10_000;
    let (a, b) = (
        t.pool(&PoolSettings::new("rec-a", 4)),
        t.pool(&PoolSettings::new("rec-b", 4)),
    );
    let horizons = Horizons::from_database(&t.db, &config)
        .await
        .expect("horizons");
    let (mut ca, mut cb) = (config.clone(), config.clone());
    ca.instance = "rec-a".into();
    cb.instance = "rec-b".into();
    let (ra, rb) = tokio::join!(
        reconciler::run_once(&a, &ca, horizons),
        reconciler::run_once(&b, &cb, horizons)
    );
    let outcomes = [ra.expect("pass a"), rb.expect("pass b")];
    let acted: Vec<_> = outcomes.iter().filter_map(PassOutcome::report).collect();
    assert_eq!(acted.len(), 1, "exactly one acts: {outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PassOutcome::Skipped)
            .count(),
        1
    );
    let report = acted[0];
    assert_eq!(report.missing_events_created, 2_000);
    assert_eq!(report.orphans_refired, 2_000);

    let seen = notifications(&mut listener, Duration::from_secs(2)).await;
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        seen.len(),
        4_000,
        "2,000 new events and 2,000 orphans, once each"
    );
    assert_eq!(unique.len(), 4_000);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 4_000);
    assert_eq!(t.scalar("SELECT count(*) FROM reconciler_runs").await, 1);
}

#[tokio::test]
async fn a_pass_is_skipped_while_another_instance_holds_the_lock() {
    let t = TestDb::new().await;
    insert_bare_messages(&t, 1, 3).await;
    let other = t.pool(&PoolSettings::new("other-reconciler", 1));
    let held = reconciler::service::lock::PassLock::try_acquire(&other)
        .await
        .expect("lock query")
        .expect("lock is free");
    let config = config("rec-1");
    let horizons = Horizons::from_database(&t.db, &config)
        .await
        .expect("horizons");
    let outcome = reconciler::run_once(&t.db, &config, horizons)
        .await
        .expect("pass");
    assert_eq!(outcome, PassOutcome::Skipped);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 0);

    held.release().await;
    let report = pass(&t, &config).await;
    assert_eq!(report.missing_events_created, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_inserted_without_events_get_exactly_one_event_each_even_when_passes_race_or_repeat()
 {
    let t = TestDb::new().await;
    insert_bare_messages(&t, 1, 300).await;
    let config = config("rec");

    // Two passes racing on two connections, twice over.
    for round in 0..2 {
        let (a, b) = (
            t.pool(&PoolSettings::new("rec-a", 3)),
            t.pool(&PoolSettings::new("rec-b", 3)),
        );
        let horizons = Horizons::from_database(&t.db, &config)
            .await
            .expect("horizons");
        let (ra, rb) = tokio::join!(
            reconciler::run_once(&a, &config, horizons),
            reconciler::run_once(&b, &config, horizons)
        );
        let created: u64 = [ra.expect("a"), rb.expect("b")]
            .iter()
            .filter_map(PassOutcome::report)
            .map(|r| r.missing_events_created)
            .sum();
        assert_eq!(created, if round == 0 { 300 } else { 0 }, "round {round}");
    }

    // Passes running while messages keep arriving, some through the bot's
    // path (message and event together) and some without events.
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..20i64 {
                let base = 1_000 + i * 10;
                record_unnotified(&t, base..base + 5).await;
                insert_bare_messages(&t, base + 5, base + 9).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    while !writer.is_finished() {
        pass(&t, &config).await;
    }
    writer.await.expect("writer");
    pass(&t, &config).await;
    let again = pass(&t, &config).await;
    assert_eq!(again.missing_events_created, 0);

    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 500);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        500
    );
    assert_eq!(
        t.scalar(
            "SELECT count(*) FROM messages m WHERE (SELECT count(*) FROM events e \
             WHERE e.message_id = m.id AND e.kind = 'message.created') <> 1"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_pass_rescans_only_the_safety_margin_after_catching_up() {
    let t = TestDb::new().await;
    // Received 10 minutes ago, one millisecond apart.
    t.exec(
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, raw, received_at) \
         SELECT i, 1, 42, 'trader', 'x', now(), '{}'::jsonb, \
                now() - interval '10 minutes' + i * interval '1 millisecond' \
         FROM generate_series(1, 250) AS i",
    )
    .await;
    let mut config = config("rec");
    config.scan_page = 100;
    config.scan_pages = 1;

    let first = pass(&t, &config).await;
    assert_eq!(
        (first.missing_events_created, first.scan_complete),
        (100, false)
    );
    let second = pass(&t, &config).await;
    assert!(!second.scan_complete);
    let third = pass(&t, &config).await;
    assert!(third.scan_complete);
    assert_eq!(
        first.missing_events_created + second.missing_events_created + third.missing_events_created,
        250
    );
    // Caught up: the next pass looks back only the safety margin (2 min),
    // which holds none of these messages.
    let steady = pass(&t, &config).await;
    assert_eq!(steady.messages_scanned, 0);
    assert!(steady.scan_complete);
}

#[tokio::test]
async fn a_transaction_bigger_than_the_page_budget_does_not_stall_the_scan() {
    let t = TestDb::new().await;
    // One statement: all 250 share one received_at.
    insert_bare_messages(&t, 1, 250).await;
    let mut config = config("rec");
    config.scan_page = 100;
    config.scan_pages = 1;
    let mut created = 0;
    for _ in 0..4 {
        created += pass(&t, &config).await.missing_events_created;
    }
    assert_eq!(created, 250);
}

#[tokio::test]
async fn pruning_removes_old_processed_rows_and_keeps_failed_dead_waiting_and_every_message() {
    let t = TestDb::new().await;
    record_unnotified(&t, 1..=10).await;
    drain(&t, &[], 8).await;
    record_unnotified(&t, [11]).await;
    drain(&t, &[11], 1).await; // dead after its only attempt
    record_unnotified(&t, [12]).await;
    drain(&t, &[12], 5).await; // failed, retry in 10 min
    record_unnotified(&t, [13]).await; // never claimed
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        10
    );

    let mut config = config("rec");
    config.prune_page = 3;
    config.prune_pages = 2;

    let today = pass(&t, &config).await;
    assert_eq!((today.pruned_events, today.pruned_inbox), (0, 0));

    // Forty days from now, everything is past the 30-day retention.
    let later = db_now(&t).await + chrono::Duration::days(40);
    let first = pass_at(&t, &config, later).await;
    assert_eq!(
        (first.pruned_events, first.pruned_inbox),
        (6, 6),
        "two pages of three"
    );
    let second = pass_at(&t, &config, later).await;
    assert_eq!((second.pruned_events, second.pruned_inbox), (4, 4));
    let third = pass_at(&t, &config, later).await;
    assert_eq!(third.pruned_events, 0);
    // Each pass's run record is past the retention at the next one.
    assert_eq!(
        (first.pruned_runs, second.pruned_runs, third.pruned_runs),
        (1, 1, 1)
    );
    assert_eq!(t.scalar("SELECT count(*) FROM reconciler_runs").await, 1);

    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 13);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 3);
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status IN ('failed', 'dead')")
            .await,
        2
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        0
    );
    assert_eq!(third.dead_events, 1);
    // No message lost its event to pruning and got a second one.
    assert_eq!(third.missing_events_created, 0);
}

#[tokio::test]
async fn every_count_of_a_pass_is_recorded_in_reconciler_runs() {
    let t = TestDb::new().await;
    insert_bare_messages(&t, 1, 4).await;
    record_unnotified(&t, [10]).await;
    drain(&t, &[10], 1).await;
    let report = pass(&t, &config("rec-recorded")).await;
    let run_id = report.run_id.expect("recorded");
    let row =
        |column: &str| format!("SELECT {column}::bigint FROM reconciler_runs WHERE id = {run_id}");
    assert_eq!(t.scalar(&row("missing_events_created")).await, 4);
    assert_eq!(t.scalar(&row("dead_events")).await, 1);
    assert_eq!(
        t.scalar(&format!(
            "SELECT count(*) FROM reconciler_runs WHERE id = {run_id} AND instance = 'rec-recorded' \
             AND ratio IS NOT NULL AND processing_rate IS NOT NULL \
             AND messages_scanned_through = started_at AND error IS NULL"
        ))
        .await,
        1
    );
    assert!(report.watermark.is_some());
}
