//! Live capture with the real serenity client against the simulator.

use crate::common::{self, WAIT, one, start_ready, stored_ids, wait_count, world};
use discord_sim::{GatewayFault, NewMessage, Target};
use testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_across_five_channels_and_a_thread_are_each_stored_once_and_unlisted_ones_are_ignored()
 {
    let t = TestDb::new().await;
    let w = world(6).await;
    let (listed, unlisted) = (&w.channels[..5], w.channels[5]);
    let thread = w.sim.create_thread(listed[0], "SPY").expect("a thread");
    let bot = start_ready(common::config(t.args(), &w.sim, listed)).await;

    let targets: Vec<u64> = listed.iter().copied().chain([thread]).collect();
    for i in 0..1000 {
        let channel = targets[i % targets.len()];
        let message = NewMessage::text(channel, format!("A+ setup {i}"));
        // Some come from an alert bot and a webhook: kept by default.
        let message = match i % 50 {
            1 => message.from_bot(4242, "alerts"),
            2 => message.from_webhook(4343, "tradingview"),
            _ => message,
        };
        w.sim.post(message).expect("posted");
        if i % 100 == 0 {
            w.sim
                .post(NewMessage::text(unlisted, format!("chatter {i}")))
                .expect("posted");
        }
    }

    wait_count(&t.db, "SELECT count(*) FROM messages", 1000).await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.created'",
        1000,
    )
    .await;
    let stats = bot
        .wait_stats("every message to be counted", |s| {
            s.unlisted_channel == 10 && s.stored() == 1000
        })
        .await;
    let comparison = w
        .sim
        .ground_truth()
        .compare_channels(stored_ids(&t.db).await, listed);
    assert!(comparison.is_exact(), "{comparison:?}");
    let in_unlisted: i64 = one(
        &t.db,
        &format!("SELECT count(*) FROM messages WHERE channel_id = {unlisted}"),
    )
    .await;
    assert_eq!(in_unlisted, 0);
    let in_thread: i64 = one(
        &t.db,
        &format!("SELECT count(*) FROM messages WHERE channel_id = {thread}"),
    )
    .await;
    assert_eq!(in_thread, 1000 / 6);
    let from_bots: i64 = one(&t.db, "SELECT count(*) FROM messages WHERE author_is_bot").await;
    assert_eq!(from_bots, 40);
    let guildless: i64 = one(
        &t.db,
        "SELECT count(*) FROM messages WHERE guild_id IS NULL",
    )
    .await;
    assert_eq!(
        guildless, 0,
        "gateway and backfill rows both know their guild"
    );
    assert_eq!(stats.stored(), 1000, "{stats:#?}");
    assert_eq!(stats.rejected(), 10, "{stats:#?}");
    assert_eq!(bot.handle.channels().threads(), vec![thread]);

    // Ready, with every channel verified, and the counters exported.
    let addr = bot.handle.http_addr().expect("http bound");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = ready.status();
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    for channel in listed {
        assert_eq!(
            body["checks"][format!("channel:{channel}")]["ready"],
            true,
            "{body}"
        );
    }
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "aplus_bot_messages_stored_total",
        "aplus_bot_rejected_total",
        "aplus_bot_buffer_depth",
        "aplus_bot_gateway_connected",
        "aplus_bot_backfill_pages_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_dispatched_up_to_three_times_or_replayed_after_a_resume_are_stored_once_and_every_duplicate_is_counted()
 {
    let t = TestDb::new().await;
    let w = world(2).await;
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;

    let mut posted = Vec::new();
    for i in 0..150usize {
        let id = w
            .sim
            .post(NewMessage::text(w.channels[i % 2], format!("setup {i}")))
            .expect("posted");
        // Each message goes out once, twice or three times.
        w.sim
            .redispatch(id, (i % 3) as u32)
            .expect("the message exists");
        posted.push(id);
    }
    // A resumable close: what is posted right after it is replayed on RESUME.
    w.sim.inject(
        Target::All,
        GatewayFault::Close {
            code: 4000,
            reason: "Unknown error.".into(),
        },
    );
    for i in 150..200usize {
        let id = w
            .sim
            .post(NewMessage::text(w.channels[i % 2], format!("setup {i}")))
            .expect("posted");
        w.sim
            .redispatch(id, (i % 3) as u32)
            .expect("the message exists");
        posted.push(id);
    }
    let sim_stats = w.sim.wait_for_resumes(1, WAIT).await.expect("a resume");
    assert_eq!(sim_stats.identifies, 1, "a resume, not a new session");

    let dispatched: u64 = posted
        .iter()
        .map(|id| u64::from(w.sim.dispatch_count(*id)))
        .sum();
    let injected = dispatched - posted.len() as u64;
    wait_count(&t.db, "SELECT count(*) FROM messages", 200).await;
    let stats = bot
        .wait_stats("every gateway dispatch to be written or counted", |s| {
            // Gateway counts only: the resume's backfill adds duplicates of
            // its own, which must not stand in for gateway copies still in
            // the writer's queue.
            s.received_gateway >= dispatched
                && s.stored_gateway + s.duplicates_gateway >= dispatched
        })
        .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.created'",
        200,
    )
    .await;
    assert!(w.sim.stats().replayed > 0, "the resume replayed dispatches");
    assert_eq!(stats.received_gateway, dispatched, "{stats:#?}");
    assert_eq!(stats.stored(), 200, "{stats:#?}");
    // Every gateway copy beyond the first is a duplicate; when the resume's
    // backfill stored a message first, its gateway copy is one too.
    assert_eq!(
        stats.duplicates_gateway,
        injected + stats.stored_backfill,
        "{stats:#?}"
    );
    let comparison = w
        .sim
        .ground_truth()
        .compare_channels(stored_ids(&t.db).await, &w.channels);
    assert!(comparison.is_exact(), "{comparison:?}");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_started_before_its_simulator_waits_for_it_instead_of_reaching_for_discord() {
    let t = TestDb::new().await;
    let port = testkit::cluster::free_port().expect("a free port");
    let channel = 1_372_012_942_848_954_388;
    let config = common::config_for(t.args(), &format!("http://127.0.0.1:{port}"), &[channel]);
    let bot = common::start(config);

    // Nothing listens yet; the bot keeps asking rather than connecting elsewhere.
    bot.wait_stats("attempts to reach the simulator", |s| {
        s.rest_network_errors >= 2
    })
    .await;
    assert!(!bot.handle.health().is_ready());
    let sim = discord_sim::Sim::start(discord_sim::SimConfig {
        listen: format!("127.0.0.1:{port}").parse().expect("an address"),
        ..discord_sim::SimConfig::default()
    })
    .await
    .expect("the simulator starts on the chosen port");
    let guild = sim
        .create_guild_with_id(1_094_357_612_345_678_901, "Trading")
        .expect("a guild");
    sim.create_channel_with_id(guild, channel, "aplus-setups")
        .expect("a channel");
    bot.wait_connected().await;
    sim.post(NewMessage::text(channel, "A+ Trade Setups"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;

    bot.stop().await;
    sim.shutdown().await;
}
