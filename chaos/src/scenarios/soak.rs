//! The soak: one long run (30 minutes by default) at a high rate, with the
//! faults of the other scenarios let loose at random times, one episode
//! after another, and the same checks against ground truth at the end.
//!
//! Each episode picks a scenario from [`POOL`] and runs its fault script for
//! a random 20 to 45 seconds (the script sees only that window as its run),
//! then the system gets a random 5 to 20 seconds of quiet. Scenarios that
//! need the whole run set up differently cannot take part: the failpoint
//! ones (F01, F02, F09 arm an abort or a deaf listener for the whole run),
//! F07 (a role setting), F08 (freezes the worker's connections for good),
//! F14 (workers held back at the start) and F15 (libfaketime preloaded into
//! the services). Every other scenario does, F16 and F17 included.
//!
//! Memory matters over a long run: every service's RSS is sampled by the
//! monitor, and the soak reports, per service, its RSS when the load began,
//! its peak and its end, and fails when a service ends much bigger than it
//! began (a leak, or a buffer that never shrinks).

use std::time::Duration;

use anyhow::Result;
use rand::Rng as _;

use super::{Scenario, check_recovery, database, sweep};
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::verdict::{Checks, Kind};

/// The soak's default length.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30 * 60);
/// The soak's default rate: 120 messages a second is 216,000 in 30 minutes.
pub const DEFAULT_RATE: f64 = 120.0;
/// How long the pipeline may take to catch up after the soak's load.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(240);

/// The scenarios whose faults the soak injects.
pub const POOL: [Scenario; 11] = [
    Scenario::KillBot,
    Scenario::KillWorker,
    Scenario::PauseWorker,
    Scenario::KillListener,
    Scenario::PgRestart,
    Scenario::PgCrash,
    Scenario::DbOutage,
    Scenario::ConnectionExhaustion,
    Scenario::GatewayFaults,
    Scenario::SilentLoss,
    Scenario::LedgerKill,
];

/// A service may end at most this many times its RSS at the load's start,
/// plus [`RSS_SLACK_KIB`], and still count as flat.
const RSS_GROWTH: f64 = 2.0;
const RSS_SLACK_KIB: u64 = 64 * 1024;

/// What the soak's services need for every fault of the pool.
pub(super) fn spec() -> StackSpec {
    // Outages overflow the buffer within seconds, so the gap ledger is
    // used; silent loss episodes need the sweep, whose window covers
    // several sweeps without reading the whole soak each time.
    let mut spec = sweep::sweeping(database::buffer_spec(500), "0 * * * * *", "3m");
    // Worker kills and pauses need a second worker to take over.
    spec.workers = 2;
    spec
}

/// Runs fault episodes until the load's planned end.
pub(super) async fn inject(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let soak_until = ctx.load_until;
    let mut episodes = 0_u32;
    loop {
        let quiet = Duration::from_millis(ctx.rng.random_range(5_000..20_000));
        if !ctx.sleep(quiet).await {
            break;
        }
        let left = ctx.remaining();
        let length = Duration::from_millis(ctx.rng.random_range(20_000..45_000));
        if left < length + Duration::from_secs(10) {
            break;
        }
        let scenario = POOL[ctx.rng.random_range(0..POOL.len())];
        tracing::info!(
            scenario = scenario.name(),
            seconds = length.as_secs(),
            "soak: fault episode"
        );
        ctx.load_until = ctx.timeline.now() + length;
        let result = scenario.inject(ctx).await;
        ctx.load_until = soak_until;
        result?;
        episodes += 1;
    }
    tracing::info!(episodes, "soak: faults done");
    Ok(())
}

pub(super) fn verify(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let s = &facts.state;
    let c = &s.comparison;
    evidence.put("faults", facts.faults.len());
    evidence.put("messages", s.emitted);
    evidence.put("posted", facts.load.posted.len());
    evidence.put(
        "summary",
        format!(
            "lost={} duplicated={} unexpected={} effects_twice={} unprocessed={} faults={} messages={}",
            c.lost.len(),
            c.duplicated.len(),
            c.unexpected.len(),
            s.effects.applied_twice,
            s.counts.unprocessed,
            facts.faults.len(),
            facts.load.posted.len(),
        ),
    );
    let kinds: std::collections::BTreeSet<&str> =
        facts.faults.iter().map(|f| f.what.as_str()).collect();
    evidence.put("fault_kinds", kinds.len());
    checks.add(
        Kind::Proof,
        "faults of several scenarios landed",
        facts.faults.iter().any(|f| f.landed) && kinds.len() >= 2,
        format!(
            "{} faults of {} kinds: {}",
            facts.faults.len(),
            kinds.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );
    let mut grown = Vec::new();
    let mut figures = Vec::new();
    for (name, service) in &facts.monitor.services {
        let during: Vec<u64> = service
            .rss_kib
            .iter()
            .filter(|(t, _)| *t >= facts.load_started_at)
            .map(|(_, kib)| *kib)
            .collect();
        let (Some(&start), Some(&end)) = (during.first(), during.last()) else {
            continue;
        };
        let peak = during.iter().copied().max().unwrap_or(end);
        let mib = |kib: u64| kib / 1024;
        evidence.put(
            &format!("rss_{name}_mib"),
            format!("start {} peak {} end {}", mib(start), mib(peak), mib(end)),
        );
        figures.push(format!(
            "{name} {}/{}/{} MiB",
            mib(start),
            mib(peak),
            mib(end)
        ));
        if end as f64 > start as f64 * RSS_GROWTH + RSS_SLACK_KIB as f64 {
            grown.push(name.clone());
        }
    }
    checks.add(
        Kind::Liveness,
        "RSS flat",
        grown.is_empty() && !figures.is_empty(),
        format!(
            "start/peak/end per service: {}{}",
            figures.join(", "),
            if grown.is_empty() {
                String::new()
            } else {
                format!("; grew past {RSS_GROWTH}x + 64 MiB: {}", grown.join(", "))
            }
        ),
    );
    check_recovery(
        facts,
        checks,
        "healthy after each fault",
        Duration::from_secs(30),
    );
}
