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
    // 10 tables and 4 views.
    assert_eq!(all, 14);
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
    assert_eq!(t.scalar(OBJECTS).await, 14);
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
    assert_eq!(described, 4);
}
