//! The pools ping only a connection that sat idle: a connection that died
//! while idle (a server restart, an ended session) is still replaced before
//! use, so the writer's one-connection pool does not start an outage for it.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement};
use service::db::{PING_IF_IDLE_FOR, PoolSettings};
use testkit::TestDb;

async fn backend_pid(db: &DatabaseConnection) -> Result<i32, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await?
        .expect("one row");
    row.try_get_by::<i32, _>("pid")
}

#[tokio::test]
async fn a_connection_ended_while_idle_is_replaced_before_the_next_use() {
    let t = TestDb::new().await;
    let mut settings = PoolSettings::new("aplus-pool-test", 1);
    settings.acquire_timeout = Duration::from_secs(3);
    let pool = t.pool(&settings);
    let first = backend_pid(&pool).await.expect("first use");

    t.db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_terminate_backend($1)",
        [first.into()],
    ))
    .await
    .expect("terminate");
    // Idle for longer than the ping threshold: the time itself is the
    // condition under test.
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(300)).await;

    let second = backend_pid(&pool)
        .await
        .expect("the dead connection is found by the ping and replaced");
    assert_ne!(first, second, "a new session");
}
