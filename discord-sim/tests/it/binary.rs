//! The `discord-sim` binary: starts, pre-fills history, posts demo messages, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const CHANNEL: u64 = 1_372_012_942_848_954_388;

/// Kills the child if a test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's log lines until the "ready" line, which names the API URL.
fn api_url_from_logs(lines: &mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        if let Some(start) = line
            .find("http://127.0.0.1:")
            .filter(|_| line.contains("ready"))
        {
            let url: String = line[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                .collect();
            return url;
        }
    }
    panic!("the binary never logged its API URL");
}

async fn history(client: &reqwest::Client, api_url: &str) -> Vec<Value> {
    client
        .get(format!(
            "{api_url}/api/v10/channels/{CHANNEL}/messages?limit=100"
        ))
        .header("Authorization", "Bot demo")
        .send()
        .await
        .expect("history request")
        .json()
        .await
        .expect("history is JSON")
}

#[tokio::test]
async fn the_binary_serves_history_posts_demo_messages_and_stops_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_discord-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--history",
            "6",
            "--demo-interval",
            "0.2",
        ])
        .args(["--channels", &CHANNEL.to_string()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut child = Running(child);
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let api_url = api_url_from_logs(&lines);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client builds");

    let first = history(&client, &api_url).await;
    assert!(first.len() >= 6, "history was pre-filled: {}", first.len());
    let texts: Vec<String> = first
        .iter()
        .map(|m| {
            let top = m["content"].as_str().unwrap_or_default();
            let snapshot = m
                .pointer("/message_snapshots/0/message/content")
                .and_then(Value::as_str);
            snapshot
                .filter(|_| top.is_empty())
                .unwrap_or(top)
                .to_owned()
        })
        .collect();
    assert!(texts.iter().any(|t| t.contains("A+")), "{texts:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if history(&client, &api_url).await.len() > first.len() {
            break;
        }
        assert!(Instant::now() < deadline, "no demo message was posted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().expect("wait works") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
