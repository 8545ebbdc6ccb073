//! LISTEN sessions that stopped consuming: `diagnose` reports them and names
//! the command that ends them, `recover --stale-listeners` and the pass end
//! them, and nobody else's session is ever touched.

use std::time::Duration;

use reconciler::tools::diagnose::Thresholds;
use reconciler::{Horizons, PassOutcome, listeners};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{ConnectOptions as _, Executor as _};
use service::db::{PoolSettings, connect_options};
use testkit::{TestDb, eventually};
use tokio_util::sync::CancellationToken;

const STALE_AFTER: Duration = Duration::from_secs(2);

/// A session that LISTENs under `application_name` and never reads again:
/// a stopped or wedged listener, as the server sees it.
async fn silent_listener(t: &TestDb, application_name: &str) -> (PgConnection, i32) {
    let options: PgConnectOptions = t.url.parse::<PgConnectOptions>().expect("url parses");
    let mut conn = options
        .application_name(application_name)
        .connect()
        .await
        .expect("connect");
    let pid: i32 = sea_orm::sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("pid");
    conn.execute(r#"LISTEN "events""#).await.expect("listen");
    (conn, pid)
}

/// The worker's real listener under a worker's application name: it records
/// its heartbeat, so it never counts as stale.
fn live_worker_listener(t: &TestDb, shutdown: &CancellationToken) -> outbox::listener::Listener {
    let mut settings = PoolSettings::new("aplus-worker-listener live", 1);
    settings.statement_timeout = None;
    let options = connect_options(&t.args(), &settings).expect("options");
    let config = outbox::listener::ListenerConfig {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(1_500),
        ..Default::default()
    };
    let (listener, _task) =
        outbox::listener::spawn(options, t.db.clone(), config, shutdown.clone());
    listener
}

/// Waits until the session `pid` has been silent past [`STALE_AFTER`].
async fn until_stale(t: &TestDb, pid: i32) {
    eventually(
        Duration::from_secs(30),
        "the silent listener to be past the stale bound",
        || async {
            let stale = listeners::stale(&t.db, STALE_AFTER).await.expect("stale");
            stale.iter().any(|l| l.pid == pid).then_some(())
        },
    )
    .await;
}

async fn alive(t: &TestDb, pid: i32) -> bool {
    t.scalar(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    ))
    .await
        == 1
}

async fn live_listener_pid(t: &TestDb) -> i32 {
    eventually(
        Duration::from_secs(15),
        "the live listener's heartbeat to be recorded",
        || async {
            let pid = t
                .scalar(
                    "SELECT coalesce(max(h.pid), 0)::bigint FROM listener_heartbeats h \
                 JOIN pg_stat_activity a ON a.pid = h.pid AND a.backend_start = h.backend_start \
                 WHERE a.application_name = 'aplus-worker-listener live' \
                   AND h.heard_at > now() - interval '2 seconds'",
                )
                .await;
            (pid != 0).then_some(pid as i32)
        },
    )
    .await
}

#[tokio::test]
async fn a_listener_that_stopped_reading_is_reported_and_ended_and_no_one_elses_session_is_touched()
{
    let t = TestDb::new().await;
    let shutdown = CancellationToken::new();
    let live = live_worker_listener(&t, &shutdown);
    let live_pid = live_listener_pid(&t).await;
    let (_stuck, stuck_pid) = silent_listener(&t, "aplus-worker-listener stuck").await;
    let (_other, other_pid) = silent_listener(&t, "someone-else").await;
    // Older than the bound, and the live listener has heard many heartbeats since.
    until_stale(&t, stuck_pid).await;

    let thresholds = Thresholds {
        listener_stale_after: STALE_AFTER,
        ..Thresholds::default()
    };
    let diagnosis = reconciler::tools::dashboard::diagnose(&t.db, &thresholds).await;
    let snapshot = diagnosis.snapshot.as_ref().expect("a snapshot");
    let stale: Vec<i32> = snapshot.stale_listeners.iter().map(|l| l.pid).collect();
    assert_eq!(stale, vec![stuck_pid], "{}", diagnosis.render());
    assert!(
        diagnosis
            .next_commands
            .contains(&"reconciler recover --stale-listeners".to_owned()),
        "{}",
        diagnosis.render()
    );
    assert!(
        diagnosis
            .headline
            .contains("1 worker LISTEN session has not read notifications"),
        "{}",
        diagnosis.headline
    );

    let dry = listeners::recover(&t.db, STALE_AFTER, true)
        .await
        .expect("dry run");
    assert_eq!(dry.listeners.len(), 1, "{}", dry.render());
    assert!(
        dry.render()
            .starts_with("Dry run: would end 1 LISTEN session")
    );
    assert!(alive(&t, stuck_pid).await, "a dry run ends nothing");

    let report = listeners::recover(&t.db, STALE_AFTER, false)
        .await
        .expect("recover");
    assert_eq!(
        report.listeners.iter().map(|l| l.pid).collect::<Vec<_>>(),
        vec![stuck_pid]
    );
    eventually(
        Duration::from_secs(10),
        "the stuck session to end",
        || async { (!alive(&t, stuck_pid).await).then_some(()) },
    )
    .await;
    assert!(
        alive(&t, other_pid).await,
        "another application's session is never ended"
    );
    assert!(
        alive(&t, live_pid).await,
        "a listener that hears its heartbeat is never ended"
    );
    assert!(live.stats.is_connected());

    let again = listeners::recover(&t.db, STALE_AFTER, false)
        .await
        .expect("recover again");
    assert!(again.listeners.is_empty(), "{}", again.render());
    assert!(again.render().starts_with("No worker LISTEN session"));
    shutdown.cancel();
}

#[tokio::test]
async fn the_pass_ends_stale_listeners_only_when_its_setting_says_so() {
    let t = TestDb::new().await;
    let (_stuck, stuck_pid) = silent_listener(&t, "aplus-worker-listener stuck").await;
    let (_other, other_pid) = silent_listener(&t, "aplus-worker other-pool").await;
    until_stale(&t, stuck_pid).await;

    let mut config = crate::common::config("listeners-off");
    config.listener_stale_after = STALE_AFTER;
    config.end_stale_listeners = false;
    let horizons = Horizons::from_database(&t.db, &config).await.expect("now");
    let outcome = reconciler::run_once(&t.db, &config, horizons)
        .await
        .expect("pass");
    let PassOutcome::Completed(report) = outcome else {
        panic!("the pass was skipped")
    };
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (report.stale_listeners, report.stale_listeners_ended),
        (1, 0)
    );
    assert!(report.notification_queue_usage.is_some());
    assert!(alive(&t, stuck_pid).await);

    config.end_stale_listeners = true;
    let horizons = Horizons::from_database(&t.db, &config).await.expect("now");
    let outcome = reconciler::run_once(&t.db, &config, horizons)
        .await
        .expect("pass");
    let report = outcome.report().expect("completed");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (report.stale_listeners, report.stale_listeners_ended),
        (1, 1)
    );
    assert!(
        outcome.render().contains("1 stale, 1 ended"),
        "{}",
        outcome.render()
    );
    eventually(
        Duration::from_secs(10),
        "the stuck session to end",
        || async { (!alive(&t, stuck_pid).await).then_some(()) },
    )
    .await;
    assert!(
        alive(&t, other_pid).await,
        "only listeners' sessions are ended"
    );
}
