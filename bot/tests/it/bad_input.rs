//! Odd and hostile input: huge Unicode, NUL bytes, out-of-range and
//! undecodable snowflakes, rate limits and server errors on history reads,
//! bot authors, unreadable channels.

use std::time::{Duration, Instant};

use crate::common::{self, WAIT, one, start, start_ready, wait_count, world};
use discord_sim::{Author, NewMessage, RestFault, Target};
use serde_json::json;
use testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_emoji_text_is_stored_byte_exact_and_nul_bytes_are_stored_sanitised_and_flagged() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;

    let emoji = "🚀".repeat(4000);
    let big = w
        .sim
        .post(NewMessage::text(channel, emoji.clone()))
        .expect("posted");
    let nul = w
        .sim
        .post(NewMessage::text(channel, "SPY\0 585").author(Author::user(77, "n\0body")))
        .expect("posted");
    let odd = "'; DROP TABLE messages; -- \u{202E}مرحبا 𝔘𝔫𝔦𝔠𝔬𝔡𝔢";
    let sql = w.sim.post(NewMessage::text(channel, odd)).expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 3).await;

    let stored: String = one(
        &t.db,
        &format!("SELECT content FROM messages WHERE id = {big}"),
    )
    .await;
    assert_eq!(stored, emoji);
    let bytes: i32 = one(
        &t.db,
        &format!("SELECT octet_length(content) FROM messages WHERE id = {big}"),
    )
    .await;
    assert_eq!(bytes, 16_000);
    let (content, author, sanitized): (String, String, bool) = (
        one(
            &t.db,
            &format!("SELECT content FROM messages WHERE id = {nul}"),
        )
        .await,
        one(
            &t.db,
            &format!("SELECT author_name FROM messages WHERE id = {nul}"),
        )
        .await,
        one(
            &t.db,
            &format!("SELECT sanitized FROM messages WHERE id = {nul}"),
        )
        .await,
    );
    assert_eq!(content, "SPY\u{FFFD} 585");
    assert_eq!(author, "n\u{FFFD}body");
    assert!(sanitized);
    let verbatim: String = one(
        &t.db,
        &format!("SELECT content FROM messages WHERE id = {sql}"),
    )
    .await;
    assert_eq!(verbatim, odd);
    let stats = bot.stats();
    assert_eq!(stats.sanitized, 1, "{stats:#?}");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflakes_out_of_range_or_undecodable_are_rejected_and_counted_and_the_next_message_still_lands()
 {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;

    let template = w
        .sim
        .build_message(&NewMessage::text(channel, "bad id"))
        .expect("the channel exists");
    let with_id = |id: &str| {
        let mut m = template.clone();
        m["id"] = json!(id);
        m
    };
    // serenity accepts u64::MAX (a valid u64); it must not become a negative bigint.
    w.sim.dispatch_raw(
        Target::All,
        "MESSAGE_CREATE",
        with_id("18446744073709551615"),
    );
    w.sim.dispatch_raw(
        Target::All,
        "MESSAGE_CREATE",
        with_id("9223372036854775808"),
    );
    // Zero and non-numbers do not decode as a message at all.
    w.sim
        .dispatch_raw(Target::All, "MESSAGE_CREATE", with_id("0"));
    w.sim
        .dispatch_raw(Target::All, "MESSAGE_CREATE", with_id("abc"));
    let mut no_author = template.clone();
    no_author["id"] = json!("77");
    no_author.as_object_mut().expect("object").remove("author");
    w.sim.dispatch_raw(Target::All, "MESSAGE_CREATE", no_author);
    // The largest valid snowflake is stored as it is.
    let max = w
        .sim
        .post(NewMessage::text(channel, "largest id").id(i64::MAX as u64))
        .expect("posted");

    let stats = bot
        .wait_stats("every bad payload to be counted", |s| {
            s.snowflake_out_of_range == 2 && s.undecodable == 3
        })
        .await;
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;
    let stored: i64 = one(&t.db, "SELECT id FROM messages").await;
    assert_eq!(stored as u64, max);
    let negative: i64 = one(&t.db, "SELECT count(*) FROM messages WHERE id < 0").await;
    assert_eq!(negative, 0);
    assert_eq!(stats.rejected(), 5, "{stats:#?}");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_history_read_waits_as_long_as_retry_after_says_and_server_errors_are_retried()
 {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    for i in 0..150 {
        w.sim
            .post_history(NewMessage::text(channel, format!("missed {i}")))
            .expect("posted");
    }

    w.sim.fail_next_rest_matching(
        "/messages",
        1,
        RestFault::RateLimited {
            retry_after: 2.0,
            global: false,
        },
    );
    w.sim
        .fail_next_rest_matching("/messages", 2, RestFault::Status(502));
    let calls_before = w.sim.rest_calls().len();
    // When the simulator served the 429, and when the next call came.
    let timing = {
        let sim = w.sim.clone();
        tokio::spawn(async move {
            let faulted = sim
                .wait_for("the 429", WAIT, |s| s.rest_faults_served >= 1)
                .await
                .expect("a 429");
            let served_at = Instant::now();
            sim.wait_for("the retry", WAIT, |s| {
                s.rest_requests > faulted.rest_requests
            })
            .await
            .expect("a retry");
            served_at.elapsed()
        })
    };
    let started = Instant::now();
    let report = bot
        .handle
        .backfiller()
        .backfill_channel(channel)
        .await
        .expect("the backfill completes");
    let took = started.elapsed();
    let gap = timing.await.expect("timing task");

    assert_eq!(report.stored, 150, "{report:?}");
    assert!(report.pages >= 2, "{report:?}");
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert!(
        gap >= Duration::from_millis(1900),
        "the retry came {gap:?} after the 429"
    );
    let calls: Vec<_> = w.sim.rest_calls().into_iter().skip(calls_before).collect();
    let statuses: Vec<u16> = calls
        .iter()
        .filter(|c| c.path.ends_with("/messages"))
        .map(|c| c.status)
        .collect();
    assert_eq!(&statuses[..4], &[429, 502, 502, 200], "{calls:#?}");
    let stats = bot.stats();
    assert_eq!(stats.rest_rate_limited, 1, "{stats:#?}");
    assert!(stats.rest_rate_limit_wait_ms >= 2000, "{stats:#?}");
    assert_eq!(stats.rest_server_errors, 2, "{stats:#?}");
    wait_count(&t.db, "SELECT count(*) FROM messages", 150).await;

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bot_messages_turned_off_bots_and_webhooks_are_rejected_and_counted() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let mut config = common::config(t.args(), &w.sim, &w.channels);
    config.keep_bot_messages = false;
    let bot = start_ready(config).await;
    w.sim
        .post(NewMessage::text(channel, "alert").from_bot(4242, "alerts"))
        .expect("posted");
    w.sim
        .post(NewMessage::text(channel, "hook").from_webhook(4343, "tv"))
        .expect("posted");
    let human = w
        .sim
        .post(NewMessage::text(channel, "A+ setups"))
        .expect("posted");
    bot.wait_stats("both bot messages", |s| s.bot_author == 2)
        .await;
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;
    let stored: i64 = one(&t.db, "SELECT id FROM messages").await;
    assert_eq!(stored as u64, human);

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_channel_the_token_cannot_read_is_reported_in_readyz() {
    let t = TestDb::new().await;
    let w = world(2).await;
    w.sim
        .set_channel_forbidden(w.channels[1], true)
        .expect("the channel exists");
    let bot = start(common::config(t.args(), &w.sim, &w.channels));
    bot.wait_connected().await;
    let forbidden = format!("channel:{}", w.channels[1]);
    let check = testkit::eventually(WAIT, "the channel check", || async {
        bot.handle
            .health()
            .get(&forbidden)
            .filter(|c| c.detail != "not verified yet")
    })
    .await;
    assert!(!check.ready);
    assert!(check.detail.contains("403"), "{check:?}");
    assert!(check.detail.contains("Read Message History"), "{check:?}");
    let readable = bot
        .handle
        .health()
        .get(&format!("channel:{}", w.channels[0]))
        .expect("registered");
    assert!(readable.ready, "{readable:?}");

    let addr = bot.handle.http_addr().expect("bound");
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 503);

    bot.stop().await;
    w.sim.shutdown().await;
}
