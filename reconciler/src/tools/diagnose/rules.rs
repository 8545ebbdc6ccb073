//! The verdict rules, one function per row of the table in the module
//! documentation, in the table's order (which breaks ties between findings
//! of the same severity: most important first).
//!
//! A rule looks at the snapshot and the thresholds and adds findings (what
//! is wrong and what to run) or notes (facts that change nothing in the
//! verdict) to a [`Judgement`]; it never reads what another rule found.

use super::{Finding, Thresholds, Verdict};
use crate::format;
use crate::snapshot::Snapshot;

pub(super) const START_WORKER: &str = "start the worker: supervisorctl start worker";
pub(super) const START_RECONCILER: &str = "start the reconciler: supervisorctl start reconciler";
pub(super) const SWEEP_LOSSES: &str = "see what the sweeps found: psql \"$DATABASE_URL\" -c \"SELECT channel_id, swept_at, listed, missing, edits, deletes FROM upstream_sweeps WHERE missing > 0 ORDER BY swept_at DESC LIMIT 20\"";
pub(super) const RESTART_BOT: &str = "start a fresh gateway session: supervisorctl restart bot";
pub(super) const CHECK_BOT_SWEEPS: &str = "check the bot sweeps: supervisorctl status bot; its log says \"history sweep scheduled\" at start (BOT_SWEEP_SCHEDULE)";
pub(super) const END_STALE_LISTENERS: &str = "reconciler recover --stale-listeners";
pub(super) const FIND_SILENT_LISTENER: &str = "find the LISTEN session that does not read: psql \"$DATABASE_URL\" -c \"SELECT pid, datname, application_name, client_addr, backend_start, wait_event FROM pg_stat_activity WHERE query LIKE 'LISTEN%'\"";

/// What the rules found so far, in the order they found it.
#[derive(Debug, Default)]
pub(super) struct Judgement {
    pub(super) findings: Vec<Finding>,
    pub(super) notes: Vec<String>,
}

impl Judgement {
    fn finding(&mut self, severity: Verdict, summary: String, next: &[&str]) {
        self.findings.push(Finding {
            severity,
            summary,
            next: next.iter().map(|c| (*c).to_owned()).collect(),
        });
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }
}

/// One row of the table.
pub(super) type Rule = fn(&Snapshot, &Thresholds, &mut Judgement);

/// Every rule, in the table's order.
pub(super) const RULES: [Rule; 13] = [
    dead_events,
    messages_without_event,
    waiting_events,
    overdue_retries,
    no_listener,
    stale_listeners,
    notification_queue,
    processed_share,
    slow_processing,
    last_pass,
    sweep_losses,
    last_sweep,
    retrying,
];

/// Whether a worker is listening (as far as this role can see).
fn listening(s: &Snapshot) -> bool {
    s.listener_connections > 0
}

/// Dead events: unhealthy, whatever their number.
fn dead_events(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    if s.dead_events > 0 {
        j.finding(
            Verdict::Unhealthy,
            format!(
                "{} used up every attempt",
                format::counted(s.dead_events, "dead event", "dead events")
            ),
            &["reconciler audit", "reconciler recover --dead"],
        );
    }
}

/// Messages of the last hour without an event: degraded, unhealthy when the
/// ratio is far off. More events than messages is only a note.
fn messages_without_event(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    if s.messages_without_event_1h > 0 {
        let far_off = s.ratio_1h.is_some_and(|r| r < t.ratio_unhealthy_below);
        j.finding(
            if far_off {
                Verdict::Unhealthy
            } else {
                Verdict::Degraded
            },
            format!(
                "{} in the last hour {} no event (ratio {})",
                format::counted(s.messages_without_event_1h, "message", "messages"),
                if s.messages_without_event_1h == 1 {
                    "has"
                } else {
                    "have"
                },
                format::ratio(s.ratio_1h)
            ),
            &["reconciler once"],
        );
    } else if s.created_events_1h > s.messages_1h {
        j.note(format!(
            "{} more message.created events than messages in the last hour: events written by the reconciler for older messages",
            format::count(s.created_events_1h - s.messages_1h)
        ));
    }
}

/// Events waiting longer than the grace: degraded, unhealthy past the bound.
fn waiting_events(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    if s.orphans == 0 {
        return;
    }
    let oldest = s.oldest_pending_secs.unwrap_or(0.0);
    let next: &[&str] = if listening(s) {
        &[
            "reconciler recover",
            "reconciler relisten",
            "reconciler audit",
        ]
    } else {
        &[START_WORKER, "reconciler relisten"]
    };
    j.finding(
        if oldest > t.waiting_unhealthy_after.as_secs_f64() {
            Verdict::Unhealthy
        } else {
            Verdict::Degraded
        },
        format!(
            "{} waiting, oldest {}",
            format::counted(s.unclaimed_events.max(s.orphans), "event", "events"),
            format::seconds(oldest)
        ),
        next,
    );
}

/// Retries overdue by more than the grace: degraded.
fn overdue_retries(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    if s.retries_overdue > 0 {
        j.finding(
            Verdict::Degraded,
            format!(
                "{} overdue",
                format::counted(s.retries_overdue, "retry", "retries")
            ),
            if listening(s) {
                &["reconciler recover", "reconciler audit"]
            } else {
                &[START_WORKER]
            },
        );
    }
}

/// No `LISTEN "events"` session: degraded, or only a note when this role
/// cannot see other roles' sessions.
fn no_listener(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    if listening(s) {
        return;
    }
    if !s.sees_all_sessions {
        j.note(
            "cannot tell whether a worker is listening: this database role cannot see other \
             roles' sessions (GRANT pg_read_all_stats TO it)"
                .to_owned(),
        );
    } else {
        j.finding(
            Verdict::Degraded,
            "no worker is listening".to_owned(),
            &[START_WORKER, "reconciler relisten"],
        );
    }
}

/// Worker LISTEN sessions that stopped reading their heartbeat: degraded,
/// with a note naming each.
fn stale_listeners(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    if s.stale_listeners.is_empty() {
        return;
    }
    let n = s.stale_listeners.len() as u64;
    let longest = s
        .stale_listeners
        .iter()
        .map(|l| l.silent_secs)
        .fold(0.0, f64::max);
    j.finding(
        Verdict::Degraded,
        format!(
            "{} not read notifications for {}",
            format::counted(
                n,
                "worker LISTEN session has",
                "worker LISTEN sessions have"
            ),
            format::seconds(longest)
        ),
        &[END_STALE_LISTENERS],
    );
    for l in &s.stale_listeners {
        j.note(format!("stale listener: {}", crate::listeners::describe(l)));
    }
}

/// The notification queue filling up: degraded, then unhealthy.
fn notification_queue(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    if s.notification_queue_usage <= t.queue_degraded_above {
        return;
    }
    j.finding(
        if s.notification_queue_usage > t.queue_unhealthy_above {
            Verdict::Unhealthy
        } else {
            Verdict::Degraded
        },
        format!(
            "the notification queue is {} full (NOTIFY fails at 100%)",
            format::percent(s.notification_queue_usage)
        ),
        if s.stale_listeners.is_empty() {
            &[FIND_SILENT_LISTENER]
        } else {
            &[END_STALE_LISTENERS, FIND_SILENT_LISTENER]
        },
    );
}

/// The share of the last hour's settled events processed: degraded, then
/// unhealthy.
fn processed_share(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    if s.settled_events_1h == 0 {
        return;
    }
    let share = s.settled_processed_1h as f64 / s.settled_events_1h as f64;
    if share < t.rate_degraded_below {
        j.finding(
            if share < t.rate_unhealthy_below {
                Verdict::Unhealthy
            } else {
                Verdict::Degraded
            },
            format!(
                "only {} of the last hour's events processed",
                format::percent(share)
            ),
            &["reconciler audit"],
        );
    }
}

/// The created-to-processed p95 of the last hour: degraded when slow.
fn slow_processing(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    if let Some(p95) = s.p95_latency_1h_secs
        && p95 > t.slow_p95.as_secs_f64()
    {
        j.finding(
            Verdict::Degraded,
            format!(
                "slow processing: 95% of events took up to {}",
                format::seconds(p95)
            ),
            &["reconciler audit"],
        );
    }
}

/// The last reconciler pass: degraded when old or when a step failed; a
/// note when there was none yet.
fn last_pass(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    let Some(run) = &s.last_run else {
        j.note("the reconciler has not run yet".to_owned());
        return;
    };
    let age = run
        .finished_at
        .map(|f| s.age_secs(f))
        .unwrap_or(f64::INFINITY);
    if age > t.reconciler_stale_after.as_secs_f64() {
        j.finding(
            Verdict::Degraded,
            format!("no reconciler pass for {}", format::seconds(age)),
            &[START_RECONCILER],
        );
    } else if run.error.is_some() {
        j.finding(
            Verdict::Degraded,
            "the last reconciler pass failed a step".to_owned(),
            &["reconciler once", "reconciler audit"],
        );
    }
}

/// History sweeps of the last hour that stored missing messages (silent
/// gateway loss): degraded.
fn sweep_losses(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    let Some(worst) = s.sweeps.losses_1h.iter().max_by_key(|l| l.missing) else {
        return;
    };
    let total: u64 = s.sweeps.losses_1h.iter().map(|l| l.missing).sum();
    j.finding(
        Verdict::Degraded,
        format!(
            "silent gateway loss: history sweeps stored {} Discord never delivered (worst: {} in channel {}, {})",
            format::counted(total, "message", "messages"),
            format::count(worst.missing),
            worst.channel_id,
            format::ago(worst.swept_at, s.observed_at)
        ),
        &[SWEEP_LOSSES, RESTART_BOT],
    );
}

/// The last history sweep: degraded when overdue; a note when the bot has
/// never swept.
fn last_sweep(s: &Snapshot, t: &Thresholds, j: &mut Judgement) {
    let Some(at) = s.sweeps.last_sweep_at else {
        j.note(
            "no history sweep recorded (BOT_SWEEP_SCHEDULE off, or the bot has not swept yet)"
                .to_owned(),
        );
        return;
    };
    let age = s.age_secs(at);
    if age > t.sweep_overdue_after.as_secs_f64() {
        j.finding(
            Verdict::Degraded,
            format!("no history sweep for {}", format::seconds(age)),
            &[CHECK_BOT_SWEEPS],
        );
    }
}

/// Failed events whose retry is not yet overdue: a note only.
fn retrying(s: &Snapshot, _: &Thresholds, j: &mut Judgement) {
    let retrying = s.failed_events.saturating_sub(s.retries_overdue);
    if retrying > 0 {
        j.note(format!(
            "{} failed and will be retried",
            format::counted(retrying, "event", "events")
        ));
    }
}
