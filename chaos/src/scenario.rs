//! Running one scenario: start the stack, put it under load, let the
//! scenario's faults loose, stop the load, let the pipeline drain, and
//! check everything against ground truth.
//!
//! The common part is here: the script's context is [`crate::script`], what
//! is known at the end [`crate::facts`], the checks every scenario must pass
//! [`crate::invariants`]; what each fault does and what it must prove is in
//! [`crate::scenarios`].

use std::time::Duration;

use anyhow::{Context as _, Result};
use discord_sim::{GatewayFault, Target};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

use crate::checker;
use crate::facts::{ClockMark, Evidence, Facts, STABLE, read_events, read_passes};
use crate::invariants::common_checks;
use crate::load::Load;
use crate::monitor::Monitor;
use crate::notifications::NotificationLog;
use crate::probe::Probe;
use crate::report::ScenarioReport;
use crate::sampler::Sampler;
use crate::scenarios::Scenario;
use crate::script::FaultCtx;
use crate::settings::Settings;
use crate::stack::Stack;
use crate::timeline::Timeline;
use crate::verdict::Checks;

/// How long the services get to become ready at the start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Load kept up after the last fault, so recovery happens under load.
const LOAD_AFTER_FAULTS: Duration = Duration::from_secs(3);
/// How long the services get, after the drain, to recover from the last faults.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one scenario and reports on it. Never fails: a scenario that cannot
/// even be set up is reported as an error.
pub async fn run(
    scenario: Scenario,
    settings: &Settings,
    cancel: &CancellationToken,
) -> ScenarioReport {
    let timeline = Timeline::start();
    let log_dir = settings.log_root.join(scenario.name());
    match run_inner(scenario, settings, timeline, &log_dir, cancel).await {
        Ok(report) => report,
        Err(error) => ScenarioReport::error(scenario, settings, &log_dir, &format!("{error:#}")),
    }
}

async fn run_inner(
    scenario: Scenario,
    settings: &Settings,
    timeline: Timeline,
    log_dir: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<ScenarioReport> {
    let spec = scenario.spec(settings);
    let stack = Stack::start(&spec, &settings.binaries, timeline, log_dir).await?;
    let result = drive(scenario, settings, timeline, &stack, cancel).await;
    stack.stop().await;
    result
}

async fn drive(
    scenario: Scenario,
    settings: &Settings,
    timeline: Timeline,
    stack: &Stack,
    cancel: &CancellationToken,
) -> Result<ScenarioReport> {
    let heard = NotificationLog::start(stack.db.admin_url(), timeline);
    let probe = Probe::new(Duration::from_millis(800)).context("building the HTTP probe")?;
    let monitor = Monitor::start(stack.services().cloned().collect(), probe, timeline);
    let startup = stack
        .wait_ready(settings.bound(STARTUP_TIMEOUT), cancel)
        .await
        .context("starting the services")?;
    let clock = ClockMark::read(stack, timeline).await?;

    let sampler = Sampler::start(stack.db.admin_url().to_owned(), timeline);
    let (quiet, live) = stack
        .channels
        .split_last()
        .context("the stack has no channels")?;
    let load = Load::start(
        stack.sim.clone(),
        live.to_vec(),
        *quiet,
        settings.rate,
        timeline,
    );
    let load_started_at = timeline.now();
    let load_until = load_started_at + settings.duration;
    let mut ctx = FaultCtx {
        stack,
        timeline,
        settings,
        load_until,
        rng: StdRng::seed_from_u64(settings.seed ^ scenario.seed_salt()),
        faults: Vec::new(),
        cancel: cancel.clone(),
    };
    // A script must always finish what it started (a stopped server is
    // started again), so it is awaited, never dropped halfway.
    let script = scenario.inject(&mut ctx).await;
    let faults = std::mem::take(&mut ctx.faults);
    drop(ctx);
    script.context("injecting the faults")?;
    let keep_loading_until = load_until.max(timeline.now() + LOAD_AFTER_FAULTS);
    let wait = keep_loading_until.saturating_sub(timeline.now());
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(wait) => {}
    }
    let load_log = load.finish().await;
    let load_stopped_at = timeline.now();

    // Messages posted into history only are found by a backfill, which
    // follows every (re)connect: ask the bot's session to reconnect.
    request_backfill(stack).await;
    let (drain, state) = checker::drain(
        &stack.db,
        &stack.sim,
        &stack.channels,
        settings.bound(settings.drain_timeout),
    )
    .await
    .context("reading the final state")?;
    // The last faults of a run need time to be recovered from too: watch
    // until every service has been ready for a while (or give up).
    // A fault or exit the monitor's probes fell between must be followed by
    // a stable stretch too, or its recovery would be judged on no samples.
    let last_disturbance = faults
        .iter()
        .map(|f| f.end)
        .chain(
            stack
                .services()
                .flat_map(|s| s.process.exits())
                .map(|e| e.at),
        )
        .max()
        .unwrap_or_default();
    settle(
        &monitor,
        settings.bound(SETTLE_TIMEOUT),
        last_disturbance,
        cancel,
    )
    .await;
    let samples = sampler.finish().await;
    let monitor = monitor.finish().await;
    let heard = heard.finish().await;
    let events = read_events(stack, clock).await?;
    let passes_s = read_passes(stack, clock).await?;

    let facts = Facts {
        settings,
        faults,
        load: load_log,
        load_started_at,
        load_stopped_at,
        samples,
        monitor,
        heard,
        state,
        drain,
        events,
        passes_s,
        services: stack.services().cloned().collect(),
        server_log: stack.db.server_log(),
        startup,
        sim_stats: stack.sim.stats(),
    };
    let mut checks = Checks::default();
    let mut evidence = Evidence::default();
    common_checks(scenario, &facts, &mut checks);
    scenario.verify(&facts, &mut checks, &mut evidence);
    Ok(ScenarioReport::new(
        scenario,
        &facts,
        checks,
        evidence,
        &stack.log_dir,
    ))
}

/// Waits until the monitor has seen every service ready for [`STABLE`],
/// counted from its last not-ready sample or from `since`, whichever is later.
async fn settle(monitor: &Monitor, timeout: Duration, since: Duration, cancel: &CancellationToken) {
    let started = std::time::Instant::now();
    while started.elapsed() < timeout && !cancel.is_cancelled() {
        let record = monitor.snapshot();
        let last_not_ready = record
            .all_ready
            .iter()
            .rev()
            .find(|(_, ready)| !ready)
            .map(|(t, _)| *t);
        let last = record.all_ready.last().map(|(t, _)| *t);
        let disturbed = last_not_ready.map_or(since, |t| t.max(since));
        // The judgement of the last fault reads this same record: it must
        // already hold a stable stretch after the fault.
        if let Some(last) = last
            && last.saturating_sub(disturbed) > STABLE
            && record.recovered_after(since, STABLE).is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asks the simulator to send op 7 RECONNECT to the bot's session, retrying
/// while the bot is between instances.
async fn request_backfill(stack: &Stack) {
    for _ in 0..50 {
        if stack.sim.inject(Target::All, GatewayFault::Reconnect) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
