//! The services behind PgBouncer, Debian's connection pooler.
//!
//! In session mode a client keeps one server session until it disconnects,
//! which is all the pipeline needs: the whole pipeline (the real `bot`,
//! `worker` and `reconciler` binaries) runs through it. In transaction mode
//! sessions are shared between transactions, which breaks LISTEN, session
//! advisory locks and the lease's session settings: each service sees it at
//! start and exits with a message that says what to change.

use crate::services;

use discord_sim::{NewMessage, Sim, SimConfig};
use services::{Service, WAIT, bot_env, reconciler_env, worker_env};
use testkit::TestDb;
use testkit::pgbouncer::{PgBouncer, PoolMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_runs_through_pgbouncer_in_session_mode() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Session, &db.url);
    let url = bouncer.url(&db.url);
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim.create_channel(guild, "aplus").expect("guild exists");
    for i in 0..20 {
        sim.post_history(NewMessage::text(channel, format!("history {i}")))
            .expect("post");
    }

    let reconciler = Service::start("reconciler", &url, &reconciler_env());
    let worker = Service::start("worker", &url, &worker_env());
    let bot = Service::start("bot", &url, &bot_env(&sim, channel));

    testkit::eventually(WAIT, "the history stored", || async {
        (db.scalar("SELECT count(*) FROM messages").await == 20).then_some(())
    })
    .await;
    for i in 0..30 {
        sim.post(NewMessage::text(channel, format!("live {i}")))
            .expect("post");
    }
    testkit::eventually(WAIT, "every event processed through LISTEN", || async {
        (db.scalar(
            "SELECT count(*) FROM inbox i JOIN events e ON e.id = i.event_id \
             WHERE i.status = 'processed' AND e.kind = 'message.created'",
        )
        .await
            == 50)
            .then_some(())
    })
    .await;
    testkit::eventually(WAIT, "a reconciler pass under its lock", || async {
        (db.scalar("SELECT count(*) FROM reconciler_runs").await >= 2).then_some(())
    })
    .await;
    assert_eq!(db.scalar("SELECT count(*) FROM messages").await, 50);
    // The sessions went through PgBouncer (it logs each client's login).
    let log = bouncer.log();
    assert!(
        log.matches(&format!("login attempt: db={}", db.name))
            .count()
            >= 3,
        "PgBouncer saw the services log in:\n{log}"
    );

    for (name, service) in [("bot", bot), ("worker", worker), ("reconciler", reconciler)] {
        let (status, logs) = service.stop().await;
        assert!(status.success(), "{name} exits cleanly: {status}\n{logs}");
        assert!(
            !logs.contains("not a session of its own"),
            "{name} accepted session mode:\n{logs}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_refuses_to_start_behind_pgbouncer_in_transaction_mode() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Transaction, &db.url);
    let url = bouncer.url(&db.url);
    let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim.create_channel(guild, "aplus").expect("guild exists");
    sim.post_history(NewMessage::text(channel, "history"))
        .expect("post");

    for (name, env) in [
        ("bot", bot_env(&sim, channel)),
        ("worker", worker_env()),
        ("reconciler", reconciler_env()),
    ] {
        let service = Service::start(name, &url, &env);
        let (status, logs) = service.exit(WAIT).await;
        assert_eq!(
            status.code(),
            Some(78),
            "{name} exits with 78 (EX_CONFIG):\n{logs}"
        );
        assert!(
            logs.contains("not a session of its own") && logs.contains("pool_mode = session"),
            "{name} says why and what to change:\n{logs}"
        );
    }
    // Nothing was written before they stopped.
    assert_eq!(db.scalar("SELECT count(*) FROM messages").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM reconciler_runs").await, 0);
    sim.shutdown().await;
}
