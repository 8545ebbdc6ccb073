//! A remote database over TLS: every service (the real binaries) connects
//! with `sslmode=verify-full` to a private PostgreSQL whose certificate a
//! generated authority signed, and the server sees each session encrypted.
//! The same connection settings refuse a server whose certificate another
//! authority signed, and a server without TLS.

use crate::services;

use discord_sim::{NewMessage, Sim, SimConfig};
use sea_orm::sqlx::{self, Connection as _, Executor as _, PgConnection};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement};
use service::DatabaseArgs;
use service::db::{PoolSettings, connect_options};
use services::{Service, WAIT, bot_env, reconciler_env, worker_env};
use testkit::cluster::TempCluster;
use testkit::tls::TestCa;

/// Connects once as a service would; the error's text when it cannot.
async fn connect(url: &str) -> Result<PgConnection, String> {
    let options = connect_options(
        &DatabaseArgs::from_url(url.to_owned()),
        &PoolSettings::new("aplus-tls-test", 1),
    )
    .map_err(|e| e.to_string())?;
    PgConnection::connect_with(&options)
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row")
        .try_get_by_index(0)
        .expect("a bigint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_works_with_verify_full_against_a_server_signed_by_a_private_authority() {
    let ca = TestCa::generate();
    let settings = ca.server_settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = TempCluster::start_with(&settings).expect("a TLS cluster starts");
    let port = server.cluster.port;
    let url = |db: &str, root: &std::path::Path| {
        format!(
            "postgres://postgres@127.0.0.1:{port}/{db}?sslmode=verify-full&sslrootcert={}",
            root.display()
        )
    };

    // The database, migrated over TLS.
    let mut admin = connect(&url("postgres", &ca.ca_cert))
        .await
        .expect("verify-full connects");
    admin
        .execute("CREATE DATABASE aplus")
        .await
        .expect("create database");
    let database = url("aplus", &ca.ca_cert);
    let db = service::db::connect(
        &DatabaseArgs::from_url(database.clone()),
        &PoolSettings::new("aplus-tls-test", 2),
    )
    .expect("url parses");
    migration::migrate(&db).await.expect("migrations apply");

    // Refused: another authority, and TLS required where there is none.
    let other = connect(&url("postgres", &ca.other_ca_cert)).await;
    assert!(
        other.is_err(),
        "a certificate signed by another authority is refused"
    );
    let plain = TempCluster::start().expect("a plain cluster starts");
    let no_tls = connect(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        plain.cluster.port,
        ca.ca_cert.display()
    ))
    .await;
    assert!(no_tls.is_err(), "verify-full refuses a server without TLS");
    drop(plain);

    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim.create_channel(guild, "aplus").expect("guild exists");
    for i in 0..10 {
        sim.post_history(NewMessage::text(channel, format!("history {i}")))
            .expect("post");
    }
    let reconciler = Service::start("reconciler", &database, &reconciler_env());
    let worker = Service::start("worker", &database, &worker_env());
    let bot = Service::start("bot", &database, &bot_env(&sim, channel));
    for i in 0..10 {
        sim.post(NewMessage::text(channel, format!("live {i}")))
            .expect("post");
    }

    testkit::eventually(WAIT, "every event processed through LISTEN", || async {
        let processed = count(
            &db,
            "SELECT count(*) FROM inbox i JOIN events e ON e.id = i.event_id \
             WHERE i.status = 'processed' AND e.kind = 'message.created'",
        )
        .await;
        (processed == 20).then_some(())
    })
    .await;
    testkit::eventually(WAIT, "a reconciler pass", || async {
        (count(&db, "SELECT count(*) FROM reconciler_runs").await >= 1).then_some(())
    })
    .await;
    let mut conn = connect(&database).await.expect("connects");
    // Every session of every service is encrypted, the workers' LISTEN
    // session among them.
    let sessions: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = 'aplus' AND a.application_name LIKE 'aplus-%' \
           AND a.application_name <> 'aplus-tls-test'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("sessions");
    for prefix in [
        "aplus-bot",
        "aplus-worker ",
        "aplus-worker-listener",
        "aplus-reconciler",
    ] {
        assert!(
            sessions.iter().any(|(name, _)| name.starts_with(prefix)),
            "a {prefix} session is connected: {sessions:?}"
        );
    }
    assert!(
        sessions.iter().all(|(_, ssl)| *ssl),
        "every session is encrypted: {sessions:?}"
    );

    for (name, service) in [("bot", bot), ("worker", worker), ("reconciler", reconciler)] {
        let (status, logs) = service.stop().await;
        assert!(status.success(), "{name} exits cleanly: {status}\n{logs}");
    }
    let _ = conn.close().await;
    db.close().await.expect("closes");
    sim.shutdown().await;
}
