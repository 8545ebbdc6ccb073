//! The end-to-end benchmark behind `cargo xtask bench e2e`: how fast the real
//! `bot` and `worker` move messages from the gateway to processed inbox rows,
//! measured against yardsticks taken on the same server in the same run.
//!
//! One run starts a private PostgreSQL ([`database`]) with default
//! durability, `pg_stat_statements` and commit timestamps, and one login role
//! per service so statement counts split by service. The services run as
//! child processes against the in-process fake Discord ([`pipeline`]); one
//! warm-up message goes through them, which proves the set-up and yields the
//! `raw` JSON exactly as the bot stores it. With the services idle, the
//! yardsticks run ([`yardstick`]): `pgbench` doing exactly the bot's
//! single-message write with that JSON, and the same write grouped 50
//! messages per transaction. Then four scenarios ([`scenarios`]): a burst
//! posted at once, paced loads whose per-message latency is read from the
//! simulator's dispatch time and the commit timestamps of the `messages` and
//! `inbox` rows, and a drain of a backlog seeded with the worker stopped. CPU
//! seconds and memory are read from `/proc` ([`procstat`]). [`report`]
//! renders the figures as a table and JSON.
//!
//! This is a crate of its own rather than part of `chaos`, because the two
//! answer different questions (is anything lost under faults; how fast is it
//! with none) and share only plumbing. That plumbing is `chaos`'s, used as a
//! library: its process supervisor, its HTTP probe and its metrics parser.
//!
//! Everything the run starts is stopped and removed when it ends, on failure
//! or on Ctrl-C too: the services are stopped by their supervisors (and killed
//! when dropped), the simulator is shut down, and the cluster is stopped and
//! its directory deleted when [`database::BenchDb`] is dropped.

pub mod database;
pub mod pipeline;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod settings;
pub mod stats;
pub mod traffic;
pub mod yardstick;

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use crate::database::BenchDb;
use crate::pipeline::Pipeline;
use crate::report::{Machine, Report};
use crate::settings::Settings;

/// Runs the whole benchmark and returns its figures. Cancelling `cancel`
/// stops it at the next step; everything started is cleaned up either way.
///
/// # Errors
/// When PostgreSQL, `pgbench`, the simulator or a service cannot be
/// started, or the run was cancelled.
pub async fn run(settings: &Settings, cancel: &CancellationToken) -> Result<Report> {
    std::fs::create_dir_all(&settings.log_dir)
        .with_context(|| format!("creating {}", settings.log_dir.display()))?;
    eprintln!("loadbench: starting a private PostgreSQL (fsync=on, synchronous_commit=on)");
    let db = BenchDb::start().await?;
    let machine = Machine::read(&db).await;
    let pipeline = Pipeline::start(&db, settings).await?;
    // The pipeline is stopped whatever happens next; the database goes when
    // `db` is dropped at the end of this function.
    let outcome = async {
        eprintln!("loadbench: starting the bot and the worker");
        pipeline.launch(cancel).await?;
        // One message through the whole pipeline before anything is timed:
        // it proves the set-up works, and gives the yardsticks and the
        // seeded backlog the exact `raw` JSON the bot stores.
        let sample = scenarios::warm_up(&db, &pipeline, settings, cancel).await?;
        let yardsticks = yardstick::run_all(&db, settings, &sample, cancel).await?;
        let scenarios = scenarios::run_all(&db, &pipeline, settings, &sample, cancel).await?;
        Ok::<_, anyhow::Error>((yardsticks, scenarios))
    }
    .await;
    pipeline.stop().await;
    let (yardsticks, scenarios) = outcome?;
    Ok(Report::new(machine, settings, yardsticks, scenarios))
}
