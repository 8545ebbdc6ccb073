//! B03/B04 under load: the gateway misbehaves every three seconds, in turn
//! a dropped connection, a reset, op 7 RECONNECT, op 9 INVALID_SESSION (not
//! resumable: what is posted until the new session exists reaches no one
//! and is only in history) and a resumable close. Serenity resumes or
//! identifies again; the bot must backfill every gap and store replays once.

use std::time::Duration;

use anyhow::Result;
use discord_sim::{GatewayFault, Target};

use super::{check_proof, check_recovery};
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::verdict::Checks;

/// Time between faults.
const EVERY: Duration = Duration::from_secs(3);

fn rotation() -> [(&'static str, GatewayFault); 5] {
    [
        ("connection dropped (FIN)", GatewayFault::Drop),
        ("connection reset (RST)", GatewayFault::Reset),
        ("op 7 RECONNECT", GatewayFault::Reconnect),
        (
            "op 9 INVALID_SESSION, not resumable",
            GatewayFault::InvalidSession { resumable: false },
        ),
        (
            "close 4000 (resumable)",
            GatewayFault::Close {
                code: 4000,
                reason: "chaos".into(),
            },
        ),
    ]
}

/// Injects the next fault of the rotation every [`EVERY`].
pub(super) async fn faults(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let faults = rotation();
    let mut n = 0;
    loop {
        if !ctx.sleep(EVERY).await || ctx.remaining() < Duration::from_secs(3) {
            return Ok(());
        }
        let (what, fault) = &faults[n % faults.len()];
        let start = ctx.timeline.now();
        let reached = ctx.stack.sim.inject(Target::All, fault.clone());
        ctx.record(what, "gateway", start, reached > 0);
        n += 1;
    }
}

pub(super) fn verify(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let stats = &facts.sim_stats;
    let landed = facts.faults.iter().filter(|f| f.landed).count();
    let duplicates = facts.monitor.total("bot", "aplus_bot_duplicates_total", "");
    evidence.put("faults_landed", landed);
    evidence.put("sim_identifies", stats.identifies);
    evidence.put("sim_resumes", stats.resumes);
    evidence.put("sim_replayed_frames", stats.replayed);
    evidence.put("bot_duplicates", duplicates);
    evidence.put("recovered_from_history", facts.state.recovered);
    check_proof(
        checks,
        "sessions were resumed and replaced",
        if stats.resumes > 0 && stats.identifies > 1 {
            landed as f64
        } else {
            0.0
        },
        format!(
            "{landed} faults reached the bot's session: {} resumes, {} identifies, {} frames replayed",
            stats.resumes, stats.identifies, stats.replayed
        ),
        "",
    );
    check_proof(
        checks,
        "redelivery happened",
        duplicates,
        format!(
            "the bot was handed {duplicates} messages it already had (replays, backfill overlap)"
        ),
        "",
    );
    check_recovery(
        facts,
        checks,
        "bot ready after each fault",
        Duration::from_secs(15),
    );
}
