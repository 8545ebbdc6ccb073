//! Shard routing with the real serenity client running two shards.

use crate::common;

use std::collections::BTreeMap;

use common::{Seen, WAIT, intents, start_bot_with};
use discord_sim::{Author, NewMessage, Sim, SimConfig, Target, shard_of};

#[tokio::test]
async fn guild_events_reach_only_the_owning_shard_and_duplicates_reach_every_shard() {
    let sim = Sim::start(SimConfig {
        recommended_shards: 2,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    // Guild ids whose shard (of 2) is 0 and 1.
    let guild_on_0 = sim
        .create_guild_with_id(1000 << 22, "even")
        .expect("free id");
    let guild_on_1 = sim
        .create_guild_with_id(1001 << 22, "odd")
        .expect("free id");
    assert_eq!((shard_of(guild_on_0, 2), shard_of(guild_on_1, 2)), (0, 1));
    let channel_on_0 = sim.create_channel(guild_on_0, "a").expect("guild exists");
    let channel_on_1 = sim.create_channel(guild_on_1, "b").expect("guild exists");
    let dm = sim.create_dm(Author::user(5, "friend"));

    // serenity boots shards 5 s apart.
    let mut bot = start_bot_with(&sim, "test-token", intents(), Some(2)).await;
    let sessions = sim
        .wait_for_sessions("two connected shards", WAIT, |s| {
            s.iter().filter(|s| s.connected).count() == 2
        })
        .await
        .expect("both shards identify");
    let shards: Vec<[u32; 2]> = sessions.iter().map(|s| s.shard).collect();
    assert_eq!(shards, vec![[0, 2], [1, 2]]);
    let mut readies = 0;
    while readies < 2 {
        if let Seen::Ready { .. } = bot.next().await {
            readies += 1;
        }
    }

    let on_0 = sim
        .post(NewMessage::text(channel_on_0, "shard 0"))
        .expect("post");
    let on_1 = sim
        .post(NewMessage::text(channel_on_1, "shard 1"))
        .expect("post");
    let in_dm = sim.post(NewMessage::text(dm, "dm")).expect("post");
    let mut by_id = BTreeMap::new();
    for _ in 0..3 {
        let (message, shard) = bot.message().await;
        assert!(
            by_id.insert(message.id.get(), shard).is_none(),
            "each message once"
        );
    }
    assert_eq!(by_id[&on_0], 0);
    assert_eq!(by_id[&on_1], 1);
    assert_eq!(by_id[&in_dm], 0, "DMs go to shard 0");

    // The same dispatch on every shard: the bot sees it twice.
    assert_eq!(
        sim.redispatch_to(on_1, Target::All)
            .expect("message exists"),
        2
    );
    let mut shards_seen = Vec::new();
    for _ in 0..2 {
        let (message, shard) = bot.message().await;
        assert_eq!(message.id.get(), on_1);
        shards_seen.push(shard);
    }
    shards_seen.sort_unstable();
    assert_eq!(shards_seen, vec![0, 1]);
    assert_eq!(sim.dispatch_count(on_1), 3);

    bot.stop().await;
    sim.shutdown().await;
}
