//! Recording messages and events: atomicity, deduplication, edits, deletes,
//! tombstones and NUL bytes, against a real PostgreSQL.

use outbox::payload::Source;
use outbox::record::{self, Deleted, Edited, MessageEdit, Recorded};
use sea_orm::TransactionTrait;
use testkit::{TestDb, factory};

#[tokio::test]
async fn a_message_and_its_event_commit_together() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    let recorded = record::record_message(&txn, factory::message(10, 1, "hello"), Source::Gateway)
        .await
        .expect("record");
    assert!(matches!(
        recorded,
        Recorded::Stored {
            tombstoned: false,
            sanitized: false,
            ..
        }
    ));
    txn.commit().await.expect("commit");
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 1);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created' AND message_id = 10")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failing_transaction_leaves_neither_message_nor_event() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(11, 1, "doomed"), Source::Gateway)
        .await
        .expect("record");
    // The transaction fails after the record (here: a statement error), so
    // neither row may survive.
    let failed = sea_orm::ConnectionTrait::execute_unprepared(&txn, "SELECT 1/0").await;
    assert!(failed.is_err());
    drop(txn);
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 0);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn a_duplicate_id_creates_no_second_row_or_event() {
    let t = TestDb::new().await;
    for _ in 0..3 {
        let txn = t.db.begin().await.expect("begin");
        record::record_message(&txn, factory::message(12, 1, "once"), Source::Gateway)
            .await
            .expect("record");
        txn.commit().await.expect("commit");
    }
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 1);
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn concurrent_records_with_duplicates_keep_the_ratio_at_exactly_one() {
    let t = TestDb::new().await;
    // 8 tasks, 125 records each: 1,000 records of which 10% repeat an id
    // another task also records.
    let mut tasks = Vec::new();
    for task in 0..8i64 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0u32;
            for i in 0..125i64 {
                let id = if i % 10 == 0 {
                    // Shared ids, recorded by every task.
                    1_000_000 + i
                } else {
                    task * 1_000 + i + 1
                };
                let txn = db.begin().await.expect("begin");
                let r = record::record_message(&txn, factory::message(id, 1, "x"), Source::Gateway)
                    .await
                    .expect("record");
                txn.commit().await.expect("commit");
                if r.event_id().is_some() {
                    stored += 1;
                }
            }
            stored
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.expect("task");
    }
    let unique = 8 * 112 + 13; // 112 own ids per task + 13 shared ids (0, 10, ..., 120)
    assert_eq!(stored, unique);
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages").await,
        i64::from(unique)
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM events").await,
        i64::from(unique)
    );
    let ratio = t
        .scalar(
            "SELECT (ratio * 10000)::bigint FROM event_message_ratio WHERE time_window = '1 hour'",
        )
        .await;
    assert_eq!(ratio, 10_000, "ratio must be exactly 1.0");
}

#[tokio::test]
async fn a_nul_byte_is_replaced_and_flagged_and_the_next_message_still_lands() {
    let t = TestDb::new().await;
    let mut message = factory::message(13, 1, "before\0after");
    message.author_name = "nul\0name".to_owned();
    message.raw = serde_json::json!({"content": "before\0after"});
    let txn = t.db.begin().await.expect("begin");
    let recorded = record::record_message(&txn, message, Source::Gateway)
        .await
        .expect("a NUL byte must not fail the insert");
    txn.commit().await.expect("commit");
    assert!(matches!(
        recorded,
        Recorded::Stored {
            sanitized: true,
            ..
        }
    ));
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 13 AND sanitized AND content = 'before' || chr(65533) || 'after'")
            .await,
        1
    );

    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(14, 1, "next"), Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 2);
}

#[tokio::test]
async fn four_byte_emoji_and_sql_looking_text_are_stored_byte_exact() {
    let t = TestDb::new().await;
    let emoji = "🐐".repeat(4_000);
    let sql = "'); DROP TABLE messages; -- \u{202E}\u{200D}ｆｕｌｌ";
    for (id, text) in [(20, emoji.as_str()), (21, sql)] {
        let txn = t.db.begin().await.expect("begin");
        record::record_message(&txn, factory::message(id, 1, text), Source::Gateway)
            .await
            .expect("record");
        txn.commit().await.expect("commit");
    }
    assert_eq!(
        t.scalar("SELECT octet_length(content)::bigint FROM messages WHERE id = 20")
            .await,
        16_000
    );
    let stored: String = sea_orm::ConnectionTrait::query_one_raw(
        &t.db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT content FROM messages WHERE id = 21",
        ),
    )
    .await
    .expect("query")
    .expect("row")
    .try_get_by_index(0)
    .expect("text");
    assert_eq!(stored, sql);
}

#[tokio::test]
async fn an_edit_writes_an_event_only_when_text_or_edit_time_changes() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(30, 1, "v1"), Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");

    let edit = |content: Option<&str>| MessageEdit {
        id: 30,
        content: content.map(str::to_owned),
        edited_at: None,
        embeds: Some(serde_json::json!([{"type": "link"}])),
    };
    let txn = t.db.begin().await.expect("begin");
    let same = record::record_edit(&txn, edit(Some("v1")))
        .await
        .expect("edit");
    let preview_only = record::record_edit(&txn, edit(None)).await.expect("edit");
    let changed = record::record_edit(&txn, edit(Some("v2")))
        .await
        .expect("edit");
    let unknown = record::record_edit(
        &txn,
        MessageEdit {
            id: 31,
            ..edit(Some("x"))
        },
    )
    .await
    .expect("edit");
    txn.commit().await.expect("commit");
    assert_eq!(same, Edited::Unchanged);
    assert_eq!(preview_only, Edited::Unchanged);
    assert!(matches!(changed, Edited::Updated { .. }));
    assert_eq!(unknown, Edited::Unknown);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.updated'")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE content = 'v2'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_older_edit_never_replaces_a_newer_one() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(35, 1, "v1"), Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    let at = |minute: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-11-27T10:{minute:02}:00Z"))
            .expect("time")
            .with_timezone(&chrono::Utc)
    };
    let edit = |content: &str, minute: u32| MessageEdit {
        id: 35,
        content: Some(content.to_owned()),
        edited_at: Some(at(minute)),
        embeds: None,
    };

    // The second edit is applied first, as racing updates can be.
    let txn = t.db.begin().await.expect("begin");
    let newer = record::record_edit(&txn, edit("v3", 2))
        .await
        .expect("edit");
    let older = record::record_edit(&txn, edit("v2", 1))
        .await
        .expect("edit");
    txn.commit().await.expect("commit");
    assert!(matches!(newer, Edited::Updated { .. }));
    assert_eq!(older, Edited::Unchanged, "a stale version changes nothing");
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 35 AND content = 'v3'")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.updated'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_delete_before_its_create_leaves_a_tombstone_that_the_create_respects() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    let first = record::record_delete(&txn, 40, 1).await.expect("delete");
    txn.commit().await.expect("commit");
    assert_eq!(first, Deleted::Tombstoned);

    let txn = t.db.begin().await.expect("begin");
    let created = record::record_message(&txn, factory::message(40, 1, "late"), Source::Gateway)
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    assert!(matches!(
        created,
        Recorded::Stored {
            tombstoned: true,
            ..
        }
    ));
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 40 AND deleted_at IS NOT NULL")
            .await,
        1,
        "the late create must not resurrect the message"
    );

    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(41, 1, "live"), Source::Gateway)
        .await
        .expect("record");
    let deleted = record::record_delete(&txn, 41, 1).await.expect("delete");
    let again = record::record_delete(&txn, 41, 1).await.expect("delete");
    txn.commit().await.expect("commit");
    assert!(matches!(deleted, Deleted::Deleted { .. }));
    assert_eq!(again, Deleted::AlreadyDeleted);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.deleted'")
            .await,
        1
    );
}

#[tokio::test]
async fn racing_creates_and_deletes_of_one_id_never_resurrect_it() {
    let t = TestDb::new().await;
    let mut tasks = Vec::new();
    for id in 100..140i64 {
        for op in 0..2 {
            let db = t.db.clone();
            tasks.push(tokio::spawn(async move {
                let txn = db.begin().await.expect("begin");
                if op == 0 {
                    record::record_message(&txn, factory::message(id, 1, "race"), Source::Gateway)
                        .await
                        .expect("record");
                } else {
                    record::record_delete(&txn, id, 1).await.expect("delete");
                }
                txn.commit().await.expect("commit");
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE deleted_at IS NULL")
            .await,
        0,
        "every message was deleted, whichever arrived first"
    );
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 40);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        40
    );
}

#[tokio::test]
async fn record_messages_answers_stored_duplicate_or_tombstoned_for_each_id_in_the_order_given() {
    let t = TestDb::new().await;
    // Stored before: 50. Deleted before its create: 51.
    let txn = t.db.begin().await.expect("begin");
    record::record_message(&txn, factory::message(50, 1, "old"), Source::Gateway)
        .await
        .expect("record");
    assert_eq!(
        record::record_delete(&txn, 51, 1).await.expect("delete"),
        Deleted::Tombstoned
    );
    txn.commit().await.expect("commit");

    let edited_at = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00.123456Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut no_guild = factory::message(53, 1, "direct\0message");
    no_guild.guild_id = None;
    no_guild.edited_at = Some(edited_at);
    let page = vec![
        factory::message(52, 1, "new"),
        factory::message(50, 1, "old again"),
        factory::message(51, 1, "deleted first"),
        no_guild,
        // The same id twice in one call: stored once.
        factory::message(52, 1, "new, replayed"),
    ];
    let txn = t.db.begin().await.expect("begin");
    let recorded = record::record_messages(&txn, page, Source::Backfill)
        .await
        .expect("record");
    txn.commit().await.expect("commit");

    let ids: Vec<i64> = recorded.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        vec![52, 50, 51, 53, 52],
        "one answer per message, in order"
    );
    assert!(matches!(
        recorded[0].1,
        Recorded::Stored {
            tombstoned: false,
            sanitized: false,
            ..
        }
    ));
    assert_eq!(recorded[1].1, Recorded::Duplicate);
    assert!(matches!(
        recorded[2].1,
        Recorded::Stored {
            tombstoned: true,
            ..
        }
    ));
    assert!(matches!(
        recorded[3].1,
        Recorded::Stored {
            sanitized: true,
            tombstoned: false,
            ..
        }
    ));
    assert_eq!(recorded[4].1, Recorded::Duplicate);

    // Each stored message has exactly its own event, with the id returned.
    for (id, r) in &recorded {
        if let Recorded::Stored { event_id, .. } = r {
            assert_eq!(
                t.scalar(&format!(
                    "SELECT count(*) FROM events WHERE id = '{event_id}' AND message_id = {id} \
                     AND kind = 'message.created' AND payload->>'source' = 'backfill'"
                ))
                .await,
                1
            );
        }
    }
    assert_eq!(t.scalar("SELECT count(*) FROM messages").await, 4);
    assert_eq!(
        t.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        4
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 50 AND content = 'old'")
            .await,
        1,
        "a duplicate changes nothing"
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 52 AND content = 'new'")
            .await,
        1,
        "the first copy of an id wins"
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 51 AND deleted_at IS NOT NULL")
            .await,
        1
    );
    // The nullable columns keep their NULLs and their values exactly.
    assert_eq!(
        t.scalar(
            "SELECT count(*) FROM messages WHERE id = 53 AND guild_id IS NULL AND sanitized \
             AND edited_at = '2026-11-27T10:00:00.123456Z'"
        )
        .await,
        1
    );
    assert_eq!(
        t.scalar(
            "SELECT count(*) FROM messages WHERE id = 52 AND guild_id = 1 AND edited_at IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_locked_variants_apply_an_edit_and_a_delete_after_a_create_in_one_transaction() {
    let t = TestDb::new().await;
    let txn = t.db.begin().await.expect("begin");
    record::lock_message_ids(&txn, &[60, 61])
        .await
        .expect("lock");
    let created = record::record_messages_locked(
        &txn,
        vec![
            (factory::message(60, 1, "v1"), Source::Gateway),
            (factory::message(61, 1, "doomed"), Source::Gateway),
        ],
    )
    .await
    .expect("record");
    assert!(created.iter().all(|(_, r)| r.event_id().is_some()));
    let edited = record::record_edit_locked(
        &txn,
        MessageEdit {
            id: 60,
            content: Some("v2".to_owned()),
            edited_at: None,
            embeds: None,
        },
    )
    .await
    .expect("edit");
    let deleted = record::record_delete_locked(&txn, 61, 1)
        .await
        .expect("delete");
    txn.commit().await.expect("commit");
    assert!(
        matches!(edited, Edited::Updated { .. }),
        "the edit sees the create"
    );
    assert!(
        matches!(deleted, Deleted::Deleted { .. }),
        "the delete sees the create"
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 60 AND content = 'v2'")
            .await,
        1
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM messages WHERE id = 61 AND deleted_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(t.scalar("SELECT count(*) FROM events").await, 4);
}
