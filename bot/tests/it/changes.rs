//! Edits, deletes, forwards and embed-only messages.

use crate::common::{self, one, start_ready, wait_count, world};
use discord_sim::{NewMessage, Target, payload};
use serde_json::json;
use testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_real_edits_make_events_and_a_link_preview_does_not() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    let id = w
        .sim
        .post(NewMessage::text(
            channel,
            "SPY 585 https://example.com/chart",
        ))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;

    // Discord unfurls the link: embeds change, the text does not.
    w.sim
        .set_embeds(
            id,
            vec![payload::link_preview_embed(
                "https://example.com/chart",
                "Chart",
                "SPY daily",
            )],
        )
        .expect("the message exists");
    bot.wait_stats("the link preview", |s| s.edits_unchanged == 1)
        .await;
    w.sim
        .edit(id, "SPY 586 (corrected)")
        .expect("the message exists");
    bot.wait_stats("the edit", |s| s.edits_updated == 1).await;

    let updated: i64 = one(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.updated'",
    )
    .await;
    assert_eq!(updated, 1, "one event for the edit, none for the preview");
    let content: String = one(
        &t.db,
        &format!("SELECT content FROM messages WHERE id = {id}"),
    )
    .await;
    assert_eq!(content, "SPY 586 (corrected)");
    let edited: bool = one(
        &t.db,
        &format!("SELECT edited_at IS NOT NULL FROM messages WHERE id = {id}"),
    )
    .await;
    assert!(edited);

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_bulk_deletes_and_a_delete_before_its_create_all_end_deleted() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            w.sim
                .post(NewMessage::text(channel, format!("to delete {i}")))
                .expect("posted")
        })
        .collect();
    wait_count(&t.db, "SELECT count(*) FROM messages", 3).await;

    w.sim.delete(ids[0]).expect("the message exists");
    w.sim.dispatch_raw(
        Target::All,
        "MESSAGE_DELETE_BULK",
        json!({
            "ids": [ids[1].to_string(), ids[2].to_string()],
            "channel_id": channel.to_string(),
            "guild_id": w.guild.to_string(),
        }),
    );
    bot.wait_stats("three deletes", |s| s.deletes_deleted == 3)
        .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
        3,
    )
    .await;
    wait_count(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.deleted'",
        3,
    )
    .await;

    // A delete for an id the bot has not seen yet, then its create.
    let late = w
        .sim
        .build_message(&NewMessage::text(channel, "arrives late"))
        .expect("the channel exists");
    let late_id: u64 = late["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id");
    w.sim.dispatch_raw(
        Target::All,
        "MESSAGE_DELETE",
        json!({"id": late_id.to_string(), "channel_id": channel.to_string(), "guild_id": w.guild.to_string()}),
    );
    bot.wait_stats("the tombstone", |s| s.deletes_tombstoned == 1)
        .await;
    w.sim
        .post(NewMessage::text(channel, "arrives late").id(late_id))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 4).await;
    let deleted: bool = one(
        &t.db,
        &format!("SELECT deleted_at IS NOT NULL FROM messages WHERE id = {late_id}"),
    )
    .await;
    assert!(deleted, "the late create stays deleted");
    let created: i64 = one(
        &t.db,
        &format!(
            "SELECT count(*) FROM events WHERE message_id = {late_id} AND kind = 'message.created'"
        ),
    )
    .await;
    assert_eq!(created, 1, "every stored message has its created event");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_keep_the_snapshot_text_and_embed_only_messages_keep_their_embeds() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;

    let text = "A+ Trade Setups — Thursday May 15\nSPY\nRejection: 590.5";
    let forward = w
        .sim
        .post(NewMessage::forward(channel, text))
        .expect("posted");
    let embed_only = w
        .sim
        .post(NewMessage::embed_only(
            channel,
            vec![payload::embed("SPY levels", "Breakout above 590")],
        ))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 2).await;

    let (content, is_forward): (String, bool) = (
        one(
            &t.db,
            &format!("SELECT content FROM messages WHERE id = {forward}"),
        )
        .await,
        one(
            &t.db,
            &format!("SELECT is_forward FROM messages WHERE id = {forward}"),
        )
        .await,
    );
    assert_eq!(content, text);
    assert!(is_forward);
    let snapshot_in_raw: String = one(
        &t.db,
        &format!("SELECT raw->'message_snapshots'->0->'message'->>'content' FROM messages WHERE id = {forward}"),
    )
    .await;
    assert_eq!(
        snapshot_in_raw, text,
        "the raw payload keeps Discord's shape"
    );

    let (content, title): (String, String) = (
        one(
            &t.db,
            &format!("SELECT content FROM messages WHERE id = {embed_only}"),
        )
        .await,
        one(
            &t.db,
            &format!("SELECT embeds->0->>'title' FROM messages WHERE id = {embed_only}"),
        )
        .await,
    );
    assert_eq!(content, "");
    assert_eq!(title, "SPY levels");
    let stats = bot.stats();
    assert_eq!(stats.stored(), 2, "{stats:#?}");

    bot.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_carrying_a_whole_unknown_message_is_stored_as_its_create() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let channel = w.channels[0];
    let bot = start_ready(common::config(t.args(), &w.sim, &w.channels)).await;

    let mut message = w
        .sim
        .build_message(&NewMessage::text(channel, "edited before we saw it"))
        .expect("the channel exists");
    message["edited_timestamp"] = json!(chrono::Utc::now().to_rfc3339());
    let id: i64 = message["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id");
    w.sim.dispatch_raw(Target::All, "MESSAGE_UPDATE", message);
    // A partial update of an unknown message is only counted.
    w.sim.dispatch_raw(
        Target::All,
        "MESSAGE_UPDATE",
        json!({"id": "12345", "channel_id": channel.to_string(), "embeds": []}),
    );
    bot.wait_stats("both updates", |s| {
        s.edits_stored_as_create == 1 && s.edits_unknown == 1
    })
    .await;
    let content: String = one(
        &t.db,
        &format!("SELECT content FROM messages WHERE id = {id}"),
    )
    .await;
    assert_eq!(content, "edited before we saw it");
    let created: i64 = one(
        &t.db,
        "SELECT count(*) FROM events WHERE kind = 'message.created'",
    )
    .await;
    assert_eq!(created, 1);

    bot.stop().await;
    w.sim.shutdown().await;
}
