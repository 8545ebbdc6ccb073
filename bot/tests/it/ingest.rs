//! `ingest`, the path of one message, called directly.

use std::time::Duration;

use bot::{IngestError, Ingested, Rejection};
use outbox::payload::Source;
use outbox::record::Recorded;
use sea_orm::sqlx::postgres::PgListener;
use serde_json::json;
use serenity::all::Message;
use testkit::TestDb;

fn message(id: &str, content: &str) -> Message {
    serde_json::from_value(json!({
        "id": id, "channel_id": "20", "guild_id": "1",
        "author": {"id": "7", "username": "trader", "discriminator": "0", "global_name": null, "avatar": null, "bot": false},
        "content": content, "timestamp": "2025-05-15T13:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0
    }))
    .expect("a valid message")
}

#[tokio::test]
async fn ingest_stores_the_message_and_its_event_together_then_notifies_the_event_id() {
    let t = TestDb::new().await;
    let mut listener = PgListener::connect_with(t.db.get_postgres_connection_pool())
        .await
        .expect("listener connects");
    listener.listen(outbox::CHANNEL).await.expect("LISTEN");

    let first = message("1372012942848954388", "A+ Trade Setups");
    let Ingested {
        recorded:
            Recorded::Stored {
                event_id,
                sanitized,
                tombstoned,
            },
        notified,
    } = bot::ingest(&t.db, &first, Source::Gateway)
        .await
        .expect("stored")
    else {
        panic!("a new message is stored");
    };
    assert!(notified && !sanitized && !tombstoned);
    let notification = tokio::time::timeout(Duration::from_secs(30), listener.recv())
        .await
        .expect("a notification in time")
        .expect("the listener works");
    assert_eq!(notification.payload(), event_id.to_string());

    let again = bot::ingest(&t.db, &first, Source::Gateway)
        .await
        .expect("no error");
    assert_eq!(again.recorded, Recorded::Duplicate);
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 1);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 1);
    let raw_id: String = {
        use sea_orm::ConnectionTrait as _;
        t.db.query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT raw->>'id' FROM messages",
        ))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index(0)
        .expect("text")
    };
    assert_eq!(raw_id, "1372012942848954388", "the raw payload is kept");

    let too_big = message("18446744073709551615", "x");
    let error = bot::ingest(&t.db, &too_big, Source::Gateway)
        .await
        .expect_err("rejected");
    assert!(
        matches!(error, IngestError::Rejected(Rejection::SnowflakeOutOfRange)),
        "{error:?}"
    );
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 1);
}
