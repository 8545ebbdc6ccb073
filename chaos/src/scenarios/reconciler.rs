//! F14: two reconcilers at once.
//!
//! Both run a pass every two seconds, on the same ticks, so they contend
//! for the advisory lock every time. The worker starts only after a third of
//! the run, so events pile up and age past the orphan grace: there is
//! something to re-fire. Only one reconciler may act per pass: no event may
//! be announced twice at once (the suite's own listener hears every NOTIFY).

use std::time::Duration;

use anyhow::Result;

use super::check_proof;
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::settings::Settings;
use crate::stack::StackSpec;
use crate::verdict::{Checks, Kind};

/// Both reconcilers, every two seconds.
const SCHEDULE: &str = "*/2 * * * * *";
/// Two announcements of one event closer than this came from one pass
/// twice (consecutive passes are two seconds apart).
const TWICE_WINDOW: Duration = Duration::from_millis(500);

pub(super) fn spec(_settings: &Settings) -> StackSpec {
    let mut spec = StackSpec::default()
        .reconciler("RECONCILER_SCHEDULE", SCHEDULE)
        .reconciler("RECONCILER_ORPHAN_GRACE", "3s");
    spec.reconcilers = 2;
    spec.delayed_workers = true;
    spec
}

/// Starts the worker a third of the way in.
pub(super) async fn late_worker(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let wait = (ctx.remaining() / 3).max(Duration::from_secs(8));
    let start = ctx.timeline.now();
    ctx.sleep(wait).await;
    for worker in &ctx.stack.workers {
        worker.process.launch();
    }
    ctx.record(
        "no worker running (events become orphans)",
        "worker-a",
        start,
        true,
    );
    Ok(())
}

pub(super) fn verify(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let skipped = facts
        .monitor
        .total("reconciler", "aplus_reconciler_passes_total", "skipped");
    let completed = facts
        .monitor
        .total("reconciler", "aplus_reconciler_passes_total", "completed");
    let refired = facts
        .monitor
        .total("reconciler", "aplus_reconciler_orphans_refired_total", "");
    let missing = facts.monitor.total(
        "reconciler",
        "aplus_reconciler_missing_events_created_total",
        "",
    );
    let twice = facts.heard.announced_twice_within(TWICE_WINDOW);
    evidence.put("passes_completed", completed);
    evidence.put("passes_skipped_for_the_lock", skipped);
    evidence.put("orphans_refired", refired);
    evidence.put("missing_events_created", missing);
    for service in facts
        .services
        .iter()
        .filter(|s| s.name.starts_with("reconciler"))
    {
        evidence.put(
            &format!("{}_passes", service.name),
            facts
                .monitor
                .total(&service.name, "aplus_reconciler_passes_total", "completed"),
        );
    }
    check_proof(
        checks,
        "the reconcilers contended for the lock",
        skipped,
        format!("{skipped} passes found the other reconciler holding the lock and stood down"),
        "",
    );
    check_proof(
        checks,
        "there were orphans to re-fire",
        refired,
        format!("{refired} orphaned events were re-fired while no worker ran"),
        "",
    );
    checks.add(
        Kind::Safety,
        "no double re-fire",
        twice.is_empty(),
        if twice.is_empty() {
            format!(
                "no event was announced twice within {} ms",
                TWICE_WINDOW.as_millis()
            )
        } else {
            format!(
                "{} events were announced twice within {} ms (e.g. {})",
                twice.len(),
                TWICE_WINDOW.as_millis(),
                twice[0]
            )
        },
    );
    checks.add(
        Kind::Safety,
        "no events invented",
        missing == 0.0,
        format!("the reconcilers created {missing} missing events (the bot writes each with its message)"),
    );
}
