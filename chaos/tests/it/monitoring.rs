//! The shipped alert rules and Grafana board, proven against a real
//! Prometheus scraping the real bot, worker and reconciler under load.
//!
//! `promtool check rules` passes on `deploy/prometheus/rules.yml`; every
//! rule evaluates without error and every metric it reads returns data;
//! every expression of every panel of `deploy/grafana/aplus-pipeline.json`
//! returns data. Then three faults, one after another, each making exactly
//! its alerts fire and clear after recovery:
//!
//! 1. the worker stopped: `AplusServiceDown`, `AplusProcessingRateLow`,
//!    `AplusOldestPendingEventOld`;
//! 2. the worker's LISTEN session killed again and again, polling off:
//!    `AplusListenerFlapping`;
//! 3. PostgreSQL stopped (the test's private cluster): `AplusBotDatabaseDown`,
//!    `AplusListenerDown`, `AplusReconcilerPassesFailing`.
//!
//! Prometheus loads a copy of the rules with every `for:` shortened to a few
//! seconds (the expressions are exactly those that ship), so the run takes
//! minutes, not hours. An alert counts as fired when it is `firing`; any
//! other alert firing during a fault fails the test.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaos::load::Load;
use chaos::prometheus::{self, Prometheus};
use sea_orm::sqlx;
use testkit::cluster::StopMode;

/// Every `for:` in the rules the test loads.
const FOR: &str = "5s";
/// Longest wait for an alert to fire, or to clear.
const ALERT_TIMEOUT: Duration = Duration::from_secs(150);

async fn firing(prom: &Prometheus) -> BTreeSet<String> {
    prom.active_alerts()
        .await
        .expect("reading the alerts")
        .into_iter()
        .filter(|(_, state)| state == "firing")
        .map(|(name, _)| name)
        .collect()
}

async fn active(prom: &Prometheus) -> BTreeSet<String> {
    prom.active_alerts()
        .await
        .expect("reading the alerts")
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Waits until every `expected` alert fires; fails on any other alert
/// firing meanwhile. Returns how long it took.
async fn wait_fired(prom: &Prometheus, fault: &str, expected: &[&str]) -> Duration {
    let started = Instant::now();
    loop {
        let now = firing(prom).await;
        let unexpected: Vec<_> = now
            .iter()
            .filter(|n| !expected.contains(&n.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{fault}: unexpected alerts fired: {unexpected:?} (firing: {now:?})"
        );
        if expected.iter().all(|e| now.contains(*e)) {
            for name in expected {
                println!(
                    "{fault}: fired {name} (all {} expected firing {:.0}s after the fault)",
                    expected.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            return started.elapsed();
        }
        assert!(
            started.elapsed() < ALERT_TIMEOUT,
            "{fault}: expected {expected:?} to fire within {ALERT_TIMEOUT:?}; firing: {now:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until no alert is pending or firing; fails on an alert outside
/// `expected` firing meanwhile.
async fn wait_cleared(prom: &Prometheus, fault: &str, expected: &[&str]) {
    let started = Instant::now();
    let mut cleared: BTreeSet<&str> = BTreeSet::new();
    loop {
        let now = firing(prom).await;
        let unexpected: Vec<_> = now
            .iter()
            .filter(|n| !expected.contains(&n.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{fault}: unexpected alerts fired during recovery: {unexpected:?}"
        );
        let still = active(prom).await;
        for name in expected {
            if !still.contains(*name) && cleared.insert(name) {
                println!(
                    "{fault}: cleared {name} {:.0}s after recovery",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if still.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < ALERT_TIMEOUT,
            "{fault}: alerts still active {ALERT_TIMEOUT:?} after recovery: {still:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every rule evaluates cleanly and every series it reads has data; every
/// Grafana panel expression returns data. Retries for up to a minute
/// (rates need two scrapes, histograms an observation).
async fn check_expressions(prom: &Prometheus) {
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(prometheus::dashboard_path()).expect("reading the board"),
    )
    .expect("the board is JSON");
    let mut panel_exprs = Vec::new();
    for panel in board["panels"].as_array().expect("the board has panels") {
        for target in panel["targets"].as_array().expect("each panel has targets") {
            let expr = target["expr"]
                .as_str()
                .expect("each target has an expression");
            panel_exprs.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    let started = Instant::now();
    loop {
        let mut missing = Vec::new();
        let rules = prom.rules().await.expect("reading the rules");
        assert!(rules.len() >= 20, "only {} rules loaded", rules.len());
        for rule in &rules {
            if rule.health != "ok" || !rule.last_error.is_empty() {
                missing.push(format!(
                    "rule {}: health {} {}",
                    rule.name, rule.health, rule.last_error
                ));
            }
            let mut names = prometheus::metric_names(&rule.expr);
            if rule.kind == "recording" {
                names.push(rule.name.clone());
            }
            for name in names {
                if prom.query(&name).await.expect("querying").is_empty() {
                    missing.push(format!("rule {}: {name} has no data", rule.name));
                }
            }
        }
        for (title, expr) in &panel_exprs {
            if prom.query(expr).await.expect("querying a panel").is_empty() {
                missing.push(format!("panel {title:?}: {expr} returns nothing"));
            }
        }
        if missing.is_empty() {
            println!(
                "all {} rules evaluate with data; all {} panel expressions return data",
                rules.len(),
                panel_exprs.len()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "expressions without data after a minute:\n{}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fires_exactly_its_alerts_in_a_real_prometheus_and_they_clear_after_recovery() {
    let rules_path = prometheus::rules_path();
    let checked = prometheus::check_rules(&rules_path).expect("promtool check rules");
    println!("{}", checked.trim());

    let dir = common::test_dir("monitoring");
    // Polling off: only the LISTEN connection (and its catch-up) moves events.
    let mut pipeline = common::Pipeline::start(&dir, &[("WORKER_POLL_INTERVAL", "0")]).await;
    let shipped = std::fs::read_to_string(&rules_path).expect("reading the rules");
    let rules = prometheus::shorten_for(&shipped, FOR);
    let prom = Prometheus::start(&dir.join("prometheus"), &pipeline.jobs(), &rules)
        .await
        .expect("starting Prometheus");
    let channels = pipeline.stack.channels.clone();
    let load = Load::start(
        pipeline.stack.sim.clone(),
        channels[..channels.len() - 1].to_vec(),
        channels[channels.len() - 1],
        5.0,
        pipeline.timeline,
    );

    // Every target scraped, every expression with data, nothing firing.
    let started = Instant::now();
    loop {
        let up = prom.targets_up().await.expect("reading up");
        if up.len() == 3 && up.iter().all(|(_, v)| *v == 1.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "targets not up: {up:?}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    check_expressions(&prom).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let baseline = firing(&prom).await;
    assert!(
        baseline.is_empty(),
        "alerts firing on a healthy pipeline: {baseline:?}"
    );

    // 1. The worker stopped.
    let fault = "worker stopped";
    let expected = [
        "AplusServiceDown",
        "AplusProcessingRateLow",
        "AplusOldestPendingEventOld",
    ];
    pipeline.stop_worker().await;
    wait_fired(&prom, fault, &expected).await;
    pipeline.start_worker();
    pipeline.wait_ready().await;
    wait_cleared(&prom, fault, &expected).await;

    // 2. The LISTEN session killed every 2 s for 20 s, polling off.
    let fault = "LISTEN session killed";
    let expected = ["AplusListenerFlapping"];
    let listener = "aplus-worker-listener worker-a";
    let mut admin = pipeline
        .stack
        .db
        .connect("aplus-monitoring-test")
        .await
        .expect("connecting");
    let mut killed = 0;
    let killing = Instant::now();
    while killing.elapsed() < Duration::from_secs(20) {
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
                .bind(listener)
                .fetch_all(&mut admin)
                .await
                .expect("finding the LISTEN session");
        for pid in pids {
            let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .expect("ending the LISTEN session");
            killed += i32::from(ended);
        }
        let now = firing(&prom).await;
        assert!(
            now.iter().all(|n| expected.contains(&n.as_str())),
            "{fault}: unexpected alerts fired: {now:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("{fault}: ended the LISTEN session {killed} times in 20s");
    assert!(killed >= 5, "only {killed} LISTEN sessions ended");
    wait_fired(&prom, fault, &expected).await;
    drop(admin);
    wait_cleared(&prom, fault, &expected).await;

    // 3. PostgreSQL stopped.
    let fault = "PostgreSQL stopped";
    let expected = [
        "AplusBotDatabaseDown",
        "AplusListenerDown",
        "AplusReconcilerPassesFailing",
    ];
    pipeline
        .stack
        .db
        .stop(StopMode::Fast)
        .await
        .expect("stopping PostgreSQL");
    let took = wait_fired(&prom, fault, &expected).await;
    pipeline
        .stack
        .db
        .start_again()
        .await
        .expect("starting PostgreSQL again");
    println!(
        "{fault}: PostgreSQL was down for about {:.0}s",
        took.as_secs_f64()
    );
    wait_cleared(&prom, fault, &expected).await;

    let log = load.finish().await;
    println!(
        "posted {} messages during the run",
        log.posted_between(Duration::ZERO, pipeline.timeline.now())
    );
    drop(prom);
    pipeline.stop().await;
}
