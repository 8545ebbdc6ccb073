//! F01 to F03: the bot dies.
//!
//! F01 arms the `notify-abort` failpoint, which aborts the bot after a
//! message's transaction committed and before its NOTIFY: the event exists
//! but nobody was told. The worker's poll (or the reconciler's re-fire) must
//! still process it. F02 arms `bot-before-commit`, which aborts the bot with
//! the message's transaction open: the write is lost, and the message must
//! come back by the gateway's replay or the backfill after the restart. F03 kills the bot with SIGKILL at random moments; the
//! supervisor restarts it, and the backfill after the new session must find
//! whatever was posted while it was down, recognising what it already had.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;
use rand::Rng as _;
use uuid::Uuid;

use super::{check_proof, check_recovery};
use crate::database::server_log;
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::supervisor::Ended;
use crate::timeline::secs;
use crate::verdict::Checks;

/// One NOTIFY in a hundred aborts the bot.
const NOTIFY_ABORT: &str = "notify-abort=1%return";
/// One write in a hundred aborts the bot before its commit.
const BEFORE_COMMIT_ABORT: &str = "bot-before-commit=1%return";

/// What to check when the failpoint never fired.
const FAILPOINT_HINT: &str = "The bot must be built with `--features failpoints` (here: the chaos \
     package's `failpoints` feature, as `cargo xtask chaos` does).";

pub(super) fn notify_abort_spec() -> StackSpec {
    StackSpec::default().bot("FAILPOINTS", NOTIFY_ABORT)
}

pub(super) fn before_commit_spec() -> StackSpec {
    StackSpec::default().bot("FAILPOINTS", BEFORE_COMMIT_ABORT)
}

/// The failpoint does the work; afterwards, each abort becomes a fault record
/// so its recovery is measured.
pub(super) async fn record_aborts(ctx: &mut FaultCtx<'_>, what: &str) -> Result<()> {
    let remaining = ctx.remaining();
    ctx.sleep(remaining).await;
    for exit in ctx.stack.bot.process.exits() {
        if exit.ended == Ended::ABORT {
            ctx.record_at(what, "bot", exit.at, exit.at, true, None);
        }
    }
    Ok(())
}

pub(super) fn verify_before_commit(
    facts: &Facts<'_>,
    checks: &mut Checks,
    evidence: &mut Evidence,
) {
    let aborts = facts.aborts("bot");
    let open = facts.server_log_count(server_log::EOF_IN_TRANSACTION);
    let duplicates = facts.monitor.total("bot", "aplus_bot_duplicates_total", "");
    evidence.put("bot_aborts", aborts);
    evidence.put("server_saw_death_in_transaction", open);
    evidence.put("bot_duplicates", duplicates);
    check_proof(
        checks,
        "the bot died with a write uncommitted",
        aborts.min(open) as f64,
        format!(
            "the bot-before-commit failpoint aborted the bot {aborts} times; the server saw a \
             client vanish with an open transaction {open} times and rolled those writes back"
        ),
        FAILPOINT_HINT,
    );
    check_recovery(
        facts,
        checks,
        "bot back after each abort",
        Duration::from_secs(15),
    );
}

pub(super) fn verify_notify_abort(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let aborts = facts.aborts("bot");
    evidence.put("bot_aborts", aborts);
    check_proof(
        checks,
        "the bot died between commit and NOTIFY",
        aborts as f64,
        format!("the notify-abort failpoint aborted the bot {aborts} times"),
        FAILPOINT_HINT,
    );
    // Events nobody announced: committed, then the bot died before NOTIFY.
    // The independent listener heard every other one (it was never cut off
    // in this scenario, which its gaps confirm).
    let announced: HashSet<&Uuid> = facts.heard.events.keys().collect();
    let silent: Vec<_> = facts
        .events
        .iter()
        .filter(|e| e.created_s >= secs(facts.load_started_at) && !announced.contains(&e.id))
        .collect();
    let silent_processed = silent.iter().filter(|e| e.processed_s.is_some()).count();
    let worst_wait = silent
        .iter()
        .filter_map(|e| e.processed_s.map(|p| p - e.created_s))
        .fold(0.0_f64, f64::max);
    evidence.put("events_never_notified", silent.len());
    evidence.put("listener_gaps", facts.heard.gaps.len());
    evidence.put("never_notified_longest_wait_s", round(worst_wait));
    check_proof(
        checks,
        "events without a NOTIFY were processed",
        if silent_processed == silent.len() {
            silent.len() as f64
        } else {
            0.0
        },
        format!(
            "{} events were never announced (their NOTIFY died with the bot); {} of them were processed anyway, the slowest after {:.1}s",
            silent.len(),
            silent_processed,
            worst_wait
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "bot back after each abort",
        Duration::from_secs(15),
    );
}

/// Kills the bot at random moments, 2 to 6 seconds apart, while the load runs.
pub(super) async fn kill(ctx: &mut FaultCtx<'_>) -> Result<()> {
    // The first kill comes early, so even a short run has one.
    let mut wait = ctx.remaining() / 4;
    loop {
        if !ctx.sleep(wait).await || ctx.remaining() < Duration::from_secs(3) {
            return Ok(());
        }
        let start = ctx.timeline.now();
        let landed = ctx.stack.bot.process.signal(Signal::SIGKILL);
        ctx.record("kill -9", "bot", start, landed);
        wait = Duration::from_millis(ctx.rng.random_range(2_000..6_000));
    }
}

pub(super) fn verify_kill(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let kills = facts.faults.iter().filter(|f| f.landed).count();
    let duplicates = facts.monitor.total("bot", "aplus_bot_duplicates_total", "");
    let backfilled = facts
        .monitor
        .total("bot", "aplus_bot_messages_stored_total", "backfill");
    evidence.put("bot_kills", kills);
    evidence.put("bot_duplicates", duplicates);
    evidence.put("bot_stored_by_backfill", backfilled);
    // Edits and deletes made while the bot was down, found in history.
    evidence.put(
        "bot_history_changes",
        facts
            .monitor
            .total("bot", "aplus_bot_history_changes_total", ""),
    );
    check_proof(
        checks,
        "the bot was killed",
        kills as f64,
        format!("{kills} kills landed"),
        "",
    );
    check_proof(
        checks,
        "redelivery happened",
        duplicates,
        format!(
            "after restarts the bot was handed {duplicates} messages it already had (duplicate counter), and stored {backfilled} from history"
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "bot back after each kill",
        Duration::from_secs(15),
    );
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
