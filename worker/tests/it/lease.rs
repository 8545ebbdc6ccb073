//! A worker paused past its lease (SIGSTOP) loses its claim to a second
//! worker, and its late commit changes nothing when it resumes.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{Role, TestDb, eventually};

#[tokio::test]
async fn a_worker_paused_past_its_lease_never_applies_an_effect_twice() {
    let t = TestDb::new().await;
    common::seed_aplus_backlog(&t, 1_000).await;
    let paused = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("DATABASE_URL", t.url_as(Role::Worker))
        .env("WORKER_HTTP_LISTEN", "127.0.0.1:0")
        .env("WORKER_NAME", "paused")
        .env("WORKER_BATCH_SIZE", "200")
        .env("WORKER_CONCURRENCY", "1")
        .env("WORKER_LEASE", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker binary");
    let pid = Pid::from_raw(paused.id() as i32);
    // Pause it while it holds a batch: an open transaction of its own.
    eventually(Duration::from_secs(60), "the first worker inside a batch", || async {
        let in_txn = t
            .scalar(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'aplus-worker paused' AND xact_start IS NOT NULL AND backend_xid IS NOT NULL",
                t.name
            ))
            .await;
        if in_txn > 0 {
            kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
            Some(())
        } else {
            None
        }
    })
    .await;

    // A second worker takes over; the paused one's events come free when the
    // server ends its session after the lease.
    let other = common::start(common::config(&t));
    common::drained(&t, Duration::from_secs(120)).await;
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::task::spawn_blocking(move || {
        let mut paused = paused;
        paused.wait()
    })
    .await
    .expect("join")
    .expect("wait");
    other.stop().await;
    assert!(
        status.success(),
        "the resumed worker shut down cleanly: {status:?}"
    );

    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        1_000
    );
    assert_eq!(t.scalar("SELECT count(*) FROM message_parses").await, 1_000);
    assert_eq!(t.scalar("SELECT count(*) FROM setups").await, 2_000);
    // The second worker did the work the paused one had claimed.
    assert!(
        t.scalar("SELECT count(*) FROM inbox WHERE worker <> 'paused'")
            .await
            > 0
    );
}
