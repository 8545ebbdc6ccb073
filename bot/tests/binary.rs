//! The `bot` binary as an operator runs it: a fatal gateway refusal exits
//! 78 (EX_CONFIG, not restarted) with a fix to apply; a usage error exits
//! 64, never 2. (`secrets.rs` checks that secrets stay out of its logs.)

mod common;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{WAIT, world};
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

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
