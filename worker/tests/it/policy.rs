//! The trading-day policy through the pipeline: duplicates, supersedes,
//! edits that re-parse, deletes that retract.

use crate::common;

use std::time::Duration;

use crate::common::{LONG, SHORT, post};
use chrono::Utc;
use outbox::record::{self, MessageEdit};
use sea_orm::TransactionTrait;
use testkit::TestDb;

async fn status(t: &TestDb, id: i64) -> String {
    let n = |s: &str| {
        format!("SELECT count(*) FROM message_parses WHERE message_id = {id} AND status = '{s}'")
    };
    for s in [
        "current",
        "superseded",
        "duplicate",
        "not_aplus",
        "retracted",
    ] {
        if t.scalar(&n(s)).await == 1 {
            return s.to_owned();
        }
    }
    "none".to_owned()
}

async fn current_setups(t: &TestDb, id: i64) -> i64 {
    t.scalar(&format!(
        "SELECT count(*) FROM setups WHERE message_id = {id} AND is_current"
    ))
    .await
}

async fn edit(t: &TestDb, id: i64, text: &str) {
    let txn = t.db.begin().await.expect("begin");
    let r = record::record_edit(
        &txn,
        MessageEdit {
            id,
            content: Some(text.to_owned()),
            edited_at: Some(Utc::now()),
            embeds: None,
        },
    )
    .await
    .expect("edit");
    txn.commit().await.expect("commit");
    if let record::Edited::Updated { event_id } = r {
        outbox::notify::notify(&t.db, &[event_id])
            .await
            .expect("notify");
    }
}

async fn delete(t: &TestDb, id: i64) {
    let txn = t.db.begin().await.expect("begin");
    let r = record::record_delete(&txn, id, 1).await.expect("delete");
    txn.commit().await.expect("commit");
    if let record::Deleted::Deleted { event_id } = r {
        outbox::notify::notify(&t.db, &[event_id])
            .await
            .expect("notify");
    }
}

#[tokio::test]
async fn a_later_longer_post_supersedes_and_a_byte_identical_repost_adds_nothing() {
    let t = TestDb::new().await;
    let worker = common::start(common::config(&t));
    common::record_and_notify(&t, vec![post(1, 0, SHORT)]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 1).await, "current");
    assert_eq!(current_setups(&t, 1).await, 1);

    common::record_and_notify(&t, vec![post(2, 10, LONG)]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 1).await, "superseded");
    assert_eq!(status(&t, 2).await, "current");
    assert_eq!(current_setups(&t, 1).await, 0);
    assert_eq!(current_setups(&t, 2).await, 3);
    // History is kept.
    assert_eq!(
        t.scalar("SELECT count(*) FROM setups WHERE message_id = 1")
            .await,
        1
    );

    // A re-post of the long text the next morning: a duplicate, nothing added.
    common::record_and_notify(&t, vec![post(3, 20 * 60, LONG)]).await;
    // A later but shorter post does not replace the standing one.
    let shorter = SHORT.replace("605.50", "606.00");
    common::record_and_notify(&t, vec![post(4, 30, &shorter)]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 3).await, "duplicate");
    assert_eq!(current_setups(&t, 3).await, 0);
    assert_eq!(status(&t, 4).await, "superseded");
    assert_eq!(status(&t, 2).await, "current");
    assert_eq!(
        t.scalar("SELECT count(*) FROM setups WHERE is_current")
            .await,
        3
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_repost_handled_before_its_original_still_ends_up_the_duplicate() {
    let t = TestDb::new().await;
    // The re-post (later, id 2) is recorded and processed first.
    common::record_and_notify(&t, vec![post(2, 60, LONG)]).await;
    let worker = common::start(common::config(&t));
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 2).await, "current");
    common::record_and_notify(&t, vec![post(1, 0, LONG)]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 1).await, "current");
    assert_eq!(status(&t, 2).await, "duplicate");
    assert_eq!(current_setups(&t, 2).await, 0);
    assert_eq!(
        t.scalar("SELECT count(*) FROM setups WHERE is_current")
            .await,
        3
    );
    worker.stop().await;
}

#[tokio::test]
async fn an_edit_reparses_and_a_delete_retracts_and_restores_the_previous_post() {
    let t = TestDb::new().await;
    let worker = common::start(common::config(&t));
    common::record_and_notify(&t, vec![post(1, 0, SHORT), post(2, 10, LONG)]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 2).await, "current");

    // Editing the standing post to chatter takes it out of A+; the first
    // post stands again.
    edit(&t, 2, "oops, wrong channel").await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 2).await, "not_aplus");
    assert_eq!(
        t.scalar("SELECT count(*) FROM setups WHERE message_id = 2")
            .await,
        0
    );
    assert_eq!(status(&t, 1).await, "current");

    // Editing it back re-parses and replaces.
    edit(&t, 2, LONG).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 2).await, "current");
    assert_eq!(current_setups(&t, 2).await, 3);

    // Deleting it retracts its setups; the first post stands again.
    delete(&t, 2).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 2).await, "retracted");
    assert_eq!(current_setups(&t, 2).await, 0);
    assert_eq!(status(&t, 1).await, "current");
    assert_eq!(current_setups(&t, 1).await, 1);
    worker.stop().await;
}

#[tokio::test]
async fn an_embed_only_alert_is_parsed_from_its_embed_text() {
    let t = TestDb::new().await;
    let worker = common::start(common::config(&t));
    let mut m = post(1, 0, "");
    m.embeds = serde_json::json!([{ "title": "A+ Scalp Trade Setups — Wed Jun 18", "description": "SPY\n🔼 Aggressive Breakout Above 596.90 🔼 599.80, 602.00, 605.50" }]);
    common::record_and_notify(&t, vec![m]).await;
    common::drained(&t, Duration::from_secs(30)).await;
    assert_eq!(status(&t, 1).await, "current");
    assert_eq!(current_setups(&t, 1).await, 1);
    worker.stop().await;
}
