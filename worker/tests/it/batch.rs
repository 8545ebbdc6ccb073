//! Set-based batches decide exactly what one event at a time decides.

use crate::common;

use std::time::Duration;

use crate::common::{LONG, SHORT, post};
use chrono::Utc;
use outbox::record::{self, MessageEdit};
use sea_orm::TransactionTrait;
use testkit::TestDb;

const THURSDAY: &str = "A+ Scalp Trade Setups — Thu Jun 19\n\nQQQ\n🔼 Aggressive Breakout Above 530.00 🔼 532.00, 534.00";

/// Two trading days' posts, re-posts, chatter, and messages that are edited
/// (onto another day, out of A+) and deleted before any event is handled, so
/// one batch holds several events of one message.
async fn record_history(t: &TestDb) {
    common::record_and_notify(
        t,
        vec![
            post(1, 0, SHORT),
            post(2, 10, LONG),
            post(3, 20, LONG),
            post(4, 30, "good morning"),
            post(5, 40, SHORT),
            post(6, 50, THURSDAY),
            post(7, 60, LONG),
        ],
    )
    .await;
    let txn = t.db.begin().await.expect("begin");
    let edit = |id: i64, text: &str, seconds: i64| MessageEdit {
        id,
        content: Some(text.to_owned()),
        edited_at: Some(Utc::now() + chrono::Duration::seconds(seconds)),
        embeds: None,
    };
    record::record_edit(&txn, edit(5, THURSDAY, 1))
        .await
        .expect("edit");
    record::record_edit(&txn, edit(1, "never mind", 1))
        .await
        .expect("edit");
    record::record_edit(&txn, edit(1, SHORT, 2))
        .await
        .expect("edit");
    record::record_delete(&txn, 2, 1).await.expect("delete");
    record::record_edit(&txn, edit(7, "moved to another channel", 1))
        .await
        .expect("edit");
    txn.commit().await.expect("commit");
}

/// Every message's status, superseding message, setups and current setups.
async fn outcome(t: &TestDb) -> Vec<String> {
    let mut rows = Vec::new();
    for id in 1..=7 {
        let status = t
            .text(&format!(
                "SELECT p.status || ' ' || coalesce(p.superseded_by::text, '-') || ' ' || \
                 coalesce(p.trading_day::text, '-') || ' ' || \
                 (SELECT count(*) FROM setups s WHERE s.message_id = p.message_id) || ' ' || \
                 (SELECT count(*) FROM setups s WHERE s.message_id = p.message_id AND s.is_current) || ' ' || \
                 (SELECT count(*) FROM ticker_bias b WHERE b.message_id = p.message_id) \
                 FROM message_parses p WHERE p.message_id = {id}"
            ))
            .await;
        rows.push(format!("{id}: {status}"));
    }
    rows
}

async fn processed_with_batches_of(size: u32) -> Vec<String> {
    let t = TestDb::new().await;
    record_history(&t).await;
    let mut config = common::config(&t);
    config.batch_size = size;
    config.concurrency = 1;
    let worker = common::start(config);
    common::drained(&t, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status <> 'processed'")
            .await,
        0
    );
    outcome(&t).await
}

#[tokio::test]
async fn one_batch_of_everything_decides_what_one_event_at_a_time_decides() {
    let together = processed_with_batches_of(100).await;
    let one_by_one = processed_with_batches_of(1).await;
    assert_eq!(together, one_by_one);
    // And what they decide is the policy: on Wednesday 2 (the first post of
    // the long text) is deleted before it was ever parsed, so 3 stands and
    // replaces 1 (edited away and back); 5, edited onto Thursday's text and
    // posted before 6, is the first post of that text there.
    let expected = [
        "1: superseded 3 2025-06-18 1 0 1",
        "2: retracted - - 0 0 0",
        "3: current - 2025-06-18 3 3 2",
        "4: not_aplus - - 0 0 0",
        "5: current - 2025-06-19 1 1 1",
        "6: duplicate 5 2025-06-19 1 0 1",
        "7: not_aplus - - 0 0 0",
    ];
    assert_eq!(together, expected);
}
