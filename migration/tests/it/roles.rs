//! The service roles against a real PostgreSQL: every object of the schema
//! has a decision in `roles::GRANTS`, and each act a service must never do
//! is refused by the server with `insufficient_privilege` (42501).

use migration::roles::{self, GRANTS, Kind, Role};
use sea_orm::sqlx::{Connection as _, PgConnection};
use testkit::TestDb;

const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Runs `sql` as `role` and asserts the server refuses it for lack of rights.
async fn assert_refused(t: &TestDb, role: Role, sql: &str) {
    let mut conn = PgConnection::connect(&t.url_as(role))
        .await
        .unwrap_or_else(|e| panic!("{} cannot log in: {e}", role.name()));
    let result = sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await;
    match result {
        Ok(done) => panic!(
            "{} was allowed `{sql}` ({} rows)",
            role.name(),
            done.rows_affected()
        ),
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()));
            assert_eq!(
                code.as_deref(),
                Some(INSUFFICIENT_PRIVILEGE),
                "{} running `{sql}` failed, but not for lack of rights: {e}",
                role.name()
            );
        }
    }
    conn.close().await.ok();
}

/// Runs `sql` as `role` and asserts it succeeds.
async fn assert_allowed(t: &TestDb, role: Role, sql: &str) {
    let mut conn = PgConnection::connect(&t.url_as(role))
        .await
        .unwrap_or_else(|e| panic!("{} cannot log in: {e}", role.name()));
    sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{} was refused `{sql}`: {e}", role.name()));
    conn.close().await.ok();
}

/// A stored message and its event, written as the bot writes them.
async fn a_message_and_its_event(t: &TestDb) {
    t.exec(
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, raw) \
         VALUES (1001, 7, 8, 'a', 'x', now(), '{}'); \
         INSERT INTO events (id, message_id, kind, payload) \
         VALUES ('00000000-0000-0000-0000-000000000001', 1001, 'message.created', '{}')",
    )
    .await;
}

#[tokio::test]
async fn every_object_of_the_schema_has_a_grant_decision() {
    let t = TestDb::new().await;
    let objects: Vec<(String, String)> = sea_orm::sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
         UNION ALL \
         SELECT p.oid::regprocedure::text, 'function' FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' \
         ORDER BY 1",
    )
    .fetch_all(t.db.get_postgres_connection_pool())
    .await
    .expect("listing the schema");
    assert!(objects.len() >= 17, "the schema looks empty: {objects:?}");
    let undecided: Vec<_> = objects
        .iter()
        .filter(|(name, _)| !GRANTS.iter().any(|g| g.object == name))
        .collect();
    assert!(
        undecided.is_empty(),
        "not listed in migration/src/roles.rs GRANTS (decide who may use them): {undecided:?}"
    );
    let stale: Vec<_> = GRANTS
        .iter()
        .filter(|g| !objects.iter().any(|(name, _)| name == g.object))
        .map(|g| g.object)
        .collect();
    assert!(
        stale.is_empty(),
        "GRANTS lists objects the schema lacks: {stale:?}"
    );
}

#[tokio::test]
async fn every_object_is_owned_by_the_owner_role() {
    let t = TestDb::new().await;
    for grant in GRANTS {
        let sql = match grant.kind {
            Kind::Function => format!(
                "SELECT proowner::regrole::text FROM pg_proc WHERE oid = '{}'::regprocedure",
                grant.object
            ),
            _ => format!(
                "SELECT relowner::regrole::text FROM pg_class WHERE oid = '{}'::regclass",
                grant.object
            ),
        };
        assert_eq!(t.text(&sql).await, Role::Owner.name(), "{}", grant.object);
    }
    assert_eq!(
        t.text("SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()")
            .await,
        Role::Owner.name()
    );
}

#[tokio::test]
async fn granting_twice_changes_nothing() {
    let t = TestDb::new().await;
    let acl = "SELECT string_agg(relname || coalesce(relacl::text, ''), ' ' ORDER BY relname) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = 'public'";
    let before = t.text(acl).await;
    roles::grant(&t.db).await.expect("grant");
    roles::hand_over(&t.db).await.expect("hand over");
    assert_eq!(t.text(acl).await, before);
}

#[tokio::test]
async fn the_reconciler_may_read_every_session_and_end_a_listener() {
    let t = TestDb::new().await;
    for member_of in Role::Reconciler.memberships() {
        let member = t
            .first::<bool>(&format!(
                "SELECT pg_has_role('{}', '{member_of}', 'USAGE')",
                Role::Reconciler.name()
            ))
            .await;
        assert!(member, "aplus_reconciler is not in {member_of}");
    }
    assert_allowed(&t, Role::Reconciler, "SELECT count(*) FROM pipeline_health").await;
}

#[tokio::test]
async fn a_bot_cannot_write_the_inbox() {
    let t = TestDb::new().await;
    a_message_and_its_event(&t).await;
    assert_refused(
        &t,
        Role::Bot,
        "INSERT INTO inbox (event_id, status) VALUES ('00000000-0000-0000-0000-000000000001', 'processed')",
    )
    .await;
    assert_refused(&t, Role::Bot, "SELECT count(*) FROM inbox").await;
}

#[tokio::test]
async fn a_bot_cannot_write_setups() {
    let t = TestDb::new().await;
    assert_refused(&t, Role::Bot, "DELETE FROM setups").await;
    assert_refused(&t, Role::Bot, "UPDATE setups SET is_current = false").await;
}

#[tokio::test]
async fn a_bot_may_write_messages_and_events() {
    let t = TestDb::new().await;
    assert_allowed(
        &t,
        Role::Bot,
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, raw) \
         VALUES (1002, 7, 8, 'a', 'x', now(), '{}'); \
         INSERT INTO events (id, message_id, kind, payload) \
         VALUES ('00000000-0000-0000-0000-000000000002', 1002, 'message.created', '{}'); \
         UPDATE messages SET deleted_at = now() WHERE id = 1002",
    )
    .await;
}

#[tokio::test]
async fn a_worker_cannot_write_messages() {
    let t = TestDb::new().await;
    a_message_and_its_event(&t).await;
    assert_refused(&t, Role::Worker, "UPDATE messages SET content = 'forged'").await;
    assert_refused(
        &t,
        Role::Worker,
        "INSERT INTO messages (id, channel_id, author_id, author_name, content, sent_at, raw) \
         VALUES (1003, 7, 8, 'a', 'x', now(), '{}')",
    )
    .await;
}

#[tokio::test]
async fn a_worker_cannot_write_events() {
    let t = TestDb::new().await;
    a_message_and_its_event(&t).await;
    assert_refused(
        &t,
        Role::Worker,
        "INSERT INTO events (id, message_id, kind, payload) \
         VALUES ('00000000-0000-0000-0000-000000000003', 1001, 'message.deleted', '{}')",
    )
    .await;
    assert_refused(&t, Role::Worker, "UPDATE events SET payload = '{}'").await;
    assert_refused(&t, Role::Worker, "DELETE FROM events").await;
}

#[tokio::test]
async fn a_worker_may_claim_events_with_a_row_lock() {
    let t = TestDb::new().await;
    a_message_and_its_event(&t).await;
    assert_allowed(
        &t,
        Role::Worker,
        "SELECT e.id FROM events e WHERE e.txid >= outbox_processed_through() \
         FOR UPDATE OF e SKIP LOCKED",
    )
    .await;
}

#[tokio::test]
async fn a_reconciler_cannot_drop_a_table() {
    let t = TestDb::new().await;
    assert_refused(&t, Role::Reconciler, "DROP TABLE messages").await;
    assert_refused(&t, Role::Reconciler, "DROP VIEW pipeline_health").await;
}

#[tokio::test]
async fn a_reconciler_cannot_alter_a_table() {
    let t = TestDb::new().await;
    assert_refused(&t, Role::Reconciler, "ALTER TABLE events ADD COLUMN x int").await;
    assert_refused(&t, Role::Reconciler, "TRUNCATE inbox").await;
}

#[tokio::test]
async fn no_service_can_create_a_table() {
    let t = TestDb::new().await;
    for role in Role::SERVICES {
        assert_refused(&t, role, "CREATE TABLE intruder (x int)").await;
        assert_refused(&t, role, "CREATE TEMPORARY TABLE intruder (x int)").await;
        assert_refused(&t, role, "CREATE SCHEMA intruder").await;
    }
}

#[tokio::test]
async fn the_reconciler_may_end_a_worker_session_and_the_bot_may_not() {
    let t = TestDb::new().await;
    let mut worker = PgConnection::connect(&t.url_as(Role::Worker))
        .await
        .expect("the worker logs in");
    let pid: i32 = sea_orm::sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut worker)
        .await
        .expect("pid");
    assert_refused(
        &t,
        Role::Bot,
        &format!("SELECT pg_terminate_backend({pid})"),
    )
    .await;
    let mut reconciler = PgConnection::connect(&t.url_as(Role::Reconciler))
        .await
        .expect("the reconciler logs in");
    let ended: bool = sea_orm::sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&mut reconciler)
        .await
        .expect("the reconciler may end a worker's session");
    assert!(ended);
    let seen: String = sea_orm::sqlx::query_scalar(
        "SELECT coalesce(max(query), '<none>') FROM pg_stat_activity WHERE usename = 'aplus_bot'",
    )
    .fetch_one(&mut reconciler)
    .await
    .expect("pg_stat_activity");
    assert_ne!(seen, "<insufficient privilege>");
}
