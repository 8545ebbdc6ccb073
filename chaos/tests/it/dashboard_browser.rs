//! The reconciler's dashboard in a real browser (headless Chromium, from
//! Debian's `chromium` package, installed when missing and root), against
//! the running pipeline: the bot stores two A+ posts for one trading day
//! (the second, longer one supersedes the first), written by an author
//! whose name, like a line of the post, is an XSS payload.
//!
//! The test fails when the page has no charts with data, no setups, no
//! standing and superseded message, a console message (a script error, or
//! the Content-Security-Policy refusing something), or when the payload
//! ran or became markup. A probe page first proves console messages do
//! reach the test. The screenshot is kept in the test's directory and
//! copied to `target/dashboard.png`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use discord_sim::{Author, NewMessage};

/// Runs in the page if escaping fails; the CSP would also block it.
const PAYLOAD: &str =
    "<script>document.title='XSS'</script><img src=x onerror=\"document.title='XSS'\">";

/// The post's body; the header (with today's date) is put in front.
const POST: &str = "SPY\n\
❌ Rejection Near 592.53 (590.20, 588.00, 585.50)\n\
🔻 Aggressive Breakdown Below 590.20 (588.00, 585.50, 582.80)\n\
🔼 Aggressive Breakout Above 592.53 (594.70, 597.20, 600.50)\n\
⚠️ Bias — Bullish above 590.20\n";

const MORE: &str = "\nQQQ\n\
🔻 Aggressive Breakdown Below 520.10 (518.00, 515.40)\n\
🔼 Aggressive Breakout Above 524.80 (527.00, 530.50)\n";

struct Chromium {
    path: PathBuf,
    profile: PathBuf,
}

impl Chromium {
    fn new(dir: &Path) -> Chromium {
        let path = testkit::packages::ensure("chromium", "chromium").expect("chromium");
        Chromium {
            path,
            profile: dir.join("chromium-profile"),
        }
    }

    /// Runs headless Chromium on `url` with `extra` flags; returns stdout
    /// and stderr (console messages are logged to stderr).
    fn run(&self, url: &str, extra: &[&str]) -> (String, String) {
        let output = Command::new(&self.path)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-proxy-server",
                "--no-first-run",
                "--disable-extensions",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("running chromium");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "chromium failed: {}\n{stderr}",
            output.status
        );
        (stdout, stderr)
    }
}

/// Console lines Chromium logged.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_charts_and_setups_in_chromium_and_a_message_payload_stays_text() {
    let dir = common::test_dir("dashboard-browser");
    let chromium = Chromium::new(&dir);

    // The console reaches the test: a probe page's message shows up.
    let probe = dir.join("probe.html");
    std::fs::write(
        &probe,
        "<!doctype html><script>console.error('console-probe-7731')</script>",
    )
    .expect("writing the probe page");
    let (_, stderr) = chromium.run(&format!("file://{}", probe.display()), &["--dump-dom"]);
    assert!(
        console_lines(&stderr)
            .iter()
            .any(|l| l.contains("console-probe-7731")),
        "Chromium's console does not reach the test; stderr:\n{stderr}"
    );

    let pipeline = common::Pipeline::start(&dir, &[]).await;
    let sim = &pipeline.stack.sim;
    let channel = pipeline.stack.channels[0];
    let author = Author::user(424_242, format!("trader {PAYLOAD}"));
    // Today in New York (the parser's market calendar), five hours behind
    // UTC at most: the header's date is then today's trading day.
    let today = (Utc::now() - chrono::Duration::hours(5)).date_naive();
    let header = format!("A+ Trade Setups — {}\n\n", today.format("%A %b %-d"));
    let first = sim
        .post(
            NewMessage::text(channel, format!("{header}{POST}\nNote: {PAYLOAD}"))
                .author(author.clone()),
        )
        .expect("posting the first A+ message");
    let second = sim
        .post(
            NewMessage::text(channel, format!("{header}{POST}{MORE}\nNote: {PAYLOAD}"))
                .at(Utc::now() + chrono::Duration::seconds(2))
                .author(author),
        )
        .expect("posting the second A+ message");

    // Wait until the reconciler's page shows the day (over plain HTTP).
    let port = pipeline.stack.reconcilers[0].port;
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    loop {
        let html = common::get_text_any_status(port, "/").await;
        let plotted = html.contains("<polyline") || html.contains("<circle");
        if html.contains("superseded by") && html.contains("QQQ") && plotted {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the page never showed the setups and charts:\n{html}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let (dom, stderr) = chromium.run(&url, &["--dump-dom"]);
    let screenshot = dir.join("dashboard.png");
    chromium.run(
        &url,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,2400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot: {} bytes",
        png.len()
    );
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp sits in target/")
        .join("dashboard.png");
    std::fs::copy(&screenshot, &target).expect("copying the screenshot");
    println!(
        "screenshot: {} ({} bytes), copied to {}",
        screenshot.display(),
        png.len(),
        target.display()
    );
    pipeline.stop().await;

    let mut problems = Vec::new();
    let console = console_lines(&stderr);
    if !console.is_empty() {
        problems.push(format!("console messages: {console:?}"));
    }
    let charts = dom.matches("<svg").count();
    let lines = dom.matches("<polyline").count() + dom.matches("<circle").count();
    if charts < 4 || lines == 0 {
        problems.push(format!("{charts} charts with {lines} lines"));
    }
    for needle in [
        "id=\"setups\"",
        "SPY",
        "QQQ",
        "Aggressive Breakout",
        "590.20",
        "stands for the day",
        &format!("superseded by {second}"),
        &first.to_string(),
        "Recent reconciler passes",
        "LISTEN sessions",
        // The payload, as text.
        "&lt;script&gt;document.title='XSS'&lt;/script&gt;&lt;img src=x",
    ] {
        if !dom.contains(needle) {
            problems.push(format!("missing {needle:?}"));
        }
    }
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or("");
    if title.contains("XSS") {
        problems.push(format!("the payload ran: the title is {title:?}"));
    }
    if dom.contains("<script") || dom.contains("<img") {
        problems.push("the payload became markup".to_owned());
    }
    assert!(
        problems.is_empty(),
        "the dashboard is broken: {problems:?}\n{dom}"
    );
    println!(
        "{charts} charts, setups for SPY and QQQ, payload shown as text, no console message; title {title:?}"
    );
}
