//! Four workers against 20,000 events while their LISTEN connections are
//! killed every two seconds: every event is processed exactly once.

use crate::common;

use std::time::Duration;

use testkit::{TestDb, factory};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_process_twenty_thousand_events_exactly_once_while_listeners_are_killed() {
    let t = TestDb::new().await;
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let mut config = common::config(&t);
            config.name = Some(format!("load-{i}"));
            common::start(config)
        })
        .collect();

    let killer = {
        let t = t.clone();
        tokio::spawn(async move {
            let mut kills = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                t.exec(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'aplus-worker-listener%'",
                    t.name
                ))
                .await;
                kills += 1;
                if kills >= 1_000 {
                    return;
                }
            }
        })
    };

    for chunk in 0..40i64 {
        let batch = (0..500i64)
            .map(|i| factory::message(chunk * 500 + i + 1, 1, "chatter"))
            .collect();
        common::record_and_notify(&t, batch).await;
    }
    common::drained(&t, Duration::from_secs(240)).await;
    killer.abort();
    for w in workers {
        w.stop().await;
    }

    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 20_000);
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed' AND attempts = 1")
            .await,
        20_000
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM message_parses").await,
        20_000
    );
    // Each parse was written by the event that claimed it, once.
    assert_eq!(
        t.scalar("SELECT count(*) FROM message_parses p JOIN inbox i ON i.event_id = p.event_id")
            .await,
        20_000
    );
    // The listeners really were killed and came back.
    assert!(
        t.scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'aplus-worker-listener%'",
            t.name
        ))
        .await
            <= 4
    );
}
