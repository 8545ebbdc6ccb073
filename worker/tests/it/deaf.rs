//! A deaf listener (connected, receiving nothing) is found by the heartbeat
//! and replaced, while polling keeps the work flowing. Its own test binary:
//! the failpoint is process-wide.

use crate::common;

use std::time::{Duration, Instant};

use testkit::{TestDb, eventually, factory};

#[tokio::test]
async fn a_deaf_listener_is_replaced_and_polling_keeps_work_flowing_meanwhile() {
    let t = TestDb::new().await;
    let worker = common::start(common::config(&t));
    let listeners = || {
        let t = t.clone();
        async move {
            t.scalar(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'aplus-worker-listener%'",
                t.name
            ))
            .await
        }
    };
    eventually(Duration::from_secs(20), "the listener", || async {
        (listeners().await == 1).then_some(())
    })
    .await;
    let first_pid = t
        .scalar(&format!(
            "SELECT pid::bigint FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'aplus-worker-listener%'",
            t.name
        ))
        .await;

    fail::cfg("listener-deaf", "return").expect("failpoint");
    let deaf_since = Instant::now();
    // Work keeps flowing through the poll while notifications are dropped.
    common::record_and_notify(&t, (1..=50).map(|i| factory::message(i, 1, "x")).collect()).await;
    common::drained(&t, Duration::from_secs(20)).await;

    // The heartbeat (300 ms interval, 2 s timeout here) finds the deaf
    // connection and replaces it with a new backend.
    eventually(Duration::from_secs(20), "a new listener connection", || async {
        let pid = t
            .scalar(&format!(
                "SELECT coalesce(max(pid), 0)::bigint FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'aplus-worker-listener%'",
                t.name
            ))
            .await;
        (pid != 0 && pid != first_pid).then_some(())
    })
    .await;
    assert!(
        deaf_since.elapsed() < Duration::from_secs(10),
        "detected within 10 s"
    );
    fail::remove("listener-deaf");

    common::record_and_notify(&t, (51..=60).map(|i| factory::message(i, 1, "x")).collect()).await;
    common::drained(&t, Duration::from_secs(20)).await;
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        60
    );
    worker.stop().await;
}
