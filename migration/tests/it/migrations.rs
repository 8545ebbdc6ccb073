//! The migrations against a real PostgreSQL: down and up again, and
//! concurrent callers on an empty database.

use migration::{Migrator, MigratorTrait};
use testkit::TestDb;

const OBJECTS: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') AND c.relname <> 'seaql_migrations'";

#[tokio::test]
async fn migrations_run_up_down_and_up_again() {
    let t = TestDb::new().await;
    let all = t.scalar(OBJECTS).await;
    // 13 tables and 5 views.
    assert_eq!(all, 18);
    Migrator::down(&t.db, None).await.expect("down");
    assert_eq!(t.scalar(OBJECTS).await, 0);
    Migrator::up(&t.db, None).await.expect("up again");
    assert_eq!(t.scalar(OBJECTS).await, all);
    // The views answer on an empty schema.
    for view in [
        "event_message_ratio",
        "processing_rate",
        "orphaned_events",
        "pipeline_health",
        "upstream_coverage",
    ] {
        t.scalar(&format!("SELECT count(*) FROM {view}")).await;
    }
    assert_eq!(t.scalar("SELECT count(*) FROM pipeline_health").await, 1);
}

#[tokio::test]
async fn three_services_migrating_an_empty_database_at_once_all_succeed() {
    let t = TestDb::new().await;
    Migrator::down(&t.db, None).await.expect("down");
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let db = t.pool(&service::db::PoolSettings::new("aplus-test-migrate", 3));
        tasks.push(tokio::spawn(async move { migration::migrate(&db).await }));
    }
    for task in tasks {
        task.await.expect("task").expect("migrate");
    }
    assert_eq!(t.scalar(OBJECTS).await, 18);
}

#[tokio::test]
async fn every_view_has_a_comment_describing_its_columns() {
    let t = TestDb::new().await;
    let described = t
        .scalar(
            "SELECT count(*) FROM pg_class c WHERE c.relkind = 'v' \
             AND obj_description(c.oid, 'pg_class') LIKE '%Columns:%'",
        )
        .await;
    assert_eq!(described, 5);
}

#[tokio::test]
async fn upstream_coverage_compares_what_a_sweep_listed_with_what_is_stored_per_hour() {
    let t = TestDb::new().await;
    // Two of the three messages Discord listed at 10:00 are stored (one is
    // in the hour but before the window and does not count), one deleted.
    t.exec(
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, deleted_at, raw) VALUES \
         (1, 7, 1, 'a', 'x', '2026-12-05 10:05+00', NULL, '{}'), \
         (2, 7, 1, 'a', 'x', '2026-12-05 10:20+00', NULL, '{}'), \
         (3, 7, 1, 'a', 'x', '2026-12-05 10:25+00', now(), '{}'), \
         (4, 7, 1, 'a', 'x', '2026-12-05 09:59+00', NULL, '{}'), \
         (5, 7, 1, 'a', 'x', '2026-12-05 11:10+00', NULL, '{}')",
    )
    .await;
    t.exec(
        "INSERT INTO upstream_sweeps (channel_id, window_start, window_end, listed, listed_by_hour, swept_at) VALUES \
         (7, '2026-12-05 10:00+00', '2026-12-05 11:30+00', 4, \
          '{\"2026-12-05T10:00:00Z\": 3, \"2026-12-05T11:00:00Z\": 1}', '2026-12-05 11:30+00')",
    )
    .await;
    assert_eq!(t.scalar("SELECT count(*) FROM upstream_coverage").await, 2);
    assert_eq!(
        t.scalar("SELECT stored FROM upstream_coverage WHERE hour = '2026-12-05 10:00+00'")
            .await,
        2
    );
    assert_eq!(
        t.scalar(
            "SELECT (ratio * 10000)::bigint FROM upstream_coverage WHERE hour = '2026-12-05 10:00+00'"
        )
        .await,
        6667
    );
    assert_eq!(
        t.scalar("SELECT (ratio * 10000)::bigint FROM upstream_coverage WHERE hour = '2026-12-05 11:00+00'")
            .await,
        10000
    );
}

/// The plan PostgreSQL chooses for `query`, one line a node.
async fn explain(t: &TestDb, query: &str) -> String {
    use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
    t.db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("EXPLAIN {query}"),
    ))
    .await
    .expect("explain")
    .iter()
    .map(|row| row.try_get_by_index::<String>(0).expect("plan line"))
    .collect::<Vec<_>>()
    .join("\n")
}

/// `outbox_pending_events()` only keeps its callers' plans if the planner
/// inlines it: a function scan would materialise every pending event on
/// every call instead of walking `events_txid` from the watermark.
#[tokio::test]
async fn the_pending_events_function_is_inlined_into_its_callers() {
    let t = TestDb::new().await;
    for query in [
        "SELECT * FROM orphaned_events",
        "SELECT * FROM pipeline_health",
        "SELECT id FROM outbox_pending_events() ORDER BY txid, id LIMIT 10",
    ] {
        let plan = explain(&t, query).await;
        assert!(
            !plan.contains("Function Scan on outbox_pending_events"),
            "{query}:\n{plan}"
        );
        assert!(
            plan.contains("outbox_processed_through()"),
            "{query}:\n{plan}"
        );
    }
    // A caller that read the watermark passes it as a literal, which the
    // plan must show in the index condition.
    let query = "SELECT id FROM outbox_pending_events('0'::xid8) ORDER BY txid, id LIMIT 10";
    let plan = explain(&t, query).await;
    assert!(
        !plan.contains("Function Scan on outbox_pending_events") && plan.contains("'0'::xid8"),
        "{query}:\n{plan}"
    );
}
