//! The scenarios, run in this order on one pipeline: the burst first (so the
//! bot's peak memory is the burst's), then the paced runs from slow to fast,
//! then the worker drain (which replaces the worker). Each waits until
//! everything it posted is processed before the next begins.

pub mod burst;
pub mod drain;
pub mod measure;
pub mod paced;

use anyhow::{Context as _, Result, bail};
use discord_sim::NewMessage;
use tokio_util::sync::CancellationToken;

use crate::database::BenchDb;
use crate::pipeline::Pipeline;
use crate::report::ScenarioResults;
use crate::settings::Settings;
use crate::traffic::Traffic;
use crate::yardstick::Sample;

pub use measure::CpuPer10k;

/// Runs every scenario.
///
/// # Errors
/// A database or simulator error, or cancellation.
pub async fn run_all(
    db: &BenchDb,
    pipeline: &Pipeline,
    settings: &Settings,
    sample: &Sample,
    cancel: &CancellationToken,
) -> Result<ScenarioResults> {
    let mut traffic = Traffic::new(pipeline.channels.clone());
    eprintln!("loadbench: burst of {} messages", settings.burst);
    let burst = burst::run(db, pipeline, settings, &mut traffic, cancel).await?;
    let mut paced = Vec::new();
    for rate in &settings.paced_rates {
        eprintln!(
            "loadbench: paced at {rate}/s for {} s",
            settings.paced_duration.as_secs()
        );
        paced.push(paced::run(db, pipeline, settings, *rate, &mut traffic, cancel).await?);
    }
    eprintln!("loadbench: worker drain of {} events", settings.drain);
    let drain = drain::run(db, pipeline, settings, sample, &mut traffic, cancel).await?;
    Ok(ScenarioResults {
        burst,
        paced,
        drain,
    })
}

/// Posts one chatter message, waits until it is processed, and returns it
/// as the bot stored it.
///
/// # Errors
/// When it is not processed in time (the pipeline does not work), a
/// database error, or cancellation.
pub async fn warm_up(
    db: &BenchDb,
    pipeline: &Pipeline,
    settings: &Settings,
    cancel: &CancellationToken,
) -> Result<Sample> {
    let content = discord_sim::CHATTER[1].to_owned();
    let channel_id = pipeline.channels[0];
    let before = db.progress().await?;
    let id = pipeline
        .sim
        .post(NewMessage::text(channel_id, content.clone()))
        .context("posting the warm-up message")?;
    if !measure::settle(db, before, 1, 1, settings.settle_timeout, cancel).await? {
        bail!(
            "the warm-up message was not processed; see the logs in {}",
            settings.log_dir.display()
        );
    }
    Ok(Sample {
        content,
        raw: db.stored_raw(paced::ids_of(&[id])[0]).await?,
        guild_id: pipeline.guild,
        channel_id,
    })
}
