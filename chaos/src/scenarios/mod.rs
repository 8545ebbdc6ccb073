//! The scenarios: one per fault of the reliability table (and the gateway
//! faults of the bad-input table), each with the stack it needs, the faults
//! it injects, and what it must prove on top of the common invariants.
//!
//! Each scenario proves that its fault really forced the recovery path it
//! is about (a redelivery, a lease expiry, a backfill): a fault that never
//! landed fails the scenario, because then it proved nothing.

mod bot;
mod clock;
mod database;
mod gateway;
mod listener;
mod reconciler;
pub mod soak;
mod sweep;
mod worker;

use std::time::Duration;

use anyhow::Result;

pub use clock::faketime_library;

use crate::facts::{Evidence, Facts, RecoveryTime, recovery_times};
use crate::script::FaultCtx;
use crate::settings::Settings;
use crate::stack::{Service, StackSpec};
use crate::supervisor::{Ended, Exit};
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// A scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// F01: the bot dies between commit and NOTIFY.
    NotifyAbort,
    /// F02: the bot dies with a write's transaction open.
    BeforeCommitAbort,
    /// F03: random kill -9 of the bot under load.
    KillBot,
    /// F04: kill -9 of a worker inside a batch, and aborts after the effect.
    KillWorker,
    /// F05: a worker paused past its lease while another runs.
    PauseWorker,
    /// F06: the LISTEN session terminated every few seconds.
    KillListener,
    /// F07: the server's idle-session timeout ends the LISTEN session.
    IdleSessionTimeout,
    /// F08: every connection between the worker and PostgreSQL goes half-open.
    HalfOpen,
    /// F09: a listener that is connected but hears nothing.
    DeafListener,
    /// F10: PostgreSQL restarted (`-m fast`) under load.
    PgRestart,
    /// F11: PostgreSQL crashed (`-m immediate`) under load.
    PgCrash,
    /// F12: the database stopped for tens of seconds.
    DbOutage,
    /// F13: another client takes every connection slot.
    ConnectionExhaustion,
    /// F14: two reconcilers at once.
    TwoReconcilers,
    /// F15: the wall clock of the bot and the reconciler jumps.
    ClockJumps,
    /// F16: 5% of message dispatches silently dropped on a healthy session.
    SilentLoss,
    /// F17: the bot killed during a database outage that overflowed its buffer.
    LedgerKill,
    /// B03/B04: gateway drops, resets, reconnects and invalid sessions.
    GatewayFaults,
    /// The soak: a long run with random faults of the other scenarios (not
    /// in [`Scenario::ALL`]; `--soak` runs it).
    Soak,
}

impl Scenario {
    /// Every scenario, in the order a full run takes them.
    pub const ALL: [Scenario; 18] = [
        Scenario::NotifyAbort,
        Scenario::BeforeCommitAbort,
        Scenario::KillBot,
        Scenario::KillWorker,
        Scenario::PauseWorker,
        Scenario::KillListener,
        Scenario::IdleSessionTimeout,
        Scenario::HalfOpen,
        Scenario::DeafListener,
        Scenario::PgRestart,
        Scenario::PgCrash,
        Scenario::DbOutage,
        Scenario::ConnectionExhaustion,
        Scenario::TwoReconcilers,
        Scenario::ClockJumps,
        Scenario::SilentLoss,
        Scenario::LedgerKill,
        Scenario::GatewayFaults,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::NotifyAbort => "f01-notify-abort",
            Scenario::BeforeCommitAbort => "f02-bot-before-commit",
            Scenario::KillBot => "f03-kill-bot",
            Scenario::KillWorker => "f04-kill-worker",
            Scenario::PauseWorker => "f05-pause-worker",
            Scenario::KillListener => "f06-kill-listener",
            Scenario::IdleSessionTimeout => "f07-idle-session-timeout",
            Scenario::HalfOpen => "f08-half-open",
            Scenario::DeafListener => "f09-deaf-listener",
            Scenario::PgRestart => "f10-pg-restart",
            Scenario::PgCrash => "f11-pg-crash",
            Scenario::DbOutage => "f12-db-outage",
            Scenario::ConnectionExhaustion => "f13-connection-exhaustion",
            Scenario::TwoReconcilers => "f14-two-reconcilers",
            Scenario::ClockJumps => "f15-clock-jumps",
            Scenario::SilentLoss => "f16-silent-loss",
            Scenario::LedgerKill => "f17-ledger-kill-during-outage",
            Scenario::GatewayFaults => "g01-gateway-faults",
            Scenario::Soak => "soak",
        }
    }

    /// The scenario with this name (or its fault number, like `f03`).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name || s.name().split('-').next() == Some(name.as_str()))
    }

    /// What the fault is, in a line.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::NotifyAbort => {
                "bot aborts between commit and NOTIFY (failpoint notify-abort)"
            }
            Scenario::BeforeCommitAbort => {
                "bot aborts with a write uncommitted (failpoint bot-before-commit)"
            }
            Scenario::KillBot => "random kill -9 of the bot under load",
            Scenario::KillWorker => {
                "kill -9 of a worker inside a batch, plus aborts after the effect (failpoint)"
            }
            Scenario::PauseWorker => "SIGSTOP a worker inside a batch past its lease, then SIGCONT",
            Scenario::KillListener => "pg_terminate_backend on the LISTEN session every 5 s",
            Scenario::IdleSessionTimeout => {
                "idle_session_timeout on the services' role ends the LISTEN session, polling off"
            }
            Scenario::HalfOpen => {
                "the worker's database connections go half-open (a proxy stops forwarding)"
            }
            Scenario::DeafListener => "LISTEN connected but deaf (failpoint listener-deaf)",
            Scenario::PgRestart => "PostgreSQL restart -m fast under load, twice",
            Scenario::PgCrash => "PostgreSQL crash (stop -m immediate) under load, twice",
            Scenario::DbOutage => "database stopped for half the run: buffer, then backfill",
            Scenario::ConnectionExhaustion => {
                "every connection slot taken; the services' sessions ended"
            }
            Scenario::TwoReconcilers => "two reconcilers at once over orphaned events",
            Scenario::ClockJumps => {
                "the bot's and reconciler's clocks jump 40 days ahead, then 2 hours back (libfaketime)"
            }
            Scenario::SilentLoss => {
                "5% of MESSAGE_CREATE/UPDATE/DELETE dispatches silently dropped on a healthy session; the history sweep brings them back"
            }
            Scenario::LedgerKill => {
                "database outage overflowing the bot's buffer, kill -9 of the bot while it is down; the gap ledger survives"
            }
            Scenario::GatewayFaults => "gateway drop, reset, op 7, op 9 and close every 3 s",
            Scenario::Soak => {
                "a long run at a high rate with random faults of every scenario that can share one stack"
            }
        }
    }

    /// Whether the scenario needs binaries built with the `failpoints` feature.
    pub fn needs_failpoints(self) -> bool {
        matches!(
            self,
            Scenario::NotifyAbort | Scenario::BeforeCommitAbort | Scenario::DeafListener
        )
    }

    /// Mixed into the run's seed, so scenarios draw different timings.
    pub(crate) fn seed_salt(self) -> u64 {
        self.name().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The services it needs.
    pub(crate) fn spec(self, settings: &Settings) -> StackSpec {
        match self {
            Scenario::NotifyAbort => bot::notify_abort_spec(),
            Scenario::BeforeCommitAbort => bot::before_commit_spec(),
            Scenario::KillBot => StackSpec::default(),
            Scenario::KillWorker => worker::kill_spec(),
            Scenario::PauseWorker => worker::pause_spec(),
            Scenario::KillListener => listener::kill_spec(),
            Scenario::IdleSessionTimeout => listener::idle_timeout_spec(),
            Scenario::HalfOpen => listener::half_open_spec(),
            Scenario::DeafListener => listener::deaf_spec(),
            Scenario::PgRestart | Scenario::PgCrash => StackSpec::default(),
            Scenario::DbOutage => database::outage_spec(),
            Scenario::ConnectionExhaustion => StackSpec::default(),
            Scenario::TwoReconcilers => reconciler::spec(settings),
            Scenario::ClockJumps => clock::spec(),
            Scenario::SilentLoss => sweep::silent_loss_spec(),
            Scenario::LedgerKill => sweep::ledger_spec(),
            Scenario::GatewayFaults => StackSpec::default(),
            Scenario::Soak => soak::spec(),
        }
    }

    /// Injects the faults while the load runs.
    pub(crate) async fn inject(self, ctx: &mut FaultCtx<'_>) -> Result<()> {
        match self {
            Scenario::NotifyAbort => {
                bot::record_aborts(ctx, "abort between commit and NOTIFY").await
            }
            Scenario::BeforeCommitAbort => {
                bot::record_aborts(ctx, "abort with the write uncommitted").await
            }
            Scenario::KillBot => bot::kill(ctx).await,
            Scenario::KillWorker => worker::kill(ctx).await,
            Scenario::PauseWorker => worker::pause(ctx).await,
            Scenario::KillListener => listener::kill(ctx).await,
            Scenario::HalfOpen => listener::half_open(ctx).await,
            Scenario::DeafListener | Scenario::IdleSessionTimeout => listener::wait_out(ctx).await,
            Scenario::PgRestart => database::restart(ctx, testkit::cluster::StopMode::Fast).await,
            Scenario::PgCrash => {
                database::restart(ctx, testkit::cluster::StopMode::Immediate).await
            }
            Scenario::DbOutage => database::outage(ctx).await,
            Scenario::ConnectionExhaustion => database::exhaust(ctx).await,
            Scenario::TwoReconcilers => reconciler::late_worker(ctx).await,
            Scenario::ClockJumps => clock::jumps(ctx).await,
            Scenario::SilentLoss => sweep::silent_loss(ctx).await,
            Scenario::LedgerKill => sweep::ledger_kill(ctx).await,
            Scenario::GatewayFaults => gateway::faults(ctx).await,
            Scenario::Soak => Box::pin(soak::inject(ctx)).await,
        }
    }

    /// What it must prove, beyond the common invariants.
    pub(crate) fn verify(self, facts: &Facts<'_>, checks: &mut Checks, evidence: &mut Evidence) {
        match self {
            Scenario::NotifyAbort => bot::verify_notify_abort(facts, checks, evidence),
            Scenario::BeforeCommitAbort => bot::verify_before_commit(facts, checks, evidence),
            Scenario::KillBot => bot::verify_kill(facts, checks, evidence),
            Scenario::KillWorker => worker::verify_kill(facts, checks, evidence),
            Scenario::PauseWorker => worker::verify_pause(facts, checks, evidence),
            Scenario::KillListener => listener::verify_kill(facts, checks, evidence),
            Scenario::IdleSessionTimeout => listener::verify_idle_timeout(facts, checks, evidence),
            Scenario::HalfOpen => listener::verify_half_open(facts, checks, evidence),
            Scenario::DeafListener => listener::verify_deaf(facts, checks, evidence),
            Scenario::PgRestart | Scenario::PgCrash => {
                database::verify_restart(facts, checks, evidence)
            }
            Scenario::DbOutage => database::verify_outage(facts, checks, evidence),
            Scenario::ConnectionExhaustion => database::verify_exhaust(facts, checks, evidence),
            Scenario::TwoReconcilers => reconciler::verify(facts, checks, evidence),
            Scenario::ClockJumps => clock::verify(facts, checks, evidence),
            Scenario::SilentLoss => sweep::verify_silent_loss(facts, checks, evidence),
            Scenario::LedgerKill => sweep::verify_ledger(facts, checks, evidence),
            Scenario::GatewayFaults => gateway::verify(facts, checks, evidence),
            Scenario::Soak => soak::verify(facts, checks, evidence),
        }
    }

    /// Whether an exit of `service` is part of the fault rather than a crash.
    pub(crate) fn expected_exit(self, service: &Service, exit: &Exit) -> bool {
        if exit.by_chaos {
            return true;
        }
        // SIGABRT is how the failpoints end a process.
        let abort = exit.ended == Ended::ABORT;
        match self {
            Scenario::NotifyAbort | Scenario::BeforeCommitAbort => abort && service.name == "bot",
            Scenario::KillWorker => abort && service.name.starts_with("worker"),
            _ => false,
        }
    }
}

/// Adds a timing check: after every fault, all services were ready again
/// within `target` (with the run's slack), and stayed so for a while.
///
/// A fault followed by the next one before the services had recovered is
/// not judged: its recovery was interrupted, not slow. The last fault is
/// always judged.
pub(crate) fn check_recovery(facts: &Facts<'_>, checks: &mut Checks, name: &str, target: Duration) {
    let bound = facts.settings.bound(target);
    let times = recovery_times(&facts.faults, &facts.monitor);
    let judged: Vec<&RecoveryTime> = times.iter().filter(|t| !t.interrupted).collect();
    let interrupted = times.len() - judged.len();
    let worst = judged.iter().filter_map(|t| t.healthy_after).max();
    let never: Vec<String> = facts
        .faults
        .iter()
        .zip(&times)
        .filter(|(_, t)| !t.interrupted && t.healthy_after.is_none())
        .map(|(f, _)| format!("{:.1}s", secs(f.end)))
        .collect();
    let passed = never.is_empty() && worst.is_none_or(|w| w <= bound);
    let interrupted = if interrupted > 0 {
        format!("; {interrupted} more were followed by the next fault before recovering")
    } else {
        String::new()
    };
    checks.add(
        Kind::Timing,
        name,
        passed,
        if !never.is_empty() {
            format!(
                "never all ready again after the fault ending at {}{interrupted}",
                never.join(", ")
            )
        } else {
            match worst {
                Some(w) => format!(
                    "all services ready within {:.1}s of each of {} faults (bound {:.0}s){interrupted}",
                    secs(w),
                    judged.len(),
                    secs(bound)
                ),
                None => format!("no fault to judge{interrupted}"),
            }
        },
    );
}

/// The longest an event waited to be processed, in seconds.
pub(crate) fn max_latency(facts: &Facts<'_>) -> f64 {
    facts.state.latency.max
}

/// Adds a proof check: `count` of something the fault must cause is at least one.
pub(crate) fn check_proof(
    checks: &mut Checks,
    name: &str,
    count: f64,
    what: impl Into<String>,
    hint: &str,
) {
    let what = what.into();
    checks.add(
        Kind::Proof,
        name,
        count >= 1.0,
        if count >= 1.0 {
            what
        } else if hint.is_empty() {
            format!("{what}: the fault never took effect, so this run proved nothing")
        } else {
            format!("{what}: the fault never took effect, so this run proved nothing. {hint}")
        },
    );
}
