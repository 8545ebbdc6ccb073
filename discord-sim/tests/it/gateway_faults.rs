//! Gateway faults and how the real serenity client recovers from them.

use crate::common;

use std::time::Duration;

use common::{Bot, Seen, WAIT, start_bot, start_bot_with};
use discord_sim::{GatewayFault, NewMessage, Sim, SimConfig, Target};
use serenity::all::{GetMessages, MessageId};
use serenity::gateway::GatewayError;

struct World {
    sim: Sim,
    channel: u64,
}

async fn world(config: SimConfig) -> World {
    let sim = Sim::start(config).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    World { sim, channel }
}

/// Posts `count` messages; returns their ids.
fn post_many(world: &World, label: &str, count: usize) -> Vec<u64> {
    (0..count)
        .map(|i| {
            world
                .sim
                .post(NewMessage::text(world.channel, format!("{label} {i}")))
                .expect("post")
        })
        .collect()
}

/// Receives messages until `expected` ids have arrived; fails on any other message.
async fn expect_messages(bot: &mut Bot, expected: &[u64]) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(bot.message().await.0.id.get());
    }
    assert_eq!(got, expected);
}

/// The fault is queued after nothing, and the posts right after it are queued after the
/// fault, so on this current-thread runtime they are exactly the dispatches the client misses
/// on its old connection.
async fn a_fault_then_resume_replays_what_was_missed(fault: GatewayFault) {
    let world = world(SimConfig::default()).await;
    let mut bot = start_bot(&world.sim).await;
    bot.ready().await;
    let before = post_many(&world, "before", 2);
    expect_messages(&mut bot, &before).await;

    assert_eq!(world.sim.inject(Target::All, fault), 1);
    let missed = post_many(&world, "missed", 3);

    let stats = world
        .sim
        .wait_for_resumes(1, WAIT)
        .await
        .expect("serenity resumes");
    assert_eq!(stats.identifies, 1, "a resume, not a new session");
    assert_eq!(stats.replayed, 3);
    let mut messages = Vec::new();
    while messages.len() < missed.len() {
        match bot.next().await {
            Seen::Message { message, .. } => messages.push(message.id.get()),
            Seen::Resumed { .. } => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(
        messages, missed,
        "every missed message exactly once, in order"
    );
    let after = post_many(&world, "after", 1);
    expect_messages(&mut bot, &after).await;
    assert!(
        bot.drain(Duration::from_millis(300))
            .await
            .iter()
            .all(|e| matches!(e, Seen::Resumed { .. }))
    );

    bot.stop().await;
    world.sim.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_request_leads_to_a_resume_that_replays_missed_messages() {
    a_fault_then_resume_replays_what_was_missed(GatewayFault::Reconnect).await;
}

#[tokio::test]
async fn a_dropped_connection_leads_to_a_resume_that_replays_missed_messages() {
    a_fault_then_resume_replays_what_was_missed(GatewayFault::Drop).await;
}

#[tokio::test]
async fn a_reset_connection_leads_to_a_resume_that_replays_missed_messages() {
    a_fault_then_resume_replays_what_was_missed(GatewayFault::Reset).await;
}

#[tokio::test]
async fn a_resumable_close_code_leads_to_a_resume_that_replays_missed_messages() {
    a_fault_then_resume_replays_what_was_missed(GatewayFault::Close {
        code: 4000,
        reason: "Unknown error.".into(),
    })
    .await;
}

#[tokio::test]
async fn a_resumable_invalid_session_leads_to_a_resume() {
    a_fault_then_resume_replays_what_was_missed(GatewayFault::InvalidSession { resumable: true })
        .await;
}

#[tokio::test]
async fn a_non_resumable_invalid_session_leads_to_a_new_ready_and_gap_messages_only_in_history() {
    let world = world(SimConfig::default()).await;
    let mut bot = start_bot(&world.sim).await;
    let first_session = bot.ready().await;

    world.sim.inject(
        Target::All,
        GatewayFault::InvalidSession { resumable: false },
    );
    let gap = post_many(&world, "gap", 2);
    assert!(
        gap.iter().all(|id| world.sim.dispatch_count(*id) == 0),
        "no session to send to"
    );

    let second_session = bot.ready().await;
    assert_ne!(first_session, second_session);
    let stats = world
        .sim
        .wait_for_identifies(2, WAIT)
        .await
        .expect("serenity identifies again");
    assert_eq!(stats.resumes, 0);

    let live = post_many(&world, "live", 1);
    expect_messages(&mut bot, &live).await;

    // The gap is only in history, where a bot has to backfill it from.
    let page = serenity::all::ChannelId::new(world.channel)
        .messages(
            &bot.http,
            GetMessages::new()
                .after(MessageId::new(gap[0] - 1))
                .limit(100),
        )
        .await
        .expect("history");
    let mut history: Vec<u64> = page.iter().map(|m| m.id.get()).collect();
    history.sort_unstable();
    assert_eq!(history, [gap.clone(), live].concat());

    bot.stop().await;
    world.sim.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_heartbeats_make_serenity_identify_again() {
    let config = SimConfig {
        heartbeat_interval: Duration::from_millis(500),
        ..SimConfig::default()
    };
    let world = world(config).await;
    let mut bot = start_bot(&world.sim).await;
    let first_session = bot.ready().await;

    world
        .sim
        .inject(Target::All, GatewayFault::StopHeartbeatAcks);
    let second_session = bot.ready().await;
    assert_ne!(first_session, second_session);
    let stats = world.sim.stats();
    assert!(stats.heartbeats > stats.heartbeat_acks, "{stats:?}");
    assert_eq!(stats.identifies, 2);

    let live = post_many(&world, "after zombie", 1);
    expect_messages(&mut bot, &live).await;

    bot.stop().await;
    world.sim.shutdown().await;
}

async fn start_returns_a_gateway_error(bot: Bot) -> serenity::Error {
    tokio::time::timeout(WAIT, bot.run)
        .await
        .expect("Client::start returns in time")
        .expect("the client task does not panic")
        .expect_err("Client::start returns an error")
}

#[tokio::test]
async fn a_fatal_close_code_makes_client_start_return_an_error() {
    let world = world(SimConfig::default()).await;
    let mut bot = start_bot(&world.sim).await;
    bot.ready().await;
    world.sim.inject(
        Target::All,
        GatewayFault::Close {
            code: 4004,
            reason: "Authentication failed.".into(),
        },
    );
    let error = start_returns_a_gateway_error(bot).await;
    assert!(
        matches!(
            error,
            serenity::Error::Gateway(GatewayError::InvalidAuthentication)
        ),
        "{error:?}"
    );
    world.sim.shutdown().await;
}

#[tokio::test]
async fn identify_refused_with_4004_4013_or_4014_makes_client_start_return_an_error() {
    // A bad token (4004), invalid intents (4013) and disallowed intents (4014).
    let bad_token = world(SimConfig {
        bad_token: Some("revoked".into()),
        ..SimConfig::default()
    })
    .await;
    let bot = start_bot_with(&bad_token.sim, "revoked", common::intents(), None).await;
    let error = start_returns_a_gateway_error(bot).await;
    assert!(
        matches!(
            error,
            serenity::Error::Gateway(GatewayError::InvalidAuthentication)
        ),
        "{error:?}"
    );
    bad_token.sim.shutdown().await;

    let invalid = world(SimConfig::default()).await;
    invalid.sim.set_identify_close_code(Some(4013));
    let error = start_returns_a_gateway_error(start_bot(&invalid.sim).await).await;
    assert!(
        matches!(
            error,
            serenity::Error::Gateway(GatewayError::InvalidGatewayIntents)
        ),
        "{error:?}"
    );
    invalid.sim.shutdown().await;

    let disallowed = world(SimConfig {
        disallowed_intents: discord_sim::intents::MESSAGE_CONTENT,
        ..SimConfig::default()
    })
    .await;
    let error = start_returns_a_gateway_error(start_bot(&disallowed.sim).await).await;
    assert!(
        matches!(
            error,
            serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents)
        ),
        "{error:?}"
    );
    assert_eq!(disallowed.sim.stats().identifies_refused, 1);
    disallowed.sim.shutdown().await;
}
