//! Running one scenario: start the stack, put it under load, let the
//! scenario's faults loose, stop the load, let the pipeline drain, and
//! check everything against ground truth.
//!
//! The common part is here; what each fault does and what it must prove is
//! in [`crate::scenarios`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use discord_sim::{GatewayFault, Target};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::checker::{self, FinalState};
use crate::load::{Load, LoadLog};
use crate::monitor::{Monitor, MonitorRecord};
use crate::notifications::{Heard, NotificationLog};
use crate::probe::Probe;
use crate::report::ScenarioReport;
use crate::sampler::{SampleLog, Sampler};
use crate::scenarios::Scenario;
use crate::settings::Settings;
use crate::stack::{Service, Stack};
use crate::supervisor::{Ended, Exit};
use crate::timeline::{Timeline, secs};
use crate::verdict::{Checks, Kind};

/// How long the services get to become ready at the start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Load kept up after the last fault, so recovery happens under load.
const LOAD_AFTER_FAULTS: Duration = Duration::from_secs(3);
/// How long the services get, after the drain, to recover from the last faults.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long "all ready" must last to count as recovered.
pub const STABLE: Duration = Duration::from_secs(2);

/// How long the services took to recover from one fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryTime {
    /// From the end of the fault to every service ready (and staying so
    /// for [`STABLE`]); `None` if that never happened.
    pub healthy_after: Option<Duration>,
    /// The next fault began before the services had recovered: the
    /// recovery was cut short, not slow, and is not judged.
    pub interrupted: bool,
}

/// The recovery after each fault, in order.
pub fn recovery_times(faults: &[FaultRecord], monitor: &MonitorRecord) -> Vec<RecoveryTime> {
    faults
        .iter()
        .enumerate()
        .map(|(i, fault)| {
            let next = faults.get(i + 1).map(|f| f.start);
            let healthy_after = monitor.recovered_after(fault.end, STABLE);
            let interrupted = match (healthy_after, next) {
                (Some(took), Some(next)) => fault.end + took + STABLE > next,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            RecoveryTime {
                healthy_after,
                interrupted,
            }
        })
        .collect()
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What was done (`kill -9`, `pg_ctl restart -m fast`, ...).
    pub what: String,
    /// To whom.
    pub target: String,
    /// When it began, seconds into the scenario.
    #[serde(serialize_with = "as_secs")]
    pub start: Duration,
    /// When it was over (the service or server was let go again).
    #[serde(serialize_with = "as_secs")]
    pub end: Duration,
    /// Whether the fault landed where it was meant to (a kill inside a
    /// transaction, a pause that outlived the lease...).
    pub landed: bool,
    /// A time the scenario measured about this fault (how long the LISTEN
    /// session took to come back, say), in seconds.
    pub measured_s: Option<f64>,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(secs(*d))
}

/// What a fault script can reach.
#[derive(Debug)]
pub struct FaultCtx<'a> {
    /// The system under test.
    pub stack: &'a Stack,
    /// The scenario's clock.
    pub timeline: Timeline,
    /// The run's settings.
    pub settings: &'a Settings,
    /// When the planned load ends; scripts should be done by then.
    pub load_until: Duration,
    /// Random fault timings, seeded from the settings.
    pub rng: StdRng,
    /// Faults done so far.
    pub faults: Vec<FaultRecord>,
    cancel: CancellationToken,
}

impl FaultCtx<'_> {
    /// Time left until the planned end of the load.
    pub fn remaining(&self) -> Duration {
        self.load_until.saturating_sub(self.timeline.now())
    }

    /// Sleeps, unless the run is being cancelled. Returns false if it is.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    /// Waits until every launched service has answered ready for a couple
    /// of seconds (or `timeout` passes), so the next fault starts from a
    /// recovered system. Returns false if it never did.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        let mut ready_since: Option<std::time::Instant> = None;
        while started.elapsed() < timeout && !self.cancel.is_cancelled() {
            if self.stack.all_ready().await {
                let since = *ready_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= STABLE {
                    return true;
                }
            } else {
                ready_since = None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Records a fault that began at `start` and is over now.
    pub fn record(&mut self, what: &str, target: &str, start: Duration, landed: bool) {
        let end = self.timeline.now();
        self.record_at(what, target, start, end, landed, None);
    }

    /// Records a fault with its times and a measurement.
    pub fn record_at(
        &mut self,
        what: &str,
        target: &str,
        start: Duration,
        end: Duration,
        landed: bool,
        measured: Option<Duration>,
    ) {
        self.faults.push(FaultRecord {
            what: what.to_owned(),
            target: target.to_owned(),
            start,
            end,
            landed,
            measured_s: measured.map(secs),
        });
    }
}

/// Everything known about a scenario once it is over.
#[derive(Debug)]
pub struct Facts<'a> {
    /// The run's settings.
    pub settings: &'a Settings,
    /// The faults done.
    pub faults: Vec<FaultRecord>,
    /// The load.
    pub load: LoadLog,
    /// When the load started (the services were all ready, and the
    /// suite's own listener and sampler were running).
    pub load_started_at: Duration,
    /// When the load stopped.
    pub load_stopped_at: Duration,
    /// The invariant samples.
    pub samples: SampleLog,
    /// Readiness and counters of the services.
    pub monitor: MonitorRecord,
    /// What an independent listener heard on `events`.
    pub heard: Heard,
    /// The final state against ground truth.
    pub state: FinalState,
    /// How long the drain took, if it completed.
    pub drain: Option<Duration>,
    /// Every event with its times on the scenario's timeline.
    pub events: Vec<EventTiming>,
    /// When each recorded reconciler pass started, on the scenario's
    /// timeline (database clock).
    pub passes_s: Vec<f64>,
    /// The services (their process records survive the stop).
    pub services: Vec<Service>,
    /// The database server's log.
    pub server_log: String,
    /// How long the services took to become ready at the start.
    pub startup: Duration,
    /// Simulator counters.
    pub sim_stats: discord_sim::SimStats,
}

impl Facts<'_> {
    /// Exits of the services whose name starts with `prefix`.
    pub fn exits(&self, prefix: &str) -> Vec<Exit> {
        self.services
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .flat_map(|s| s.process.exits())
            .collect()
    }

    /// How many exits of `prefix` services were aborts (SIGABRT: a failpoint fired).
    pub fn aborts(&self, prefix: &str) -> usize {
        self.exits(prefix)
            .iter()
            .filter(|e| e.ended == Ended::ABORT)
            .count()
    }

    /// Lines of the server log that contain `needle`.
    pub fn server_log_count(&self, needle: &str) -> usize {
        self.server_log
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// Extra numbers a scenario wants in its report.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Evidence(pub BTreeMap<String, serde_json::Value>);

impl Evidence {
    /// Adds one number or text. Whole numbers (counter totals arrive as
    /// floats) are stored as integers.
    pub fn put(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        let mut value = value.into();
        if let Some(f) = value.as_f64()
            && f.fract() == 0.0
            && f.abs() < 9.0e15
        {
            value = serde_json::Value::from(f as i64);
        }
        self.0.insert(key.to_owned(), value);
    }
}

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

/// An event's times, in seconds on the scenario's timeline (database clock,
/// shifted by [`ClockMark`]; negative for events written before the mark).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventTiming {
    /// The event.
    pub id: Uuid,
    /// When it was written.
    pub created_s: f64,
    /// When it was processed, if it was.
    pub processed_s: Option<f64>,
}

/// One reading of the database clock against the timeline, to place
/// database timestamps on it.
#[derive(Debug, Clone, Copy)]
struct ClockMark {
    database: DateTime<Utc>,
    timeline: Duration,
}

impl ClockMark {
    async fn read(stack: &Stack, timeline: Timeline) -> Result<Self> {
        let mut conn = stack.db.connect("aplus-chaos-checker").await?;
        let before = timeline.now();
        let database: DateTime<Utc> = sea_orm::sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut conn)
            .await
            .context("reading the database clock")?;
        let after = timeline.now();
        Ok(Self {
            database,
            timeline: before + (after - before) / 2,
        })
    }

    fn place(&self, at: DateTime<Utc>) -> f64 {
        let offset = (at - self.database).num_microseconds().unwrap_or(0) as f64 / 1e6;
        secs(self.timeline) + offset
    }
}

async fn read_events(stack: &Stack, clock: ClockMark) -> Result<Vec<EventTiming>> {
    let mut conn = stack.db.connect("aplus-chaos-checker").await?;
    let rows: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> = sea_orm::sqlx::query_as(
        "SELECT e.id, e.created_at, i.processed_at FROM events e \
         LEFT JOIN inbox i ON i.event_id = e.id AND i.status = 'processed'",
    )
    .fetch_all(&mut conn)
    .await
    .context("reading the events")?;
    Ok(rows
        .into_iter()
        .map(|(id, created, processed)| EventTiming {
            id,
            created_s: clock.place(created),
            processed_s: processed.map(|p| clock.place(p)),
        })
        .collect())
}

async fn read_passes(stack: &Stack, clock: ClockMark) -> Result<Vec<f64>> {
    let mut conn = stack.db.connect("aplus-chaos-checker").await?;
    let started: Vec<DateTime<Utc>> =
        sea_orm::sqlx::query_scalar("SELECT started_at FROM reconciler_runs ORDER BY started_at")
            .fetch_all(&mut conn)
            .await
            .context("reading the reconciler passes")?;
    Ok(started.into_iter().map(|at| clock.place(at)).collect())
}

/// The checks every scenario must pass: the invariants, against ground truth.
fn common_checks(scenario: Scenario, facts: &Facts<'_>, checks: &mut Checks) {
    let s = &facts.state;
    let c = &s.comparison;
    checks.add(
        Kind::Safety,
        "I0 no loss",
        c.lost.is_empty(),
        format!(
            "{} emitted, {} stored, {} lost{}",
            s.emitted,
            s.counts.messages,
            c.lost.len(),
            sample_ids(&c.lost)
        ),
    );
    checks.add(
        Kind::Safety,
        "I0 nothing unexpected",
        c.unexpected.is_empty() && c.duplicated.is_empty(),
        format!(
            "{} unexpected{}, {} duplicated",
            c.unexpected.len(),
            sample_ids(&c.unexpected),
            c.duplicated.len()
        ),
    );
    let changes = &s.changes;
    checks.add(
        Kind::Safety,
        "I0 edits and deletes applied",
        changes.all_applied(),
        format!(
            "{} edited messages, {} with other text than Discord's{}; {} deleted, {} not marked deleted{}",
            changes.edited,
            changes.edit_missed.len(),
            sample_ids(&changes.edit_missed),
            changes.deleted,
            changes.delete_missed.len(),
            sample_ids(&changes.delete_missed)
        ),
    );
    let violations = &facts.samples.violations;
    let good = facts.samples.taken - facts.samples.failed;
    checks.add(
        Kind::Safety,
        "I1/I2 at every sample",
        violations.is_empty() && good > 0,
        match violations.first() {
            None => format!(
                "{good} samples held ({} could not be taken)",
                facts.samples.failed
            ),
            Some(v) => format!(
                "{} violations; first at {:.1}s: {}",
                violations.len(),
                v.at_s,
                v.what
            ),
        },
    );
    let final_broken = s.counts.i1_i2_violations();
    checks.add(
        Kind::Safety,
        "I1/I2 at the end",
        final_broken.is_empty(),
        if final_broken.is_empty() {
            format!(
                "{} messages, {} message.created events",
                s.counts.messages, s.counts.created_events
            )
        } else {
            final_broken.join("; ")
        },
    );
    let e = &s.effects;
    checks.add(
        Kind::Safety,
        "I3 no effect applied twice",
        e.applied_twice == 0 && e.without_inbox == 0 && e.duplicate_setups == 0,
        format!(
            "{} effects committed: {} events applied twice, {} without their inbox row, {} duplicate setups",
            e.recorded, e.applied_twice, e.without_inbox, e.duplicate_setups
        ),
    );
    checks.add(
        Kind::Liveness,
        "I3 every processed event has its effect",
        e.processed_without_effect == 0 && e.messages_without_parse == 0,
        format!(
            "{} processed events without an effect, {} messages without a parse",
            e.processed_without_effect, e.messages_without_parse
        ),
    );
    checks.add(
        Kind::Liveness,
        "I4 nothing left unprocessed",
        facts.drain.is_some() && s.counts.unprocessed == 0 && s.counts.dead == 0,
        format!(
            "{} unprocessed, {} failed, {} dead; drain {}",
            s.counts.unprocessed,
            s.counts.failed,
            s.counts.dead,
            match facts.drain {
                Some(d) => format!("took {:.1}s", secs(d)),
                None => format!(
                    "did not finish within {:.0}s",
                    secs(facts.settings.bound(facts.settings.drain_timeout))
                ),
            }
        ),
    );
    let unexpected_exits: Vec<String> = facts
        .services
        .iter()
        .flat_map(|service| {
            service
                .process
                .exits()
                .into_iter()
                .filter(|exit| !scenario.expected_exit(service, exit))
                // The final stop is SIGTERM and a clean exit; everything before it counts.
                .filter(|exit| exit.at < facts.load_stopped_at || exit.ended != Ended::Code(0))
                .map(|exit| {
                    format!(
                        "{} {:?} at {:.1}s after {:.1}s up",
                        service.name,
                        exit.ended,
                        secs(exit.at),
                        secs(exit.uptime)
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    checks.add(
        Kind::Liveness,
        "no crash",
        unexpected_exits.is_empty(),
        if unexpected_exits.is_empty() {
            "no service exited unless the suite made it".to_owned()
        } else {
            unexpected_exits.join("; ")
        },
    );
}

/// Up to five ids, for a check's detail.
fn sample_ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = ids.iter().take(5).map(u64::to_string).collect();
    format!(
        " (e.g. {}{})",
        shown.join(", "),
        if ids.len() > 5 { ", ..." } else { "" }
    )
}
