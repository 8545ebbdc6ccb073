//! The `worker` binary at `RUST_LOG=trace` never writes its database
//! password, in any encoding, whichever way the password is given.

use crate::common;

use std::process::Command;
use std::time::Duration;

use testkit::child::Captured;
use testkit::secrets::assert_no_leaks;
use testkit::{TestDb, eventually};

/// Holds characters a URL must percent-encode.
const PASSWORD: &str = "wk/3e8a+71@f0:c9";

const WAIT: Duration = Duration::from_secs(60);

/// Runs the worker until it processed `processed` events in all, then stops it.
async fn run(t: &TestDb, processed: i64, configure: impl FnOnce(&mut Command)) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WORKER_HTTP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "trace");
    configure(&mut command);
    let worker = Captured::spawn(command);
    eventually(WAIT, "the backlog processed", || async {
        (t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await
            >= processed)
            .then_some(())
    })
    .await;
    let (status, logs) = worker.terminate(WAIT).await;
    assert!(status.success(), "exit {status:?}");
    // Not vacuous: the run logged a lot, at trace level.
    assert!(logs.contains(" TRACE "), "trace level was on:\n{logs}");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_never_appears_in_trace_logs_in_any_url_form_or_file() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;
    for (round, form) in t.password_forms(&role).iter().enumerate() {
        let first = 10 * round as i64 + 1;
        let messages = (first..first + 10)
            .map(|id| testkit::factory::message(id, 1, &format!("A+ setups #{id}")))
            .collect();
        common::record_and_notify(&t, messages).await;
        let logs = run(&t, 10 * (round as i64 + 1), |c| form.apply(c)).await;
        assert!(logs.contains("worker started"), "{}", form.name);
        assert_no_leaks(&logs, &[PASSWORD]);
    }
    t.drop_role(&role).await;
}
