//! F06 to F09: the worker's LISTEN connection is cut, timed out, goes
//! half-open, or goes deaf.
//!
//! F06 terminates the LISTEN session every five seconds with polling turned
//! off, so only the listener's reconnect and its catch-up scan can move the
//! events written during the gap. F07 does the same through the server's
//! own `idle_session_timeout` on the services' role: a LISTEN session runs
//! no statement while it waits, so the server ends it every few seconds. F08 puts a proxy between the worker and
//! PostgreSQL and, a third of the way in, makes every connection through it
//! half-open (open at both ends, nothing passes): the heartbeat must notice
//! within 10 s and the worker must be processing again within 15 s. F09
//! drops every notification (failpoint `listener-deaf`): the heartbeat must
//! notice, and polling must keep work flowing meanwhile.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{check_proof, max_latency};
use crate::database::server_log;
use crate::facts::{Evidence, Facts};
use crate::faults::{terminate_listener, wait_listener_back};
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// Time between terminations.
const EVERY: Duration = Duration::from_secs(5);
/// RELIABILITY F06: reconnect p99 within 3 s.
const RECONNECT_TARGET: Duration = Duration::from_secs(3);
/// RELIABILITY F06: the gap processed within 5 s after the reconnect.
const GAP_TARGET: Duration = Duration::from_secs(5);
/// RELIABILITY F09: the heartbeat detects a deaf listener within 10 s.
const DEAF_TARGET: Duration = Duration::from_secs(10);
/// RELIABILITY F08: a half-open connection detected within 10 s...
const HALF_OPEN_DETECT_TARGET: Duration = Duration::from_secs(10);
/// ...and the worker processing again within 15 s.
const HALF_OPEN_RECOVER_TARGET: Duration = Duration::from_secs(15);

pub(super) fn kill_spec() -> StackSpec {
    // Polling off: only the listener (and its catch-up) moves events.
    StackSpec::default().worker("WORKER_POLL_INTERVAL", "0")
}

/// Terminates the LISTEN session every [`EVERY`] and times its return.
pub(super) async fn kill(ctx: &mut FaultCtx<'_>) -> Result<()> {
    loop {
        if !ctx.sleep(EVERY).await || ctx.remaining() < Duration::from_secs(3) {
            return Ok(());
        }
        let worker = &ctx.stack.workers[0];
        let start = ctx.timeline.now();
        let began = Instant::now();
        let (ended, at) = terminate_listener(&ctx.stack.db, worker).await?;
        let back = if ended > 0 {
            wait_listener_back(&ctx.stack.db, worker, at, Duration::from_secs(30))
                .await?
                .map(|_| began.elapsed())
        } else {
            None
        };
        let end = ctx.timeline.now();
        ctx.record_at(
            "pg_terminate_backend on the LISTEN session",
            &worker.name,
            start,
            end,
            ended > 0 && back.is_some(),
            back,
        );
    }
}

pub(super) fn verify_kill(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let terminated = facts.faults.iter().filter(|f| f.landed).count();
    let server_saw = facts.server_log_count(server_log::ADMINISTRATOR_COMMAND);
    let mut reconnects: Vec<f64> = facts.faults.iter().filter_map(|f| f.measured_s).collect();
    reconnects.sort_by(f64::total_cmp);
    let p99 = percentile(&reconnects, 0.99);
    evidence.put("terminations", terminated);
    evidence.put("reconnect_p50_s", percentile(&reconnects, 0.5));
    evidence.put("reconnect_p99_s", p99);
    check_proof(
        checks,
        "the LISTEN session was cut",
        server_saw.min(terminated) as f64,
        format!(
            "{terminated} terminations; the server logged {server_saw} sessions ended by administrator command"
        ),
        "",
    );
    let reconnect_bound = facts.settings.bound(RECONNECT_TARGET);
    let never_back = facts
        .faults
        .iter()
        .filter(|f| f.measured_s.is_none())
        .count();
    checks.add(
        Kind::Timing,
        "listener reconnect p99 <= 3 s",
        never_back == 0 && p99 <= reconnect_bound.as_secs_f64(),
        format!(
            "p99 {p99:.2}s over {} reconnects ({never_back} never came back within 30 s; bound {:.1}s)",
            reconnects.len(),
            reconnect_bound.as_secs_f64()
        ),
    );
    // Events written while the session was gone: each must be processed
    // within 5 s of the listener's return.
    let gap_bound = facts.settings.bound(GAP_TARGET).as_secs_f64();
    let mut in_gaps = 0;
    let mut worst_after: f64 = 0.0;
    let mut late = 0;
    for fault in &facts.faults {
        let Some(reconnect) = fault.measured_s else {
            continue;
        };
        let (from, back) = (secs(fault.start), secs(fault.start) + reconnect);
        for event in facts
            .events
            .iter()
            .filter(|e| e.created_s >= from && e.created_s <= back)
        {
            in_gaps += 1;
            let after = event.processed_s.map_or(f64::INFINITY, |p| p - back);
            worst_after = worst_after.max(after);
            if after > gap_bound {
                late += 1;
            }
        }
    }
    evidence.put("events_written_during_gaps", in_gaps);
    checks.add(
        Kind::Timing,
        "gap processed <= 5 s after the reconnect",
        late == 0,
        format!(
            "{in_gaps} events were written while the listener was away; the last was processed \
             {worst_after:.2}s after it came back ({late} later than {gap_bound:.0}s)"
        ),
    );
}

/// F07: the services' sessions end after this long without a statement.
const IDLE_SESSION_TIMEOUT: &str = "4s";

pub(super) fn idle_timeout_spec() -> StackSpec {
    StackSpec {
        role_settings: vec![("idle_session_timeout", IDLE_SESSION_TIMEOUT)],
        ..StackSpec::default()
    }
    .worker("WORKER_POLL_INTERVAL", "0")
}

/// The server does the work; the script only waits.
pub(super) async fn wait_out(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let remaining = ctx.remaining();
    ctx.sleep(remaining).await;
    Ok(())
}

pub(super) fn verify_idle_timeout(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let timed_out = facts.server_log_count(server_log::IDLE_SESSION_TIMEOUT);
    let reconnects = facts
        .monitor
        .total("worker", "aplus_listener_reconnects_total", "");
    evidence.put("sessions_timed_out", timed_out);
    evidence.put("listener_reconnects", reconnects);
    check_proof(
        checks,
        "the server timed out the LISTEN session",
        if timed_out > 0 { reconnects } else { 0.0 },
        format!(
            "the server ended {timed_out} idle sessions (idle_session_timeout {IDLE_SESSION_TIMEOUT}); \
             the worker's listener reconnected {reconnects} times"
        ),
        "",
    );
    let worst = max_latency(facts);
    let bound = facts.settings.bound(GAP_TARGET).as_secs_f64();
    checks.add(
        Kind::Timing,
        "every event processed <= 5 s",
        worst <= bound,
        format!(
            "with polling off and the LISTEN session cut every {IDLE_SESSION_TIMEOUT}, the slowest \
             event took {worst:.2}s (bound {bound:.0}s)"
        ),
    );
}

pub(super) fn deaf_spec() -> StackSpec {
    StackSpec::default().worker("FAILPOINTS", "listener-deaf=return")
}

pub(super) fn verify_deaf(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let detections = facts
        .monitor
        .total("worker", "aplus_listener_deaf_total", "");
    let first = facts
        .service("worker-a")
        .and_then(|w| first_log_line(w.process.log_path(), "deaf"));
    evidence.put("deaf_detections", detections);
    check_proof(
        checks,
        "the heartbeat found the deaf listener",
        detections,
        format!("the worker replaced a deaf LISTEN connection {detections} times"),
        "The worker must be built with `--features failpoints` (failpoint listener-deaf).",
    );
    let bound = facts.settings.bound(DEAF_TARGET).as_secs_f64();
    if let Some(first) = first {
        // The worker starts within the first seconds; its first
        // detection is measured from the scenario's start, which can only
        // make it look later.
        checks.add(
            Kind::Timing,
            "deaf listener detected <= 10 s",
            first <= secs(facts.startup) + bound,
            format!(
                "first detection {first:.1}s into the run, services ready at {:.1}s (bound {bound:.0}s)",
                secs(facts.startup)
            ),
        );
    }
    let worst = max_latency(facts);
    let work_bound = facts.settings.bound(Duration::from_secs(5)).as_secs_f64();
    checks.add(
        Kind::Timing,
        "polling keeps work flowing",
        worst <= work_bound,
        format!(
            "with every notification dropped, the slowest event still took only {worst:.1}s (bound {work_bound:.0}s)"
        ),
    );
}

pub(super) fn half_open_spec() -> StackSpec {
    StackSpec {
        workers_through_proxy: true,
        ..StackSpec::default()
    }
}

/// A third of the way in, freezes every connection between the worker and
/// the database, for good.
pub(super) async fn half_open(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let wait = ctx.remaining() / 3;
    if !ctx.sleep(wait).await {
        return Ok(());
    }
    let Some(proxy) = &ctx.stack.proxy else {
        anyhow::bail!("the workers were not started behind the proxy");
    };
    let start = ctx.timeline.now();
    let frozen = proxy.freeze_existing();
    ctx.record(
        &format!("{frozen} connections made half-open"),
        "worker-a",
        start,
        frozen > 0,
    );
    let remaining = ctx.remaining();
    ctx.sleep(remaining).await;
    Ok(())
}

pub(super) fn verify_half_open(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let Some(fault) = facts.faults.first() else {
        check_proof(
            checks,
            "connections went half-open",
            0.0,
            "no fault happened",
            "",
        );
        return;
    };
    let at = secs(fault.start);
    let detected = facts
        .service("worker-a")
        .and_then(|w| first_log_line_after(w.process.log_path(), "deaf", at));
    let detections = facts
        .monitor
        .total("worker", "aplus_listener_deaf_total", "");
    // How long each event written around or after the fault waited, from
    // the later of its commit and the fault.
    let waits: Vec<f64> = facts
        .events
        .iter()
        .filter(|e| e.created_s >= at - 1.0)
        .map(|e| {
            e.processed_s
                .map_or(f64::INFINITY, |p| p - e.created_s.max(at))
        })
        .collect();
    let worst = waits.iter().copied().fold(0.0, f64::max);
    evidence.put("deaf_detections", detections);
    evidence.put(
        "detected_after_s",
        detected.map(|d| ((d - at) * 100.0).round() / 100.0),
    );
    evidence.put("events_after_fault", waits.len());
    check_proof(
        checks,
        "connections went half-open",
        if fault.landed { detections } else { 0.0 },
        format!(
            "{}; the heartbeat replaced a deaf LISTEN connection {detections} times",
            fault.what
        ),
        "",
    );
    let detect_bound = facts.settings.bound(HALF_OPEN_DETECT_TARGET).as_secs_f64();
    checks.add(
        Kind::Timing,
        "half-open detected <= 10 s",
        detected.is_some_and(|d| d - at <= detect_bound),
        match detected {
            Some(d) => format!(
                "the worker logged the dead connection {:.1}s after the fault (bound {detect_bound:.0}s)",
                d - at
            ),
            None => "the worker never logged a deaf or dead LISTEN connection".to_owned(),
        },
    );
    let recover_bound = facts.settings.bound(HALF_OPEN_RECOVER_TARGET).as_secs_f64();
    checks.add(
        Kind::Timing,
        "processing again <= 15 s",
        worst <= recover_bound,
        format!(
            "{} events were written after the fault; the longest wait from the fault or their \
             commit was {worst:.1}s (bound {recover_bound:.0}s)",
            waits.len()
        ),
    );
}

/// The time stamp (seconds into the run) of the first log line containing `needle`.
fn first_log_line(path: &std::path::Path, needle: &str) -> Option<f64> {
    first_log_line_after(path, needle, f64::MIN)
}

/// The time stamp of the first log line at or after `after` containing `needle`.
fn first_log_line_after(path: &std::path::Path, needle: &str, after: f64) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|line| {
            let stamp = line.strip_prefix('[')?.split(']').next()?;
            stamp.trim().parse::<f64>().ok()
        })
        .find(|t| *t >= after)
}

/// The `q` quantile of sorted values (nearest rank), 0 when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
