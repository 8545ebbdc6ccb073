//! The real serenity client against the simulator: connecting, live messages, edits and
//! deletes, content blanking without MESSAGE_CONTENT, and malformed payloads.

use crate::common;

use std::time::Duration;

use common::{Seen, start_bot, start_bot_with};
use discord_sim::{Author, NewMessage, Sim, SimConfig, Target, intents, payload};
use serde_json::json;
use serenity::all::GatewayIntents;

#[tokio::test]
async fn serenity_connects_and_receives_live_messages_in_order_and_complete() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let thread = sim
        .create_thread(channel, "spy-talk")
        .expect("channel exists");
    let mut bot = start_bot(&sim).await;

    let session_id = bot.ready().await;
    let sessions = sim.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, session_id);
    assert_eq!(sessions[0].shard, [0, 1]);
    assert_eq!(sessions[0].intents, common::intents().bits());
    assert!(
        sim.rest_calls()
            .iter()
            .any(|c| c.path == "/api/v10/gateway" && c.token.as_deref() == Some("test-token")),
        "{:?}",
        sim.rest_calls()
    );

    let posted = [
        sim.post(NewMessage::text(
            channel,
            "A+ Trade Setups — Thursday May 15\n\nSPY",
        ))
        .expect("post"),
        sim.post(
            NewMessage::forward(channel, "A+ Trade Setups — forwarded")
                .snapshot_embed(payload::embed("levels", "586.49")),
        )
        .expect("post"),
        sim.post(NewMessage::embed_only(
            channel,
            vec![payload::embed("BTO", "COIN 73c")],
        ))
        .expect("post"),
        sim.post(NewMessage::text(channel, "from a hook").from_webhook(4242, "Alerts"))
            .expect("post"),
        sim.post(NewMessage::text(channel, "beep").from_bot(777, "OtherBot"))
            .expect("post"),
        sim.post(NewMessage::text(thread, "in the thread"))
            .expect("post"),
    ];

    let mut received = Vec::new();
    for _ in 0..posted.len() {
        received.push(bot.message().await.0);
    }
    let ids: Vec<u64> = received.iter().map(|m| m.id.get()).collect();
    assert_eq!(ids, posted, "messages arrive once each, in posting order");

    assert_eq!(
        received[0].content,
        "A+ Trade Setups — Thursday May 15\n\nSPY"
    );
    assert_eq!(received[0].guild_id.map(|g| g.get()), Some(guild));
    assert_eq!(received[1].content, "");
    assert_eq!(
        received[1].message_snapshots[0].content,
        "A+ Trade Setups — forwarded"
    );
    assert_eq!(received[1].message_snapshots[0].embeds.len(), 1);
    assert_eq!(received[2].content, "");
    assert_eq!(received[2].embeds[0].title.as_deref(), Some("BTO"));
    assert_eq!(received[3].webhook_id.map(|w| w.get()), Some(4242));
    assert!(received[4].author.bot);
    assert_eq!(received[5].channel_id.get(), thread);
    assert_eq!(sim.channel(thread).and_then(|c| c.parent_id), Some(channel));

    sim.edit(posted[0], "A+ Trade Setups — edited")
        .expect("edit");
    sim.set_embeds(
        posted[0],
        vec![payload::link_preview_embed("https://x.test", "t", "d")],
    )
    .expect("link preview");
    sim.delete(posted[4]).expect("delete");
    let Seen::Update(edit) = bot.next().await else {
        panic!("expected the edit")
    };
    assert_eq!(edit.content.as_deref(), Some("A+ Trade Setups — edited"));
    assert!(edit.edited_timestamp.is_some());
    let Seen::Update(preview) = bot.next().await else {
        panic!("expected the link preview")
    };
    assert_eq!(preview.embeds.as_ref().map(Vec::len), Some(1));
    let Seen::Delete {
        message_id,
        channel_id,
        ..
    } = bot.next().await
    else {
        panic!("expected the delete")
    };
    assert_eq!((message_id.get(), channel_id.get()), (posted[4], channel));

    let truth = sim.ground_truth();
    assert!(
        truth
            .compare_channels(
                posted.iter().copied().filter(|id| *id != posted[4]),
                &[channel]
            )
            .is_exact()
    );
    assert!(posted.iter().all(|id| sim.dispatch_count(*id) == 1));

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn history_only_posts_are_not_dispatched() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let mut bot = start_bot(&sim).await;
    bot.ready().await;

    let away = sim
        .post_history(NewMessage::text(channel, "while you were away"))
        .expect("post");
    let live = sim.post(NewMessage::text(channel, "live")).expect("post");
    assert_eq!(bot.message().await.0.id.get(), live);
    assert_eq!(sim.dispatch_count(away), 0);
    let truth = sim.ground_truth();
    assert!(!truth.get(away).expect("recorded").live);
    assert!(truth.get(live).expect("recorded").live);

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn without_the_message_content_intent_guild_messages_arrive_blank_but_dms_do_not() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let dm = sim.create_dm(Author::user(31, "friend"));
    let no_content = GatewayIntents::GUILD_MESSAGES | GatewayIntents::DIRECT_MESSAGES;
    let mut bot = start_bot_with(&sim, "test-token", no_content, None).await;
    bot.ready().await;
    assert_eq!(sim.sessions()[0].intents & intents::MESSAGE_CONTENT, 0);

    sim.post(NewMessage::forward(channel, "secret setup"))
        .expect("post");
    sim.post(NewMessage::text(dm, "hello in a DM"))
        .expect("post");
    let (guild_message, _) = bot.message().await;
    assert_eq!(guild_message.content, "");
    assert_eq!(guild_message.message_snapshots[0].content, "");
    let (dm_message, _) = bot.message().await;
    assert_eq!(dm_message.content, "hello in a DM");
    assert_eq!(dm_message.guild_id, None);

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_dispatches_do_not_stop_the_client() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let mut bot = start_bot(&sim).await;
    bot.ready().await;

    let build = |content: &str| {
        sim.build_message(&NewMessage::text(channel, content))
            .expect("channel exists")
    };

    let mut not_a_number = build("bad id");
    not_a_number["id"] = json!("abc");
    let mut too_big = build("id beyond i64");
    too_big["id"] = json!("18446744073709551615");
    let mut missing_field = build("no tts");
    if let Some(map) = missing_field.as_object_mut() {
        map.remove("tts");
    }
    let nul = build("nul \u{0} inside");
    let huge = build(&"x".repeat(1 << 20));

    sim.dispatch_raw(Target::All, "MESSAGE_CREATE", not_a_number);
    sim.inject(
        Target::All,
        discord_sim::GatewayFault::RawFrame("{not json".into()),
    );
    sim.dispatch_raw(Target::All, "MESSAGE_CREATE", missing_field);
    sim.dispatch_raw(Target::All, "MESSAGE_CREATE", too_big);
    sim.dispatch_raw(Target::All, "MESSAGE_CREATE", nul);
    sim.dispatch_raw(Target::All, "MESSAGE_CREATE", huge);
    let normal = sim
        .post(NewMessage::text(channel, "still alive"))
        .expect("post");

    // serenity drops the "abc" id and the missing field silently, logs the broken frame, and
    // delivers the rest.
    let (first, _) = bot.message().await;
    assert_eq!(first.id.get(), u64::MAX);
    let (second, _) = bot.message().await;
    assert_eq!(second.content, "nul \u{0} inside");
    let (third, _) = bot.message().await;
    assert_eq!(third.content.len(), 1 << 20);
    let (fourth, _) = bot.message().await;
    assert_eq!(fourth.id.get(), normal);
    assert!(sim.ground_truth().get(u64::MAX).is_some_and(|m| m.raw));

    // The connection survived: no second IDENTIFY or RESUME was needed.
    let stats = sim.stats();
    assert_eq!((stats.identifies, stats.resumes), (1, 0));

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn repeated_dispatches_reach_the_client_as_duplicates() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let mut bot = start_bot(&sim).await;
    bot.ready().await;

    let id = sim
        .post(NewMessage::text(channel, "twice and more"))
        .expect("post");
    assert_eq!(sim.redispatch(id, 2).expect("message exists"), 2);
    for _ in 0..3 {
        assert_eq!(bot.message().await.0.id.get(), id);
    }
    assert_eq!(sim.dispatch_count(id), 3);
    assert!(bot.drain(Duration::from_millis(300)).await.is_empty());

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_messages_arrives_complete_and_matches_the_ground_truth() {
    const COUNT: usize = 3_000;
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let mut bot = start_bot(&sim).await;
    bot.ready().await;

    let started = std::time::Instant::now();
    for i in 0..COUNT {
        sim.post(NewMessage::text(channel, format!("burst {i}")))
            .expect("post");
    }
    let mut received = Vec::with_capacity(COUNT);
    while received.len() < COUNT {
        received.push(bot.message().await.0.id.get());
    }
    let elapsed = started.elapsed();
    println!("{COUNT} messages through serenity in {elapsed:?}");

    let comparison = sim
        .ground_truth()
        .compare_channels(received.iter().copied(), &[channel]);
    assert!(comparison.is_exact(), "{comparison:?}");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "in order");

    bot.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn messages_posted_at_once_arrive_in_order_with_a_dispatch_time_each() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    let unheard = sim
        .post(NewMessage::text(channel, "before anyone listened"))
        .expect("post");
    let mut bot = start_bot(&sim).await;
    bot.ready().await;

    let before = std::time::SystemTime::now();
    let posted = sim
        .post_many((0..5).map(|n| NewMessage::text(channel, format!("burst #{n}"))))
        .expect("posts");
    let mut received = Vec::new();
    for _ in 0..posted.len() {
        received.push(bot.message().await.0.id.get());
    }
    assert_eq!(received, posted, "one step, posting order kept");

    let times = sim.dispatch_times(&posted);
    assert!(
        times.iter().all(|t| t.is_some_and(|t| t >= before)),
        "{times:?}"
    );
    assert_eq!(
        sim.dispatch_times(&[unheard]),
        vec![None],
        "a message no session received has no dispatch time"
    );
}
