//! The `reconciler` binary at `RUST_LOG=trace` never writes its database
//! password, in any encoding, whichever way the password is given: the
//! service through its passes, and a one-shot command.

use std::process::Command;
use std::time::Duration;

use testkit::child::Captured;
use testkit::secrets::assert_no_leaks;
use testkit::{TestDb, eventually};

/// Holds characters a URL must percent-encode.
const PASSWORD: &str = "rc/5b1d+0e@a4:77";

const WAIT: Duration = Duration::from_secs(60);

fn reconciler(configure: impl FnOnce(&mut Command)) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reconciler"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RECONCILER_HTTP_LISTEN", "127.0.0.1:0")
        .env("RECONCILER_SCHEDULE", "* * * * * *")
        .env("RUST_LOG", "trace");
    configure(&mut command);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_never_appears_in_trace_logs_in_any_url_form_or_file() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;

    for (round, form) in t.password_forms(&role).iter().enumerate() {
        let service = Captured::spawn(reconciler(|c| form.apply(c)));
        eventually(WAIT, "a pass recorded", || async {
            (t.scalar("SELECT count(*) FROM reconciler_runs").await > round as i64).then_some(())
        })
        .await;
        let (status, logs) = service.terminate(WAIT).await;
        assert!(status.success(), "{}: exit {status:?}\n{logs}", form.name);
        assert!(
            logs.contains(" TRACE "),
            "{}: trace level was on",
            form.name
        );
        assert_no_leaks(&logs, &[PASSWORD]);

        // A one-shot command, which logs only when RUST_LOG asks.
        let mut command = reconciler(|c| form.apply(c));
        command.arg("diagnose");
        let (status, logs) = Captured::spawn(command).wait(WAIT).await;
        assert!(
            matches!(status.code(), Some(0..=2)) && !logs.is_empty(),
            "{}: diagnose ran: {status:?}\n{logs}",
            form.name
        );
        assert_no_leaks(&logs, &[PASSWORD]);
    }
    t.drop_role(&role).await;
}
