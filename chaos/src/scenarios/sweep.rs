//! F16 and F17: losses nobody announces.
//!
//! F16 has the simulator drop 5% of MESSAGE_CREATE, MESSAGE_UPDATE and
//! MESSAGE_DELETE dispatches for the whole run, silently: the session stays
//! connected, heartbeats are acknowledged, nothing is closed or resumed, and
//! a backfill (which reads from the largest stored id) would not look below
//! the newest message. Only the bot's scheduled history sweep, here every
//! [`SWEEP_EVERY`], can bring the messages, edits and deletes back; it must
//! do so within about one interval of the load's end, storing nothing twice.
//!
//! F17 stops the database long enough to overflow the bot's small buffer
//! with creates, edits and deletes, kills the bot with SIGKILL while the
//! database is still down (its memory, buffer and in-memory gap ledger die
//! with it), and starts the database again after the supervisor restarted
//! the bot. The new process must read the ledger its predecessor wrote to
//! its local file and read back every dropped edit and delete: 0 lost, every
//! change applied.

use std::time::Duration;

use anyhow::Result;
use discord_sim::SilentLoss;
use nix::sys::signal::Signal;
use rand::Rng as _;

use super::{check_proof, check_recovery, database};
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// Share of message dispatches F16 drops.
pub(crate) const SILENT_LOSS_RATE: f64 = 0.05;
/// How often the bot sweeps in F16.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// The bot's outage buffer in F17: small, so it overflows within seconds.
const LEDGER_BUFFER: usize = 50;

pub(super) fn silent_loss_spec() -> StackSpec {
    sweeping(
        StackSpec::default(),
        &format!("*/{} * * * * *", SWEEP_EVERY.as_secs()),
        "30m",
    )
}

/// `spec` with the bot sweeping `window` of history on `schedule`.
pub(super) fn sweeping(spec: StackSpec, schedule: &str, window: &str) -> StackSpec {
    spec.bot("BOT_SWEEP_SCHEDULE", schedule)
        .bot("BOT_SWEEP_WINDOW", window)
        // The start-up backfill reads all of an empty database's history;
        // sweeping must not wait for it to age.
        .bot("BOT_SWEEP_SKIP_AFTER_BACKFILL", "0s")
}

/// Drops a share of message dispatches from the start of the load to its end.
pub(super) async fn silent_loss(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let start = ctx.timeline.now();
    let seed = ctx.rng.random::<u64>();
    ctx.stack.sim.set_silent_loss(Some(SilentLoss {
        rate: SILENT_LOSS_RATE,
        seed,
    }));
    let remaining = ctx.remaining();
    ctx.sleep(remaining).await;
    ctx.stack.sim.set_silent_loss(None);
    let dropped = ctx.stack.sim.stats().silently_dropped;
    ctx.record(
        &format!(
            "{:.0}% of message dispatches silently dropped",
            SILENT_LOSS_RATE * 100.0
        ),
        "gateway",
        start,
        dropped > 0,
    );
    Ok(())
}

pub(super) fn verify_silent_loss(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let dropped = facts.sim_stats.silently_dropped;
    let bot = |metric: &str, label: &str| facts.monitor.total("bot", metric, label);
    let missing = bot("aplus_bot_sweep_missing_total", "");
    let edits = bot("aplus_bot_sweep_edits_total", "");
    let deletes = bot("aplus_bot_sweep_deletes_total", "");
    let swept = bot("aplus_bot_sweeps_total", "swept");
    let stored = bot("aplus_bot_messages_stored_total", "sweep");
    evidence.put("dispatches_silently_dropped", dropped);
    evidence.put("channel_sweeps", swept);
    evidence.put("sweep_stored", stored);
    evidence.put("sweep_missing", missing);
    evidence.put("sweep_edits", edits);
    evidence.put("sweep_deletes", deletes);
    check_proof(
        checks,
        "dispatches were dropped silently and the sweep found them",
        if dropped > 0 { stored } else { 0.0 },
        format!(
            "{dropped} message dispatches never reached the healthy session; {swept} channel \
             sweeps stored {stored} messages ({missing} older than the settle time), applied \
             {edits} edits and {deletes} deletes"
        ),
        "",
    );
    // The last dispatch dropped is at the load's end; the next sweep (at
    // most one interval later) must have brought everything back.
    let bound = facts.settings.bound(SWEEP_EVERY * 2);
    let recovered = facts.drain;
    checks.add(
        Kind::Timing,
        "recovered within one sweep interval",
        recovered.is_some_and(|d| d <= bound),
        match recovered {
            Some(d) => format!(
                "everything stored {:.1}s after the load stopped (sweep every {}s; bound {:.0}s with the run's slack)",
                secs(d),
                SWEEP_EVERY.as_secs(),
                secs(bound)
            ),
            None => "the pipeline never caught up".to_owned(),
        },
    );
}

pub(super) fn ledger_spec() -> StackSpec {
    database::buffer_spec(LEDGER_BUFFER)
}

/// Stops the database from a quarter of the run for half of it (10 to 40 s),
/// kills the bot in the middle of the outage, then starts the database.
pub(super) async fn ledger_kill(ctx: &mut FaultCtx<'_>) -> Result<()> {
    database::stop_database(ctx, Duration::from_secs(40), |ctx| {
        let kill_at = ctx.timeline.now();
        let landed = ctx.stack.bot.process.signal(Signal::SIGKILL);
        ctx.record(
            "kill -9 of the bot while the database is down",
            "bot",
            kill_at,
            landed,
        );
    })
    .await
}

pub(super) fn verify_ledger(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let bot = |metric: &str| facts.monitor.total("bot", metric, "");
    let overflow = bot("aplus_bot_buffer_overflow_total");
    let loaded = bot("aplus_bot_gap_ledger_loaded_total");
    let read_back = bot("aplus_bot_refetched_total");
    let kills = facts
        .faults
        .iter()
        .filter(|f| f.target == "bot" && f.landed)
        .count();
    evidence.put("bot_buffer_overflow", overflow);
    evidence.put("bot_kills", kills);
    evidence.put("ledger_entries_loaded_after_restart", loaded);
    evidence.put("bot_read_back", read_back);
    check_proof(
        checks,
        "the bot was killed with a full buffer during the outage",
        if kills > 0 { overflow } else { 0.0 },
        format!("the buffer overflowed {overflow} times before {kills} kill -9"),
        "",
    );
    check_proof(
        checks,
        "the next process read the ledger back",
        loaded.min(read_back),
        format!(
            "the restarted bot loaded {loaded} ledger entries its predecessor wrote down and read back {read_back} messages whose edit or delete was dropped"
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "healthy after the outage",
        Duration::from_secs(30),
    );
}
