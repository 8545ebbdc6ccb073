//! The `reconciler` binary against a real PostgreSQL: `diagnose` exit codes
//! and output in states built on purpose, `audit`, `recover`, `once`,
//! `relisten`, and the schedule flag.

use std::process::Output;
use std::time::Duration;

use crate::common::*;
use sea_orm::sqlx::postgres::PgListener;
use testkit::{Role, TestDb};

/// Runs the binary with `DATABASE_URL` set (or not).
async fn reconciler(database_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reconciler"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL");
    for var in [
        "RECONCILER_ORPHAN_GRACE",
        "RECONCILER_SCHEDULE",
        "RECONCILER_HTTP_LISTEN",
    ] {
        command.env_remove(var);
    }
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().await.expect("run the reconciler binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not json ({e}): {}", stdout(o)))
}

/// A session that LISTENs like a worker, so `pipeline_health` sees a listener.
async fn worker_listening(t: &TestDb) -> PgListener {
    let mut l = PgListener::connect(&t.url)
        .await
        .expect("listen connection");
    l.listen(outbox::CHANNEL).await.expect("listen");
    l
}

#[tokio::test]
async fn diagnose_exits_0_when_healthy_and_says_so_in_the_first_line() {
    let t = TestDb::new().await;
    let _listening = worker_listening(&t).await;
    record_unnotified(&t, 1..=12).await;
    drain(&t, &[], 8).await;
    pass(&t, &config("rec-1")).await;

    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Healthy: 12 messages in the last hour, all processed within"),
        "{text}"
    );
    assert!(text.contains("Listener"), "{text}");
    assert!(!text.contains("Next:"), "{text}");

    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["snapshot"]["messages_1h"], 12);
    assert_eq!(v["snapshot"]["listener_connections"], 1);
}

#[tokio::test]
async fn diagnose_calls_an_idle_pipeline_healthy() {
    let t = TestDb::new().await;
    let _listening = worker_listening(&t).await;
    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(
            "Healthy: no messages in the last hour; no message stored yet, nothing waiting"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn diagnose_exits_1_with_waiting_events_and_no_listener_and_names_the_next_command() {
    let t = TestDb::new().await;
    record_unnotified(&t, 1..=30).await;
    drain(&t, &[], 8).await;
    record_unnotified(&t, [31, 32]).await;
    pass(&t, &config("rec-1")).await;
    until_events_older_than(&t, Duration::from_secs(1)).await;

    let out = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["diagnose", "--grace", "1s"],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Degraded: 2 events waiting, oldest "),
        "{text}"
    );
    assert!(first.ends_with("; no worker is listening"), "{text}");
    assert!(
        text.contains("1. start the worker: supervisorctl start worker"),
        "{text}"
    );

    let v = json(
        &reconciler(
            Some(&t.url_as(Role::Reconciler)),
            &["diagnose", "--grace", "1s", "--json"],
        )
        .await,
    );
    assert_eq!(v["verdict"], "degraded");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["snapshot"]["orphans"], 2);
    assert_eq!(
        v["next_commands"][0],
        "start the worker: supervisorctl start worker"
    );
}

#[tokio::test]
async fn diagnose_exits_1_when_a_history_sweep_found_messages_the_gateway_never_delivered() {
    let t = TestDb::new().await;
    let _listening = worker_listening(&t).await;
    pass(&t, &config("rec-1")).await;
    t.exec(
        "INSERT INTO upstream_sweeps (channel_id, window_start, window_end, listed, missing) \
         VALUES (1372012942848954388, now() - interval '2 hours', now(), 240, 6)",
    )
    .await;
    let out = reconciler(Some(&t.url), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Degraded: silent gateway loss: history sweeps stored 6 messages"),
        "{text}"
    );
    assert!(first.contains("channel 1372012942848954388"), "{text}");
    let v = json(&reconciler(Some(&t.url), &["diagnose", "--json"]).await);
    assert_eq!(v["snapshot"]["sweeps"]["losses_1h"][0]["missing"], 6);
}

#[tokio::test]
async fn diagnose_exits_2_with_dead_events() {
    let t = TestDb::new().await;
    let _listening = worker_listening(&t).await;
    record_unnotified(&t, 1..=20).await;
    drain(&t, &[7], 1).await;
    pass(&t, &config("rec-1")).await;

    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("Unhealthy: 1 dead event used up every attempt"),
        "{text}"
    );
    assert!(text.contains("reconciler recover --dead"), "{text}");
    let v = json(&reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose", "--json"]).await);
    assert_eq!(v["verdict"], "unhealthy");
    assert_eq!(v["snapshot"]["dead_events"], 1);
}

#[tokio::test]
async fn diagnose_exits_2_when_the_ratio_is_far_off() {
    let t = TestDb::new().await;
    let _listening = worker_listening(&t).await;
    record_unnotified(&t, 1..=5).await;
    drain(&t, &[], 8).await;
    insert_bare_messages(&t, 100, 109).await;

    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("Unhealthy: 10 messages in the last hour have no event (ratio 0.333)"),
        "{text}"
    );
    assert!(text.contains("reconciler once"), "{text}");

    // The repair the diagnosis names makes the pipeline whole again.
    let once = reconciler(Some(&t.url_as(Role::Reconciler)), &["once"]).await;
    assert_eq!(once.status.code(), Some(0), "{}", stdout(&once));
    assert!(stdout(&once).contains("10 written"), "{}", stdout(&once));
    drain(&t, &[], 8).await;
    let out = reconciler(Some(&t.url_as(Role::Reconciler)), &["diagnose"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[tokio::test]
async fn diagnose_exits_2_with_a_clear_message_when_the_database_cannot_be_reached() {
    let port = testkit::cluster::free_port().expect("a free port");
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let out = reconciler(Some(&url), &["diagnose"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("Unhealthy: the database cannot be reached"),
        "{text}"
    );
    assert!(text.contains("pg_isready"), "{text}");

    let v = json(&reconciler(Some(&url), &["diagnose", "--json"]).await);
    assert_eq!(v["verdict"], "unhealthy");
    assert!(v["snapshot"].is_null());
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn audit_groups_failures_by_error_and_lists_the_oldest_orphans() {
    let t = TestDb::new().await;
    record_unnotified(&t, 1..=10).await;
    drain(&t, &[3, 4, 5], 1).await;
    let orphans = record_unnotified(&t, [20, 21]).await;
    until_events_older_than(&t, Duration::from_secs(1)).await;

    let out = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["audit", "--since", "1h", "--grace", "1s"],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("cannot parse message N"), "{text}");
    assert!(text.contains(&orphans[0].to_string()), "{text}");
    assert!(text.contains("never claimed"), "{text}");

    let v = json(
        &reconciler(
            Some(&t.url_as(Role::Reconciler)),
            &["audit", "--since", "1h", "--grace", "1s", "--json"],
        )
        .await,
    );
    assert_eq!(v["totals"]["events"], 12);
    assert_eq!(v["totals"]["dead"], 3);
    assert_eq!(v["totals"]["waiting"], 2);
    assert_eq!(v["by_error"][0]["events"], 3);
    assert_eq!(v["by_error"][0]["pattern"], "cannot parse message N");
    assert_eq!(v["by_attempts"][0]["attempts"], 1);
    assert_eq!(v["oldest_orphans"][0]["message_id"], 20);
}

#[tokio::test]
async fn recover_dry_run_changes_nothing_and_recover_dead_replays() {
    let t = TestDb::new().await;
    record_unnotified(&t, 1..=4).await;
    drain(&t, &[2, 3], 1).await;

    let dry = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["recover", "--dead", "--dry-run"],
    )
    .await;
    assert_eq!(dry.status.code(), Some(0));
    assert!(
        stdout(&dry).starts_with("Dry run: would replay 2 dead events"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'dead'")
            .await,
        2
    );

    let done = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["recover", "--dead", "--since", "1h"],
    )
    .await;
    assert_eq!(done.status.code(), Some(0));
    assert!(
        stdout(&done).starts_with("Replayed 2 of 2 dead events"),
        "{}",
        stdout(&done)
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'dead'")
            .await,
        0
    );
    drain(&t, &[], 8).await;
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        4
    );
}

#[tokio::test]
async fn recover_refires_orphans_and_says_how_many() {
    let t = TestDb::new().await;
    let ids = record_unnotified(&t, 1..=3).await;
    let mut listener = worker_listening(&t).await;
    until_events_older_than(&t, Duration::from_secs(1)).await;

    let dry = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["recover", "--dry-run", "--grace", "1s"],
    )
    .await;
    assert!(
        stdout(&dry).starts_with(
            "Dry run: would re-fire 3 orphaned events (3 never claimed, 0 overdue for retry)"
        ),
        "{}",
        stdout(&dry)
    );
    let done = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["recover", "--grace", "1s", "--json"],
    )
    .await;
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(json(&done)["acted"], 3);
    let mut seen = Vec::new();
    while let Ok(n) = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await {
        seen.push(n.expect("notification").payload().to_owned());
    }
    seen.sort();
    let mut expected: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn relisten_with_no_worker_says_to_start_one_and_exits_1() {
    let t = TestDb::new().await;
    let out = reconciler(
        Some(&t.url_as(Role::Reconciler)),
        &["relisten", "--wait", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("supervisorctl start worker"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn the_schedule_flag_rejects_garbage_with_a_clear_error() {
    let out = reconciler(
        Some("postgres://postgres@127.0.0.1:1/x"),
        &["run", "--schedule", "every minute"],
    )
    .await;
    // A usage error: 64 (EX_USAGE), never diagnose's 2 (unhealthy).
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'every minute'"), "{err}");
    assert!(err.contains("expected 5 fields"), "{err}");
}

#[tokio::test]
async fn a_usage_error_exits_64_and_a_missing_database_url_78() {
    let out = reconciler(None, &["diagnose", "--no-such-flag"]).await;
    assert_eq!(out.status.code(), Some(64), "{}", stdout(&out));
    let out = reconciler(None, &["run"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
}
