//! F04 and F05: a worker dies, or stalls, with a batch in flight.
//!
//! F04 runs two workers and kills one with SIGKILL while it is inside a
//! batch transaction (caught in `pg_stat_activity`), and arms
//! `worker-after-effect` and `worker-before-commit`, which abort a worker
//! after an event's effects were written but before they committed. The server must roll the batch
//! back and the events must be processed again, once.
//!
//! F05 pauses a worker (SIGSTOP) inside a batch for longer than its lease.
//! The server ends the stalled session (`idle_in_transaction_session_timeout`),
//! which frees the batch's rows; the other worker takes them. When the
//! paused worker resumes, its late commit must fail: no effect twice.

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;
use rand::Rng as _;

use super::{check_proof, check_recovery, max_latency};
use crate::database::server_log;
use crate::facts::{Evidence, Facts};
use crate::faults::{same_transaction_open, signal_in_transaction};
use crate::script::FaultCtx;
use crate::stack::{StackSpec, defaults};
use crate::verdict::{Checks, Kind};

/// One event in a hundred aborts its worker after its effects, and one
/// batch in a hundred just before its commit.
const ABORTS: &str = "worker-after-effect=1%return;worker-before-commit=1%return";

/// Slack on top of the lease for the next worker to pick the events up.
const LEASE_SLACK: Duration = Duration::from_secs(5);

fn lease() -> Duration {
    Duration::from_secs(defaults::WORKER_LEASE_SECS)
}

pub(super) fn kill_spec() -> StackSpec {
    let mut spec = StackSpec::default().worker("FAILPOINTS", ABORTS);
    spec.workers = 2;
    spec
}

/// Every 2 to 5 seconds, kills a random worker the moment it is seen inside
/// a batch transaction.
pub(super) async fn kill(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let mut wait = Duration::from_secs(2);
    loop {
        if !ctx.sleep(wait).await || ctx.remaining() < Duration::from_secs(3) {
            return Ok(());
        }
        let index = ctx.rng.random_range(0..ctx.stack.workers.len());
        let worker = &ctx.stack.workers[index];
        let start = ctx.timeline.now();
        let caught = signal_in_transaction(
            &ctx.stack.db,
            worker,
            Signal::SIGKILL,
            Duration::from_secs(3),
        )
        .await?;
        match caught {
            Some(_) => ctx.record("kill -9 inside a batch", &worker.name, start, true),
            None => {
                // No batch seen in time: kill anyway, it still tests a restart.
                worker.process.signal(Signal::SIGKILL);
                ctx.record("kill -9 between batches", &worker.name, start, false);
            }
        }
        wait = Duration::from_millis(ctx.rng.random_range(2_000..5_000));
    }
}

pub(super) fn verify_kill(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let in_batch = facts.faults.iter().filter(|f| f.landed).count();
    let aborts = facts.aborts("worker");
    let died_in_transaction = facts.server_log_count(server_log::EOF_IN_TRANSACTION);
    evidence.put("kills_inside_a_batch", in_batch);
    evidence.put("kills", facts.faults.len());
    evidence.put("failpoint_aborts", aborts);
    evidence.put("server_saw_death_in_transaction", died_in_transaction);
    check_proof(
        checks,
        "a worker died with a batch in flight",
        died_in_transaction as f64,
        format!(
            "the server saw a client vanish with an open transaction {died_in_transaction} times \
             ({in_batch} kills caught inside a batch, {aborts} failpoint aborts after the effects); \
             those batches rolled back and were processed again"
        ),
        "",
    );
    lease_bound_check(facts, checks);
    check_recovery(
        facts,
        checks,
        "workers back after each kill",
        Duration::from_secs(15),
    );
}

pub(super) fn pause_spec() -> StackSpec {
    StackSpec {
        workers: 2,
        ..StackSpec::default()
    }
}

/// Pauses worker a inside a batch, holds it past the lease, resumes it;
/// as often as the run allows.
pub(super) async fn pause(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let hold = lease() + Duration::from_secs(3);
    loop {
        let wait = Duration::from_millis(ctx.rng.random_range(1_000..3_000));
        if !ctx.sleep(wait).await || ctx.remaining() < hold + Duration::from_secs(3) {
            return Ok(());
        }
        let worker = &ctx.stack.workers[0];
        let start = ctx.timeline.now();
        let Some(open) = signal_in_transaction(
            &ctx.stack.db,
            worker,
            Signal::SIGSTOP,
            Duration::from_secs(5),
        )
        .await?
        else {
            continue;
        };
        // The check and the signal are a moment apart: confirm the stopped
        // process left its transaction open.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let landed = same_transaction_open(&ctx.stack.db, open).await?;
        if landed {
            ctx.sleep(hold).await;
        }
        worker.process.signal(Signal::SIGCONT);
        let resumed = ctx.timeline.now();
        ctx.record_at(
            if landed {
                "SIGSTOP inside a batch, past the lease"
            } else {
                "SIGSTOP between batches (released at once)"
            },
            &worker.name,
            start,
            resumed,
            landed,
            None,
        );
        // The next pause starts from a recovered worker, so each pause's
        // recovery is measured on its own.
        ctx.wait_ready(Duration::from_secs(30)).await;
    }
}

pub(super) fn verify_pause(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let landed = facts.faults.iter().filter(|f| f.landed).count();
    let expired = facts.server_log_count(server_log::IDLE_IN_TRANSACTION_TIMEOUT);
    evidence.put("pauses_inside_a_batch", landed);
    evidence.put("leases_expired", expired);
    for (worker, processed) in &facts.state.processed_by_worker {
        evidence.put(&format!("processed_by_{worker}"), *processed);
    }
    check_proof(
        checks,
        "a lease expired on a paused worker",
        if landed > 0 { expired as f64 } else { 0.0 },
        format!(
            "{landed} pauses caught a batch in flight; the server ended {expired} stalled sessions \
             (idle-in-transaction timeout), freeing their events for the other worker"
        ),
        "",
    );
    lease_bound_check(facts, checks);
    check_recovery(
        facts,
        checks,
        "worker back after each pause",
        Duration::from_secs(15),
    );
}

/// Every event was processed within the lease plus slack of being written:
/// a dead or stalled worker holds its batch no longer than the lease.
fn lease_bound_check(facts: &Facts<'_>, checks: &mut Checks) {
    let bound = facts.settings.bound(lease() + LEASE_SLACK);
    let worst = max_latency(facts);
    checks.add(
        Kind::Timing,
        "events done within lease + 5 s",
        worst <= bound.as_secs_f64(),
        format!(
            "the slowest event took {worst:.1}s from commit to processed (bound {:.0}s: lease {}s + 5s)",
            bound.as_secs_f64(),
            lease().as_secs()
        ),
    );
}
