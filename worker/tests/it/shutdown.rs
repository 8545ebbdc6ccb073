//! SIGTERM during a batch: in-flight events finish, nothing is half-applied,
//! and the worker exits 0. Runs the real binary.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{Role, TestDb, eventually};

#[tokio::test]
async fn sigterm_during_a_batch_finishes_in_flight_events_and_exits_zero() {
    let t = TestDb::new().await;
    common::seed_aplus_backlog(&t, 3_000).await;

    let child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("DATABASE_URL", t.url_as(Role::Worker))
        .env("WORKER_HTTP_LISTEN", "127.0.0.1:0")
        .env("WORKER_BATCH_SIZE", "50")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker binary");

    eventually(Duration::from_secs(60), "some events processed", || async {
        (t.scalar("SELECT count(*) FROM inbox").await >= 200).then_some(())
    })
    .await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let log = String::from_utf8_lossy(&status.stderr);
    assert!(
        status.status.success(),
        "exit status {:?}; log:\n{log}",
        status.status
    );
    assert!(log.contains("finishing in-flight batches"), "log:\n{log}");

    let processed = t
        .scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
        .await;
    assert!(
        processed < 3_000,
        "stopped before the backlog was done ({processed})"
    );
    // Nothing half-applied: every processed event has its whole effect, and
    // no effect exists without its inbox row.
    assert_eq!(
        t.scalar("SELECT count(*) FROM message_parses").await,
        processed
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM message_parses p WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = p.event_id)").await,
        0
    );
    assert_eq!(t.scalar("SELECT count(*) FROM setups").await, 2 * processed);
}
