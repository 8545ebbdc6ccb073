//! F15: the wall clock jumps on the bot's and the reconciler's host.
//!
//! libfaketime, preloaded into both services, shifts the wall clock they
//! read by what a file says, and the scenario rewrites the file: forty days
//! ahead for a third of the run, then two hours back for the rest (the
//! drain included). Monotonic time is left alone, as with a clock stepped
//! by NTP, so timers keep working.
//!
//! Everything that decides what to repair reads the database's clock, so
//! none of it may notice: nothing pruned although forty days is past the
//! thirty-day retention, no storm of re-fired orphans, no event announced
//! twice, and the schedule keeps its pace both ways (a cron loop that waited
//! for the wall clock would stall for two hours once it goes back).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

use super::check_proof;
use crate::facts::{Evidence, Facts};
use crate::script::FaultCtx;
use crate::stack::StackSpec;
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// A pass every two seconds, so each phase holds several.
const SCHEDULE: &str = "*/2 * * * * *";
const PERIOD_S: f64 = 2.0;
/// Ahead: past the thirty-day retention, so a host-clock horizon would prune.
const AHEAD: &str = "+40d";
const AHEAD_S: f64 = 40.0 * 86_400.0;
/// Back: long enough that a schedule waiting for wall time would stall.
const BACK: &str = "-2h";
const BACK_S: f64 = -2.0 * 3_600.0;
/// Two announcements of one event closer than this are one pass acting twice.
const TWICE_WINDOW: Duration = Duration::from_millis(500);
/// Where Debian and others put the library.
const LIBRARY_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
];

/// The preloadable libfaketime, if installed.
pub fn faketime_library() -> Option<PathBuf> {
    LIBRARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join("libfaketime.so.1"))
        .find(|path| path.is_file())
}

/// The file the services' clocks follow (one per runner process).
fn clock_file() -> PathBuf {
    std::env::temp_dir().join(format!("aplus-chaos-clock-{}", std::process::id()))
}

/// What a process needs in its environment to follow [`clock_file`].
fn faked_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "LD_PRELOAD",
            // Missing, the loader warns and the clock stays true: the
            // scenario's proof then fails and says what to install.
            faketime_library()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "libfaketime.so.1".to_owned()),
        ),
        (
            "FAKETIME_TIMESTAMP_FILE",
            clock_file().display().to_string(),
        ),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ("FAKETIME_CACHE_DURATION", "1".to_owned()),
    ]
}

pub(super) fn spec() -> StackSpec {
    // The true time until the jumps; a failure here shows as a failed proof.
    let _ = std::fs::write(clock_file(), "+0\n");
    let mut spec = StackSpec::default()
        .reconciler("RECONCILER_SCHEDULE", SCHEDULE)
        .reconciler("RECONCILER_ORPHAN_GRACE", "3s");
    for (key, value) in faked_env() {
        spec = spec.bot(key, value.clone()).reconciler(key, value);
    }
    spec
}

/// Sets the offset and returns what a fresh process with the services'
/// settings reads as its clock's offset from the true time, in seconds.
fn jump(offset: &str) -> Result<f64> {
    std::fs::write(clock_file(), format!("{offset}\n")).context("writing the clock file")?;
    let mut probe = std::process::Command::new("date");
    probe.arg("+%s");
    for (key, value) in faked_env() {
        probe.env(key, value);
    }
    let output = probe.output().context("running date under libfaketime")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let seen: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(now);
    Ok(seen - now)
}

/// Forty days ahead for a third of the run, then two hours back.
pub(super) async fn jumps(ctx: &mut FaultCtx<'_>) -> Result<()> {
    let phase = ctx.remaining() / 3;
    if !ctx.sleep(phase).await {
        return Ok(());
    }
    let start = ctx.timeline.now();
    let seen = jump(AHEAD)?;
    ctx.sleep(phase).await;
    ctx.record(
        &format!(
            "clock 40 days ahead (a process read {:+.2} days)",
            seen / 86_400.0
        ),
        "bot, reconciler",
        start,
        (seen - AHEAD_S).abs() < 3_600.0,
    );
    let start = ctx.timeline.now();
    let seen = jump(BACK)?;
    ctx.sleep(ctx.remaining()).await;
    ctx.record(
        &format!(
            "clock 2 hours back (a process read {:+.2} hours)",
            seen / 3_600.0
        ),
        "bot, reconciler",
        start,
        (seen - BACK_S).abs() < 600.0,
    );
    Ok(())
}

pub(super) fn verify(facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
    let landed = facts.faults.iter().filter(|f| f.landed).count();
    evidence.put("clock_jumps_landed", landed);
    check_proof(
        checks,
        "the services' clocks jumped",
        if landed == facts.faults.len() {
            landed as f64
        } else {
            0.0
        },
        format!(
            "{landed} of {} jumps read back by a process started like the services ({})",
            facts.faults.len(),
            facts
                .faults
                .iter()
                .map(|f| f.what.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        "It needs libfaketime (Debian: apt-get install faketime; `cargo xtask chaos` installs it when it may).",
    );

    // The schedule's pace in each phase, by the passes' own (database) times.
    let mut paces = Vec::new();
    let mut steady = true;
    for fault in &facts.faults {
        let (from, to) = (secs(fault.start), secs(fault.end));
        let passes = facts
            .passes_s
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count();
        let expected = (to - from) / PERIOD_S;
        steady &= passes >= 1
            && (passes as f64) >= expected / 2.0
            && (passes as f64) <= expected * 1.5 + 2.0;
        paces.push(format!("{passes} passes in {:.0}s", to - from));
        evidence.put(&format!("passes_{}", paces.len()), passes);
    }
    checks.add(
        Kind::Liveness,
        "the schedule kept its pace",
        steady && !paces.is_empty(),
        format!(
            "every {PERIOD_S:.0} s by the database clock: {} (ahead, then back)",
            paces.join(", ")
        ),
    );

    let pruned = facts
        .monitor
        .total("reconciler", "aplus_reconciler_pruned_events_total", "")
        + facts
            .monitor
            .total("reconciler", "aplus_reconciler_pruned_inbox_total", "");
    evidence.put("pruned", pruned);
    checks.add(
        Kind::Safety,
        "nothing pruned",
        pruned == 0.0,
        format!(
            "{pruned} events and inbox rows pruned (the retention counts on the database clock)"
        ),
    );

    let refired = facts
        .monitor
        .total("reconciler", "aplus_reconciler_orphans_refired_total", "");
    let events = facts.events.len() as f64;
    let storm_bound = (events / 50.0).max(10.0);
    evidence.put("orphans_refired", refired);
    checks.add(
        Kind::Safety,
        "no storm of re-fires",
        refired <= storm_bound,
        format!("{refired} orphans re-fired for {events} events (bound {storm_bound:.0})"),
    );
    let twice = facts.heard.announced_twice_within(TWICE_WINDOW);
    checks.add(
        Kind::Safety,
        "no double re-fire",
        twice.is_empty(),
        format!(
            "{} events announced twice within {} ms",
            twice.len(),
            TWICE_WINDOW.as_millis()
        ),
    );
}
