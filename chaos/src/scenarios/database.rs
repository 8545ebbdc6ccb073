//! F10 to F13: PostgreSQL goes away, or has no room.
//!
//! F10 restarts the server (`-m fast`) twice under load, F11 crashes it
//! (`-m immediate`, recovered from the WAL at the next start). Both must
//! lose no committed row (the sampler's counts never go down) and be healthy
//! again within 10 s. F12 stops the server for half the run: the bot holds
//! what it can in its bounded buffer, drops the rest from memory, and the
//! backfill after the outage reads it back from Discord. No service may
//! crash-loop meanwhile, and none may flood its log. F13 leaves the server
//! up but takes every connection slot, ending the services' sessions so
//! they must get new ones: they back off, and are healthy within 10 s once
//! slots are free again.

use std::time::Duration;

use anyhow::Result;
use testkit::cluster::StopMode;

use super::{check_proof, check_recovery};
use crate::facts::{Evidence, Facts};
use crate::faults::SlotHog;
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// RELIABILITY F10/F11: every service healthy within 10 s of the restart.
const HEALTHY_TARGET: Duration = Duration::from_secs(10);
/// The bot's outage buffer in F12: small, so it overflows and the backfill
/// must recover what memory dropped.
const OUTAGE_BUFFER: usize = 100;
/// RELIABILITY F12: under one log line a second while the database is down.
const LOG_LINES_PER_SECOND: f64 = 1.0;
/// F13 counts as landed when the services held no session at this share of
/// the checks (ending a session and taking its slot back is not instant).
const LOCKED_OUT_SHARE: f64 = 0.8;
/// The first seconds of an outage, when every service reports it once.
const OUTAGE_ONSET: Duration = Duration::from_secs(3);

/// Restarts (or crashes and starts) the server at a third and at two thirds of the run.
pub(super) async fn restart(ctx: &mut FaultCtx<'_>, mode: StopMode) -> Result<()> {
    let third = ctx.remaining() / 3;
    for _ in 0..2 {
        if !ctx.sleep(third).await {
            return Ok(());
        }
        let start = ctx.timeline.now();
        ctx.stack.db.stop(mode).await?;
        ctx.stack.db.start_again().await?;
        ctx.record(
            match mode {
                StopMode::Fast => "pg_ctl restart -m fast",
                StopMode::Immediate => "pg_ctl stop -m immediate, then start (crash recovery)",
            },
            "postgresql",
            start,
            true,
        );
    }
    Ok(())
}

pub(super) fn verify_restart(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let during = posted_during_faults(facts);
    let outage: f64 = facts.faults.iter().map(|f| secs(f.end - f.start)).sum();
    evidence.put("restarts", facts.faults.len());
    evidence.put("server_down_s", (outage * 10.0).round() / 10.0);
    evidence.put("posted_while_down", during);
    evidence.put("samples_failed", facts.samples.failed);
    check_proof(
        checks,
        "messages arrived while the server was down",
        during as f64,
        format!(
            "{during} messages were posted during {} restarts ({outage:.1}s down in all); none may be lost",
            facts.faults.len()
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "healthy <= 10 s after each restart",
        HEALTHY_TARGET,
    );
}

pub(super) fn outage_spec() -> StackSpec {
    buffer_spec(OUTAGE_BUFFER)
}

/// A stack whose bot holds at most `capacity` writes while the database is
/// down, so an outage overflows it.
pub(super) fn buffer_spec(capacity: usize) -> StackSpec {
    StackSpec::default().bot("BOT_BUFFER", capacity.to_string())
}

/// Stops the server for half the run (10 to 60 s), from a quarter in.
pub(super) async fn outage(ctx: &mut FaultCtx<'_>) -> Result<()> {
    stop_database(ctx, Duration::from_secs(60), |_| {}).await
}

/// Stops the server from a quarter of the run for half of it (at least
/// 10 s, at most `longest`), does `midway` halfway through the outage, then
/// starts the server again.
pub(super) async fn stop_database(
    ctx: &mut FaultCtx<'_>,
    longest: Duration,
    midway: impl FnOnce(&mut FaultCtx<'_>),
) -> Result<()> {
    let total = ctx.remaining();
    let length = (total / 2).clamp(Duration::from_secs(10), longest);
    if !ctx.sleep(total / 4).await {
        return Ok(());
    }
    let start = ctx.timeline.now();
    ctx.stack.db.stop(StopMode::Fast).await?;
    // The outage is the scenario itself; it must end even if the run is
    // being cancelled, so these sleeps ignore cancellation.
    tokio::time::sleep(length / 2).await;
    midway(ctx);
    tokio::time::sleep(length - length / 2).await;
    ctx.stack.db.start_again().await?;
    ctx.record("database stopped", "postgresql", start, true);
    Ok(())
}

pub(super) fn verify_outage(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let Some(outage) = facts.faults.first() else {
        check_proof(
            checks,
            "the database was down",
            0.0,
            "no outage happened",
            "",
        );
        return;
    };
    let during = posted_during_faults(facts);
    let overflow = facts
        .monitor
        .total("bot", "aplus_bot_buffer_overflow_total", "");
    let depth = facts
        .monitor
        .gauge_max("bot", "aplus_bot_buffer_depth", "")
        .unwrap_or(0.0);
    let backfilled = facts
        .monitor
        .total("bot", "aplus_bot_messages_stored_total", "backfill");
    evidence.put(
        "outage_s",
        (secs(outage.end - outage.start) * 10.0).round() / 10.0,
    );
    evidence.put("posted_while_down", during);
    evidence.put("bot_buffer_max_depth", depth);
    evidence.put("bot_buffer_overflow", overflow);
    evidence.put("bot_stored_by_backfill", backfilled);
    // Edits and deletes dropped with the overflow are read back one by one.
    evidence.put(
        "bot_read_back",
        facts.monitor.total("bot", "aplus_bot_refetched_total", ""),
    );
    check_proof(
        checks,
        "the buffer overflowed and backfill recovered it",
        if during > 0 {
            overflow.min(backfilled)
        } else {
            0.0
        },
        format!(
            "{during} messages were posted while the database was down; the bot's buffer \
             overflowed {overflow} times and the backfill stored {backfilled} messages from history"
        ),
        "",
    );
    checks.add(
        Kind::Safety,
        "bounded buffer",
        depth <= OUTAGE_BUFFER as f64,
        format!("the buffer held at most {depth} writes (capacity {OUTAGE_BUFFER})"),
    );
    let bot_rss = facts
        .monitor
        .services
        .get("bot")
        .map(|s| {
            s.rss_kib
                .iter()
                .filter(|(t, _)| *t >= outage.start && *t <= outage.end)
                .map(|(_, kib)| *kib)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    evidence.put("bot_max_rss_during_outage_mib", bot_rss / 1024);

    // No crash loop: nobody restarted while the database was away.
    let restarts: Vec<String> = facts
        .services
        .iter()
        .filter_map(|s| {
            let n = s
                .process
                .exits()
                .iter()
                .filter(|e| e.at >= outage.start && e.at <= outage.end + Duration::from_secs(5))
                .count();
            (n > 0).then(|| format!("{} {n}", s.name))
        })
        .collect();
    checks.add(
        Kind::Liveness,
        "no crash loop",
        restarts.is_empty(),
        if restarts.is_empty() {
            "no service restarted during the outage".to_owned()
        } else {
            format!("restarts during the outage: {}", restarts.join(", "))
        },
    );

    // Log volume while down, after the first seconds in which each service
    // says once that the database is gone.
    let quiet_from = (outage.start + OUTAGE_ONSET).min(outage.end);
    let mut loud = Vec::new();
    for service in &facts.services {
        let (max, mean) = service.process.log_rate(quiet_from, outage.end);
        let (onset_max, _) = service.process.log_rate(outage.start, outage.end);
        evidence.put(&format!("{}_log_lines_per_s_max", service.name), onset_max);
        evidence.put(
            &format!("{}_log_lines_per_s_mean", service.name),
            (mean * 100.0).round() / 100.0,
        );
        if mean >= LOG_LINES_PER_SECOND {
            loud.push(format!("{} {mean:.2}/s (max {max}/s)", service.name));
        }
    }
    checks.add(
        Kind::Liveness,
        "quiet log while down (< 1 line/s)",
        loud.is_empty(),
        if loud.is_empty() {
            "every service logged under one line a second during the outage".to_owned()
        } else {
            format!("too loud: {}", loud.join(", "))
        },
    );
    check_recovery(
        facts,
        checks,
        "healthy <= 10 s after the outage",
        HEALTHY_TARGET,
    );
}

/// Messages posted while a fault was in effect.
fn posted_during_faults(facts: &Facts<'_>) -> usize {
    facts
        .faults
        .iter()
        .map(|f| facts.load.posted_between(f.start, f.end))
        .sum()
}

/// Takes every connection slot for a quarter of the run (5 to 20 s), from a
/// third in.
///
/// The suite connects as a superuser and the services do not, so the
/// server's reserved slots (`superuser_reserved_connections`) are the
/// suite's: once it has taken every other slot, a service can only get in
/// if more slots free up than are reserved. The services' sessions are then
/// ended, and the hog takes their slots as their backends exit.
pub(super) async fn exhaust(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let hold = (ctx.remaining() / 4).clamp(Duration::from_secs(5), Duration::from_secs(20));
    let wait = ctx.remaining() / 3;
    if !ctx.sleep(wait).await {
        return Ok(());
    }
    let start = ctx.timeline.now();
    let mut hog = SlotHog::default();
    hog.fill(&ctx.stack.db).await;
    let mut ended = 0;
    let (mut checks, mut locked_out) = (0_u32, 0_u32);
    let deadline = ctx.timeline.now() + hold;
    // The slots are the fault; they are given back even if the run is cancelled.
    while ctx.timeline.now() < deadline && !hog.is_empty() {
        let sessions = hog.service_sessions().await?;
        checks += 1;
        if sessions == 0 {
            locked_out += 1;
        } else {
            ended += hog.end_service_sessions().await?;
            // Take the slots back as the ended backends exit.
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                hog.fill(&ctx.stack.db).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let slots = hog.len();
    drop(hog);
    let share = f64::from(locked_out) / f64::from(checks.max(1));
    ctx.record_at(
        &format!(
            "{slots} connection slots taken and {ended} service sessions ended; \
             the services held no session at {:.0}% of {checks} checks",
            share * 100.0
        ),
        "postgresql",
        start,
        ctx.timeline.now(),
        slots > 0 && share >= LOCKED_OUT_SHARE,
        None,
    );
    Ok(())
}

pub(super) fn verify_exhaust(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let during = posted_during_faults(facts);
    let refused = facts.server_log_count("too many clients already")
        + facts.server_log_count("connection slots are reserved");
    evidence.put("posted_while_exhausted", during);
    evidence.put("connections_refused", refused);
    check_proof(
        checks,
        "the services were locked out",
        if facts.faults.iter().any(|f| f.landed) {
            during as f64
        } else {
            0.0
        },
        format!(
            "{}; {during} messages were posted meanwhile and the server refused {refused} connections",
            facts
                .faults
                .first()
                .map_or("no fault happened", |f| f.what.as_str())
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "healthy <= 10 s after slots are free",
        HEALTHY_TARGET,
    );
}
