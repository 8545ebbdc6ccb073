//! Unit tests of the state: history pages, silent loss, deletes, refusals and intents.

use super::*;
use crate::error::SimError;
use crate::message::NewMessage;
use crate::world::ChannelKind;

fn state() -> State {
    State::new(StateSettings {
        bot: Author::bot(1, "bot"),
        application_id: 2,
        gateway_url: "ws://127.0.0.1:1".into(),
        bad_token: Some("bad".into()),
        disallowed_intents: 0,
        resume_window: Duration::from_secs(60),
        replay_buffer: 1000,
        rest_log_limit: 100,
    })
}

fn with_channel(state: &mut State) -> u64 {
    let guild = state
        .add_guild(GuildInfo {
            id: 10 << 22,
            name: "g".into(),
            owner_id: 1,
        })
        .expect("new guild");
    state
        .add_channel(ChannelInfo {
            id: 20 << 22,
            guild_id: Some(guild),
            name: "c".into(),
            kind: ChannelKind::Text,
            parent_id: None,
            recipient: None,
            forbidden: false,
        })
        .expect("new channel")
}

fn ids(values: &[Value]) -> Vec<u64> {
    values
        .iter()
        .map(|v| raw_snowflake(v, "id").expect("id"))
        .collect()
}

#[test]
fn history_pages_follow_discord_semantics() {
    let mut state = state();
    let channel = with_channel(&mut state);
    for i in 1..=10_u64 {
        state
            .insert_message(&NewMessage::text(channel, "m").id(i << 22), false)
            .expect("insert");
    }
    let id = |i: u64| i << 22;
    assert_eq!(
        ids(&state.history(channel, Page::Latest, 3)),
        vec![id(10), id(9), id(8)]
    );
    assert_eq!(
        ids(&state.history(channel, Page::Before(id(5)), 2)),
        vec![id(4), id(3)]
    );
    // `after` gives the messages right after the anchor, still newest first.
    assert_eq!(
        ids(&state.history(channel, Page::After(id(2)), 3)),
        vec![id(5), id(4), id(3)]
    );
    assert_eq!(
        ids(&state.history(channel, Page::Around(id(5)), 4)),
        vec![id(7), id(6), id(5), id(4)]
    );
    assert_eq!(
        ids(&state.history(channel, Page::Around(id(5)), 1)),
        vec![id(5)]
    );
}

#[test]
fn silently_lost_events_stay_in_history_and_ground_truth() {
    let mut state = state();
    let channel = with_channel(&mut state);
    state.set_silent_loss(Some(SilentLoss { rate: 1.0, seed: 7 }));
    let id = state
        .insert_message(&NewMessage::text(channel, "m"), true)
        .expect("insert");
    state.edit_message(id, "edited").expect("edit");
    state.delete_message(id).expect("delete");
    assert_eq!(
        state.stats.silently_dropped, 3,
        "create, update and delete dropped"
    );
    assert!(
        state
            .truth()
            .get(id)
            .is_some_and(|m| m.deleted && m.edits == 1)
    );
    let kept = state
        .insert_message(&NewMessage::text(channel, "kept"), true)
        .expect("insert");
    assert_eq!(ids(&state.history(channel, Page::Latest, 10)), vec![kept]);
    state.set_silent_loss(None);
    state
        .insert_message(&NewMessage::text(channel, "heard"), true)
        .expect("insert");
    assert_eq!(
        state.stats.silently_dropped, 4,
        "nothing dropped once it is off"
    );
}

#[test]
fn a_silent_loss_rate_drops_about_that_fraction() {
    let mut state = state();
    let channel = with_channel(&mut state);
    state.set_silent_loss(Some(SilentLoss {
        rate: 0.05,
        seed: 42,
    }));
    for _ in 0..4000 {
        state
            .insert_message(&NewMessage::text(channel, "m"), true)
            .expect("insert");
    }
    let dropped = state.stats.silently_dropped;
    assert!(
        (120..=280).contains(&dropped),
        "{dropped} of 4000 dropped at 5%"
    );
}

#[test]
fn deleted_messages_leave_history_but_stay_in_ground_truth() {
    let mut state = state();
    let channel = with_channel(&mut state);
    let id = state
        .insert_message(&NewMessage::text(channel, "m"), false)
        .expect("insert");
    state.delete_message(id).expect("delete");
    assert!(state.history(channel, Page::Latest, 50).is_empty());
    assert!(state.ground_truth().get(id).is_some_and(|m| m.deleted));
    assert!(matches!(
        state.delete_message(id),
        Err(SimError::UnknownMessage(_))
    ));
}

#[test]
fn identify_refusals_use_discords_close_codes() {
    let mut state = state();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let conn = state.open_connection(tx);
    let identify = |token: &str, shard: [u32; 2]| Identify {
        token: token.into(),
        intents: intents::GUILD_MESSAGES,
        shard,
    };
    assert_eq!(
        state.identify(conn, identify("Bot bad", [0, 1])),
        Err(RefuseWith(4004))
    );
    assert_eq!(
        state.identify(conn, identify("good", [2, 2])),
        Err(RefuseWith(4010))
    );
    assert!(state.identify(conn, identify("good", [0, 1])).is_ok());
    assert_eq!(
        state.identify(conn, identify("good", [0, 1])),
        Err(RefuseWith(4005))
    );
}

#[test]
fn guild_messages_are_blanked_without_message_content() {
    let gate = Gate::Message {
        in_guild: true,
        content_exempt: false,
    };
    assert_eq!(gate.check(intents::GUILD_MESSAGES), Some(true));
    assert_eq!(
        gate.check(intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT),
        Some(false)
    );
    assert_eq!(gate.check(intents::DIRECT_MESSAGES), None);
    let dm = Gate::Message {
        in_guild: false,
        content_exempt: false,
    };
    assert_eq!(dm.check(intents::DIRECT_MESSAGES), Some(false));
}
