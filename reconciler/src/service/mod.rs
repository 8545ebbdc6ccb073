//! The long-running service: passes on a cron schedule, the health and
//! metrics endpoints, and the dashboard.
//!
//! The loop around [`crate::run_once`] is small. It sleeps until the next
//! firing in slices of at most a minute, so a wall clock that jumps is
//! noticed: a jump forward runs one pass (never a burst to catch up), a jump
//! back moves the next firing to the earliest one from the new time. SIGTERM
//! is only watched between passes, so the pass in flight always finishes.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use service::Health;
use service::retry::{Backoff, LogPolicy, until_ok};
use tokio_util::sync::CancellationToken;

use crate::config::PassConfig;
use crate::tools::diagnose::Thresholds;

pub mod lock;
pub mod pass;
mod report;
pub mod runs;
pub mod schedule;

use crate::error::{Result, chain};
use crate::horizon::Horizons;
use pass::{PassOutcome, run_once};
use schedule::Schedule;

/// Longest single sleep, so clock jumps are noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Everything the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub pass: PassConfig,
    pub schedule: Schedule,
    /// Where `/healthz`, `/readyz`, `/metrics`, `/` and `/api/health` are served.
    pub http_listen: SocketAddr,
    /// A second address serving only `/metrics`, so scraping needs no access
    /// to the dashboard (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Apply pending migrations at start (waits for other migrating processes).
    pub migrate: bool,
    /// Thresholds of the dashboard's verdict.
    pub thresholds: Thresholds,
}

/// Which failed passes in a row are logged at `warn`: the first and every
/// tenth (the others are counted and shown in `/readyz`).
const PASS_FAILURE_LOG: LogPolicy = LogPolicy::Every(10);

/// Backoff of the start-up migrations while the database is down.
const MIGRATE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

/// The service, with its settings checked, ready to [`run`](Reconciler::run).
#[derive(Debug)]
pub struct Reconciler {
    db: DatabaseConnection,
    config: ServiceConfig,
}

impl Reconciler {
    /// Checks the settings. The database is not contacted: the pool connects
    /// on first use, and the service starts (and reports itself not ready)
    /// while the database is down.
    pub fn build(db: DatabaseConnection, config: ServiceConfig) -> Result<Self> {
        config.pass.validate()?;
        Ok(Self { db, config })
    }

    /// Runs until `shutdown` fires, then returns once the pass in flight is
    /// done and the HTTP server has stopped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Self { db, config } = self;
        // Metrics recorded before the recorder exists are lost; every series
        // starts at its zero before anything records.
        crate::metrics::install();
        let health = Health::new();
        health.set("database", false, "not reached yet");
        let app = service::http::router(health.clone()).merge(crate::tools::dashboard::router(
            db.clone(),
            config.thresholds.clone(),
        ));
        let (addr, http) = service::http::serve(config.http_listen, app, shutdown.clone()).await?;
        let metrics_http = match config.metrics_listen {
            Some(listen) => {
                let (bound, task) =
                    service::http::serve(listen, service::http::metrics_router(), shutdown.clone())
                        .await?;
                tracing::info!(addr = %bound, "metrics alone at http://{bound}/metrics");
                Some(task)
            }
            None => None,
        };
        tracing::info!(
            %addr,
            schedule = %config.schedule,
            instance = %config.pass.instance,
            "reconciler started; dashboard at http://{addr}/"
        );

        if config.migrate && !migrate_with_retry(&db, &health, &shutdown).await {
            let _ = http.await;
            if let Some(task) = metrics_http {
                let _ = task.await;
            }
            return Ok(());
        }

        let mut failures: u32 = 0;
        let mut next = config.schedule.next_after(Utc::now());
        while let Some(due) = next {
            let now = Utc::now();
            if now < due {
                // A clock set back makes an earlier firing the next one.
                if let Some(sooner) = config.schedule.next_after(now)
                    && sooner < due
                {
                    next = Some(sooner);
                    continue;
                }
                let wait = (due - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_SLEEP);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            one_pass(&db, &config.pass, &health, &mut failures).await;
            next = config.schedule.next_after(Utc::now());
        }
        if next.is_none() {
            tracing::warn!(schedule = %config.schedule, "the schedule has no firing left; waiting for shutdown");
            shutdown.cancelled().await;
        }
        tracing::info!("reconciler stopping");
        let _ = http.await;
        if let Some(task) = metrics_http {
            let _ = task.await;
        }
        Ok(())
    }
}

/// One scheduled pass; failures are logged (the first and every tenth) and
/// reflected in `/readyz`, never fatal.
async fn one_pass(
    db: &DatabaseConnection,
    config: &PassConfig,
    health: &Health,
    failures: &mut u32,
) {
    let result = async {
        let horizons = Horizons::from_database(db, config).await?;
        run_once(db, config, horizons).await
    }
    .await;
    match result {
        Ok(outcome) => {
            if *failures > 0 {
                tracing::info!(failures = *failures, "database reachable again");
            }
            *failures = 0;
            let detail = match &outcome {
                PassOutcome::Completed(r) if r.errors.is_empty() => "last pass completed",
                PassOutcome::Completed(_) => "last pass had failed steps",
                PassOutcome::Skipped => "another instance ran the last pass",
            };
            health.set("database", true, detail);
        }
        Err(e) => {
            *failures += 1;
            metrics::counter!("aplus_reconciler_passes_total", "outcome" => "failed").increment(1);
            let text = chain(&e);
            if PASS_FAILURE_LOG.warns(*failures) {
                tracing::warn!(error = %text, failures = *failures, "reconciler pass could not start");
            }
            health.set("database", false, format!("unreachable: {text}"));
        }
    }
}

/// Applies migrations, retrying with backoff while the database is down.
/// Returns false if shutdown came first.
async fn migrate_with_retry(
    db: &DatabaseConnection,
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    let migrated = until_ok(
        "applying migrations",
        MIGRATE_BACKOFF,
        LogPolicy::Every(10),
        shutdown,
        || async {
            migration::migrate(db).await.map_err(|e| {
                let text = chain(&e);
                health.set("database", false, format!("migrations not applied: {text}"));
                text
            })
        },
    )
    .await;
    if migrated.is_some() {
        health.set("database", true, "migrated");
    }
    migrated.is_some()
}
