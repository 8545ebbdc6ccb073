//! The `bot` binary as an operator runs it: a fatal gateway refusal exits
//! 78 (EX_CONFIG, not restarted) with a fix to apply; a usage error exits
//! 64, never 2. (`secrets.rs` checks that secrets stay out of its logs.)

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, WAIT, world};
use discord_sim::SimConfig;
use testkit::{Role, TestDb};

fn bot_command(database_url: &str, api_url: &str, channels: &[u64], token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bot"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("DISCORD_TOKEN", token)
        .env("DISCORD_API_URL", api_url)
        .env(
            "APLUS_CHANNELS",
            channels
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("BOT_HTTP_LISTEN", "127.0.0.1:0")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Collects a child's stdout and stderr on threads, so its pipes never fill.
struct Output {
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

fn collect(child: &mut Child) -> Output {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    Output {
        stdout: std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        stderr: std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = err.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }),
    }
}

impl Output {
    fn join(self) -> String {
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        format!("{stdout}{stderr}")
    }
}

/// Waits for the child to exit, killing it after `timeout`.
async fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("the bot did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_78_with_the_developer_portal_fix_when_discord_refuses_the_session() {
    let t = TestDb::new().await;

    // The Message Content intent is switched off in the portal (4014).
    let w = world(1).await;
    w.sim.set_identify_close_code(Some(4014));
    let mut child = bot_command(
        &t.url_as(Role::Bot),
        &w.sim.api_url(),
        &w.channels,
        "test-token",
    )
    .spawn()
    .expect("the bot binary starts");
    let output = collect(&mut child);
    let status = wait_exit(&mut child, WAIT).await;
    let logs = output.join();
    assert_eq!(status.code(), Some(78), "{}", tail(&logs));
    assert!(
        logs.contains("enable the Message Content privileged intent"),
        "{}",
        tail(&logs)
    );
    assert!(
        logs.contains("https://discord.com/developers/applications"),
        "{}",
        tail(&logs)
    );
    w.sim.shutdown().await;

    // A revoked token (4004).
    let w = common::world_with(
        SimConfig {
            bad_token: Some("revoked".into()),
            ..SimConfig::default()
        },
        1,
    )
    .await;
    let mut child = bot_command(
        &t.url_as(Role::Bot),
        &w.sim.api_url(),
        &w.channels,
        "revoked",
    )
    .spawn()
    .expect("the bot binary starts");
    let output = collect(&mut child);
    let status = wait_exit(&mut child, WAIT).await;
    let logs = output.join();
    assert_eq!(status.code(), Some(78), "{}", tail(&logs));
    assert!(logs.contains("4004"), "{}", tail(&logs));
    assert!(logs.contains("DISCORD_TOKEN"), "{}", tail(&logs));
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_usage_error_exits_64_and_a_missing_variable_78() {
    let t = TestDb::new().await;
    let mut unknown = bot_command(&t.url_as(Role::Bot), "http://127.0.0.1:9", &[1], "token");
    unknown.arg("--no-such-flag");
    let mut child = unknown.spawn().expect("the bot binary starts");
    let output = collect(&mut child);
    let status = wait_exit(&mut child, WAIT).await;
    let logs = output.join();
    assert_eq!(status.code(), Some(64), "{}", tail(&logs));
    assert!(logs.contains("--no-such-flag"), "{}", tail(&logs));

    let mut missing = bot_command(&t.url_as(Role::Bot), "http://127.0.0.1:9", &[1], "token");
    missing.env_remove("DISCORD_TOKEN");
    let mut child = missing.spawn().expect("the bot binary starts");
    let output = collect(&mut child);
    let status = wait_exit(&mut child, WAIT).await;
    let logs = output.join();
    assert_eq!(status.code(), Some(78), "{}", tail(&logs));
    assert!(logs.contains("DISCORD_TOKEN is not set"), "{}", tail(&logs));
}

/// A child killed when the test ends, passed or failed.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The bot's shutdown deadline (`BOT_SHUTDOWN_TIMEOUT`'s default), which
/// must fit inside supervisord's `stopwaitsecs` and systemd's `TimeoutStopSec`.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_bot_stopped_with_sigterm_exits_0_within_its_deadline_and_loses_nothing() {
    const MESSAGES: usize = 3_000;
    let t = TestDb::new().await;
    let w = world(1).await;
    let bot = || {
        let mut command = bot_command(&t.url_as(Role::Bot), &w.sim.api_url(), &w.channels, "token");
        command.env("BOT_WRITE_QUEUE", "200");
        command
    };
    let mut child = Running(bot().spawn().expect("the bot binary starts"));
    let output = collect(&mut child);
    w.sim
        .wait_for_connected_sessions(1, WAIT)
        .await
        .expect("the bot connects");

    // The writer is held up (a test transaction locks messages), so the
    // queue fills and the gateway waits for room: a bot with plenty to do.
    use sea_orm::sqlx::{Connection as _, Executor as _};
    let mut blocker = sea_orm::sqlx::PgConnection::connect(&t.url)
        .await
        .expect("the test connects");
    blocker
        .execute("BEGIN; LOCK TABLE messages IN SHARE MODE")
        .await
        .expect("lock");
    let posted = w
        .sim
        .post_many(
            (0..MESSAGES)
                .map(|n| discord_sim::NewMessage::text(w.channels[0], format!("busy #{n}"))),
        )
        .expect("posted");
    // Busy: the writer task waits on the lock, and the simulator has sent
    // more than the queue holds.
    testkit::eventually(
        WAIT,
        "the writer to be held up with a full queue",
        || async {
            let blocked = t
                .scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'aplus-bot-writer' AND wait_event_type = 'Lock'",
                )
                .await;
            (blocked > 0 && w.sim.stats().dispatches > 400).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    // The writer stays held up: the stop cannot finish its writes and must
    // end at its one deadline, not one timeout per step.
    let status = wait_exit(&mut child, SHUTDOWN_DEADLINE * 3).await;
    let took = started.elapsed();
    blocker.execute("COMMIT").await.expect("unlock");
    let logs = output.join();
    assert_eq!(status.code(), Some(0), "{}", tail(&logs));
    assert!(
        took <= SHUTDOWN_DEADLINE + Duration::from_secs(2),
        "the bot took {took:?} to stop, past its {SHUTDOWN_DEADLINE:?} deadline: {}",
        tail(&logs)
    );
    println!("stopped in {took:?} (deadline {SHUTDOWN_DEADLINE:?})");

    // Whatever was not written before the deadline is read back from
    // history by the next start: nothing is lost.
    let mut child = Running(bot().spawn().expect("the bot binary starts again"));
    let output = collect(&mut child);
    let expected = posted.len() as i64;
    testkit::eventually(
        Duration::from_secs(60),
        "every posted message stored",
        || async { (t.scalar("SELECT count(*) FROM messages").await == expected).then_some(()) },
    )
    .await;
    drop(child);
    let _ = output.join();
    w.sim.shutdown().await;
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
