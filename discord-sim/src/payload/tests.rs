//! Every builder parsed with serenity 0.12's own types.

use chrono::TimeZone;
use serenity::model::channel::{Channel, Message};
use serenity::model::event::{Event, GatewayEvent};
use serenity::model::gateway::{BotGateway, Ready};
use serenity::model::user::CurrentUser;

use super::*;
use crate::message::{Author, NewMessage};
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 15, 13, 26, 7)
        .single()
        .expect("valid date")
}

fn guild() -> GuildInfo {
    GuildInfo {
        id: 1_094_357_612_345_678_901,
        name: "Trading".into(),
        owner_id: 5,
    }
}

fn text_channel() -> ChannelInfo {
    ChannelInfo {
        id: 1_372_012_942_848_954_388,
        guild_id: Some(guild().id),
        name: "aplus-setups".into(),
        kind: ChannelKind::Text,
        parent_id: None,
        recipient: None,
        forbidden: false,
    }
}

fn thread() -> ChannelInfo {
    ChannelInfo {
        id: 1_372_012_942_848_954_999,
        guild_id: Some(guild().id),
        name: "spy-discussion".into(),
        kind: ChannelKind::PublicThread,
        parent_id: Some(text_channel().id),
        recipient: None,
        forbidden: false,
    }
}

fn dm() -> ChannelInfo {
    ChannelInfo {
        id: 77,
        guild_id: None,
        name: String::new(),
        kind: ChannelKind::Dm,
        parent_id: None,
        recipient: Some(Author::user(9, "someone")),
        forbidden: false,
    }
}

/// Every message shape the simulator can make.
fn all_message_specs() -> Vec<(&'static str, NewMessage)> {
    let channel = text_channel().id;
    vec![
        (
            "text",
            NewMessage::text(channel, "A+ Trade Setups — Thursday May 15"),
        ),
        (
            "forward",
            NewMessage::forward(channel, "A+ Trade Setups — forwarded"),
        ),
        (
            "forward with origin and snapshot embed",
            NewMessage::forward(channel, "fwd")
                .forwarded_from(Some(guild().id), 123, Some(1_372_564_456_818_741_359))
                .snapshot_embed(embed("t", "d")),
        ),
        (
            "embed only",
            NewMessage::embed_only(channel, vec![embed("BTO", "COIN 73c")]),
        ),
        (
            "link preview",
            NewMessage::text(channel, "x").embed(link_preview_embed("https://e.x", "t", "d")),
        ),
        (
            "attachment",
            NewMessage::text(channel, "chart").attachment(attachment(11, "spy.png", 2048)),
        ),
        (
            "bot",
            NewMessage::text(channel, "beep").from_bot(99, "AlertBot"),
        ),
        (
            "webhook",
            NewMessage::text(channel, "hook").from_webhook(55, "Captain Hook"),
        ),
        (
            "mentions",
            NewMessage::text(channel, "@everyone")
                .mention(Author::user(3, "x"))
                .mention_everyone(),
        ),
        (
            "nul and unicode",
            NewMessage::text(channel, "a\u{0}b \u{2028} ❤️=🐐"),
        ),
        ("huge", NewMessage::text(channel, "x".repeat(200_000))),
        ("reply type", {
            let mut m = NewMessage::text(channel, "reply");
            m.kind = 19;
            m
        }),
    ]
}

fn parse_dispatch(frame: &str) -> (u64, Event) {
    match serde_json::from_str::<GatewayEvent>(frame).expect("frame parses") {
        GatewayEvent::Dispatch(seq, event) => (seq, event),
        other => panic!("expected a dispatch, got {other:?}"),
    }
}

#[test]
fn every_message_shape_deserializes_into_serenity_message() {
    for (name, spec) in all_message_specs() {
        let value = message_object(&spec, 1_372_565_715_109_941_359, at());
        let message: Message = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}\n{value}"));
        assert_eq!(message.id.get(), 1_372_565_715_109_941_359, "{name}");
        assert_eq!(message.channel_id.get(), spec.channel_id, "{name}");
        assert_eq!(message.content, spec.content, "{name}");
        assert_eq!(message.embeds.len(), spec.embeds.len(), "{name}");
        assert_eq!(message.author.bot, spec.author.bot, "{name}");
        assert_eq!(
            message.webhook_id.map(|w| w.get()),
            spec.webhook_id,
            "{name}"
        );
    }
}

#[test]
fn every_message_shape_is_a_message_create_dispatch_for_serenity() {
    for (name, spec) in all_message_specs() {
        for guild_id in [Some(guild().id), None] {
            let rest = message_object(&spec, 1_372_565_715_109_941_359, at());
            let d = gateway_message(&rest, guild_id);
            let frame = dispatch_frame(7, "MESSAGE_CREATE", &d.to_string());
            let (seq, event) = parse_dispatch(&frame);
            assert_eq!(seq, 7);
            let Event::MessageCreate(created) = event else {
                panic!("{name}: MESSAGE_CREATE was not understood: {event:?}");
            };
            assert_eq!(
                created.message.guild_id.map(|g| g.get()),
                guild_id,
                "{name}"
            );
            assert_eq!(created.message.content, spec.content, "{name}");
        }
    }
}

#[test]
fn a_forward_carries_its_text_only_in_the_snapshot() {
    let spec = NewMessage::forward(1, "A+ Trade Setups — Thursday May 15")
        .snapshot_embed(embed("chart", "levels"));
    let value = message_object(&spec, 1_372_565_715_109_941_359, at());
    assert_eq!(value["flags"], FLAG_HAS_SNAPSHOT);
    let message: Message = serde_json::from_value(value).expect("forward parses");
    assert_eq!(message.content, "");
    assert_eq!(message.message_snapshots.len(), 1);
    assert_eq!(
        message.message_snapshots[0].content,
        "A+ Trade Setups — Thursday May 15"
    );
    assert_eq!(message.message_snapshots[0].embeds.len(), 1);
    // serenity 0.12.5 does not know HAS_SNAPSHOT and truncates unknown flag bits, so a bot
    // must look at `message_snapshots`, not at the flag.
    assert_eq!(message.flags.map(|f| f.bits()), Some(0));
    let reference = message.message_reference.expect("forward has a reference");
    assert_eq!(
        reference.kind,
        serenity::model::channel::MessageReferenceKind::Forward
    );
    assert!(message.message_snapshots[0].timestamp.unix_timestamp() < at().timestamp());
}

#[test]
fn content_is_blanked_without_the_message_content_intent() {
    let spec = NewMessage::forward(1, "secret").snapshot_embed(embed("t", "d"));
    let value = without_content(&gateway_message(
        &message_object(&spec, 5 << 22, at()),
        None,
    ));
    let message: Message = serde_json::from_value(value).expect("blanked message parses");
    assert_eq!(message.message_snapshots[0].content, "");
    assert!(message.message_snapshots[0].embeds.is_empty());
}

#[test]
fn edits_and_link_previews_are_message_update_dispatches_for_serenity() {
    let spec = NewMessage::text(text_channel().id, "before");
    let mut stored = message_object(&spec, 5 << 22, at());
    apply_edit(&mut stored, "after", at() + chrono::Duration::seconds(5));
    let frame = dispatch_frame(
        3,
        "MESSAGE_UPDATE",
        &gateway_message(&stored, Some(guild().id)).to_string(),
    );
    let (_, event) = parse_dispatch(&frame);
    let Event::MessageUpdate(update) = event else {
        panic!("not an update: {event:?}")
    };
    assert_eq!(update.content.as_deref(), Some("after"));
    assert!(update.edited_timestamp.is_some());

    apply_embeds(
        &mut stored,
        vec![link_preview_embed("https://e.x", "t", "d")],
    );
    let frame = dispatch_frame(
        4,
        "MESSAGE_UPDATE",
        &gateway_message(&stored, Some(guild().id)).to_string(),
    );
    let (_, event) = parse_dispatch(&frame);
    let Event::MessageUpdate(update) = event else {
        panic!("not an update: {event:?}")
    };
    assert_eq!(update.embeds.map(|e| e.len()), Some(1));
}

#[test]
fn a_delete_is_a_message_delete_dispatch_for_serenity() {
    let frame = dispatch_frame(
        9,
        "MESSAGE_DELETE",
        &message_delete(5, 6, Some(7)).to_string(),
    );
    let (_, event) = parse_dispatch(&frame);
    let Event::MessageDelete(delete) = event else {
        panic!("not a delete: {event:?}")
    };
    assert_eq!(delete.message_id.get(), 5);
    assert_eq!(delete.channel_id.get(), 6);
}

#[test]
fn ready_is_understood_by_serenity() {
    let bot = Author::bot(1000, "capture-bot");
    let d = ready(
        &bot,
        1001,
        &[guild().id],
        "abc",
        "ws://127.0.0.1:1",
        Some([0, 2]),
    );
    let parsed: Ready = serde_json::from_value(d.clone()).expect("ready parses");
    assert_eq!(parsed.session_id, "abc");
    assert_eq!(parsed.guilds.len(), 1);
    assert_eq!(parsed.application.id.get(), 1001);
    let (_, event) = parse_dispatch(&dispatch_frame(1, "READY", &d.to_string()));
    assert!(matches!(event, Event::Ready(_)), "{event:?}");
}

#[test]
fn guild_create_with_channels_and_threads_is_understood_by_serenity() {
    let text = text_channel();
    let thread = thread();
    let d = guild_create(&guild(), &[&text, &thread], at());
    let (_, event) = parse_dispatch(&dispatch_frame(2, "GUILD_CREATE", &d.to_string()));
    let Event::GuildCreate(created) = event else {
        let error = serde_json::from_value::<serenity::model::guild::Guild>(d)
            .expect_err("an unknown event means the guild does not parse");
        panic!("GUILD_CREATE not understood: {error}");
    };
    assert_eq!(created.guild.channels.len(), 1);
    assert_eq!(created.guild.threads.len(), 1);
    assert_eq!(
        created.guild.threads[0].parent_id.map(|p| p.get()),
        Some(text.id)
    );
}

#[test]
fn channels_threads_and_dms_deserialize_into_serenity_channel() {
    for info in [text_channel(), thread(), dm()] {
        let value = channel(&info, at());
        let parsed: Channel = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{:?}: {e}\n{value}", info.kind));
        assert_eq!(parsed.id().get(), info.id);
        if let Channel::Guild(guild_channel) = parsed {
            assert_eq!(guild_channel.parent_id.map(|p| p.get()), info.parent_id);
        }
    }
    let (_, event) = parse_dispatch(&dispatch_frame(
        3,
        "THREAD_CREATE",
        &thread_create(&thread(), at()).to_string(),
    ));
    assert!(matches!(event, Event::ThreadCreate(_)), "{event:?}");
}

#[test]
fn rest_bodies_deserialize_into_serenity_types() {
    let user: CurrentUser =
        serde_json::from_value(current_user(&Author::bot(1, "b"))).expect("user parses");
    assert!(user.bot);
    let bot_gateway: BotGateway =
        serde_json::from_value(gateway_bot("ws://x", 2, 4)).expect("gateway/bot parses");
    assert_eq!(bot_gateway.shards, 2);
    assert_eq!(bot_gateway.session_start_limit.max_concurrency, 4);
    let error: serenity::http::DiscordJsonError =
        serde_json::from_value(error_body(10003, "Unknown Channel")).expect("error parses");
    assert_eq!(error.code, 10003);
}

#[test]
fn control_frames_are_understood_by_serenity() {
    let parse = |f: String| serde_json::from_str::<GatewayEvent>(&f).expect("frame parses");
    assert!(matches!(
        parse(hello_frame(41_250)),
        GatewayEvent::Hello(41_250)
    ));
    assert!(matches!(
        parse(heartbeat_ack_frame()),
        GatewayEvent::HeartbeatAck
    ));
    assert!(matches!(
        parse(heartbeat_request_frame()),
        GatewayEvent::Heartbeat(..)
    ));
    assert!(matches!(parse(reconnect_frame()), GatewayEvent::Reconnect));
    assert!(matches!(
        parse(invalid_session_frame(false)),
        GatewayEvent::InvalidateSession(false)
    ));
    assert!(matches!(
        parse(invalid_session_frame(true)),
        GatewayEvent::InvalidateSession(true)
    ));
    let (_, event) = parse_dispatch(&dispatch_frame(5, "RESUMED", "{}"));
    assert!(matches!(event, Event::Resumed(_)), "{event:?}");
}

#[test]
fn a_bad_snowflake_makes_serenity_drop_the_message() {
    // Documents serenity's behaviour that the bot has to live with: the event becomes
    // Unknown rather than an error.
    let mut d = gateway_message(
        &message_object(&NewMessage::text(1, "x"), 5 << 22, at()),
        None,
    );
    d["id"] = json!("abc");
    let (_, event) = parse_dispatch(&dispatch_frame(1, "MESSAGE_CREATE", &d.to_string()));
    assert!(matches!(event, Event::Unknown(_)), "{event:?}");
    // u64::MAX is a valid u64, so serenity accepts it; it does not fit a signed BIGINT.
    d["id"] = json!("18446744073709551615");
    let (_, event) = parse_dispatch(&dispatch_frame(1, "MESSAGE_CREATE", &d.to_string()));
    assert!(matches!(event, Event::MessageCreate(_)), "{event:?}");
}
