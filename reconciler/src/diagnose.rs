//! `diagnose`: one verdict in plain words, the facts behind it, and the next
//! command to run.
//!
//! [`assess`] is a pure function of a [`Snapshot`] and [`Thresholds`], so
//! every state can be tested without a database. The thresholds follow the
//! checks operators relied on before: the event/message ratio about 1:1,
//! more than 90% of events processed, events handled within seconds.
//!
//! | finding | degraded | unhealthy |
//! |---|---|---|
//! | dead events | | any |
//! | messages of the last hour without an event | any, ratio >= 0.90 | ratio below 0.90 |
//! | events waiting longer than the grace (60 s) | oldest up to 15 min | oldest over 15 min |
//! | retries overdue by more than the grace | any | |
//! | share of the last hour's settled events processed | below 90% | below 50% |
//! | created-to-processed p95 over the last hour | over 10 s | |
//! | no `LISTEN "events"` session | always (if the role can see sessions) | |
//! | a worker's LISTEN session has not read its heartbeat for 30 s | any | |
//! | notification queue in use (`pg_notification_queue_usage()`) | over 1% | over 50% |
//! | last reconciler pass | older than 10 min, or a step failed | |
//! | a history sweep of the last hour stored missing messages (silent gateway loss) | any | |
//! | last history sweep (once the bot has swept at all) | older than 30 min | |
//!
//! "Settled" events are those older than the grace: younger ones are in
//! flight and say nothing about health. An idle pipeline is healthy.

use std::time::Duration;

use serde::Serialize;

use crate::format;
use crate::snapshot::Snapshot;

/// How the pipeline is doing. Ordered: the worst finding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing needs attention.
    Healthy,
    /// Working, but something needs attention before it gets worse.
    Degraded,
    /// Messages are not being processed, or events are lost or dead.
    Unhealthy,
}

impl Verdict {
    /// The process exit status: 0 healthy, 1 degraded, 2 unhealthy.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::Unhealthy => 2,
        }
    }

    /// The word the verdict line starts with.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Healthy => "Healthy",
            Verdict::Degraded => "Degraded",
            Verdict::Unhealthy => "Unhealthy",
        }
    }
}

/// Where healthy ends. See the module documentation for the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Events younger than this are in flight.
    pub grace: Duration,
    /// The last hour's event/message ratio below which missing events make
    /// the pipeline unhealthy (any missing event makes it degraded).
    pub ratio_unhealthy_below: f64,
    /// Share of settled events processed below which the pipeline is degraded.
    pub rate_degraded_below: f64,
    /// ... and unhealthy.
    pub rate_unhealthy_below: f64,
    /// Age of the oldest waiting event past which the pipeline is unhealthy.
    pub waiting_unhealthy_after: Duration,
    /// p95 created-to-processed time above which processing is too slow.
    pub slow_p95: Duration,
    /// A reconciler pass older than this means the reconciler is not running.
    pub reconciler_stale_after: Duration,
    /// A worker's LISTEN session silent for longer than this no longer
    /// consumes notifications.
    pub listener_stale_after: Duration,
    /// Share of the notification queue in use above which the pipeline is
    /// degraded: some listener is not reading. At 100% every NOTIFY fails.
    pub queue_degraded_above: f64,
    /// ... and unhealthy.
    pub queue_unhealthy_above: f64,
    /// No history sweep for this long (three default intervals) means the
    /// bot no longer sweeps.
    pub sweep_overdue_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            grace: crate::config::DEFAULT_ORPHAN_GRACE,
            ratio_unhealthy_below: 0.90,
            rate_degraded_below: 0.90,
            rate_unhealthy_below: 0.50,
            waiting_unhealthy_after: Duration::from_secs(15 * 60),
            slow_p95: Duration::from_secs(10),
            reconciler_stale_after: Duration::from_secs(10 * 60),
            listener_stale_after: crate::listeners::DEFAULT_LISTENER_STALE_AFTER,
            queue_degraded_above: 0.01,
            queue_unhealthy_above: 0.5,
            sweep_overdue_after: Duration::from_secs(30 * 60),
        }
    }
}

/// One thing wrong, with what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `degraded` or `unhealthy`.
    pub severity: Verdict,
    /// A short phrase for the verdict line: "37 events waiting, oldest 4 min".
    pub summary: String,
    /// Commands to run, most useful first.
    pub next: Vec<String>,
}

/// The verdict, why, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    /// The one line an operator reads first.
    pub headline: String,
    /// What is wrong, worst first.
    pub findings: Vec<Finding>,
    /// Facts worth knowing that change nothing in the verdict.
    pub notes: Vec<String>,
    /// Every finding's commands, in order, without repeats.
    pub next_commands: Vec<String>,
}

const START_WORKER: &str = "start the worker: supervisorctl start worker";
const START_RECONCILER: &str = "start the reconciler: supervisorctl start reconciler";
const SWEEP_LOSSES: &str = "see what the sweeps found: psql \"$DATABASE_URL\" -c \"SELECT channel_id, swept_at, listed, missing, edits, deletes FROM upstream_sweeps WHERE missing > 0 ORDER BY swept_at DESC LIMIT 20\"";
const RESTART_BOT: &str = "start a fresh gateway session: supervisorctl restart bot";
const CHECK_BOT_SWEEPS: &str = "check the bot sweeps: supervisorctl status bot; its log says \"history sweep scheduled\" at start (BOT_SWEEP_SCHEDULE)";
const END_STALE_LISTENERS: &str = "reconciler recover --stale-listeners";
const FIND_SILENT_LISTENER: &str = "find the LISTEN session that does not read: psql \"$DATABASE_URL\" -c \"SELECT pid, datname, application_name, client_addr, backend_start, wait_event FROM pg_stat_activity WHERE query LIKE 'LISTEN%'\"";

/// Judges a snapshot.
pub fn assess(s: &Snapshot, t: &Thresholds) -> Assessment {
    let mut findings: Vec<Finding> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut finding = |severity: Verdict, summary: String, next: &[&str]| {
        findings.push(Finding {
            severity,
            summary,
            next: next.iter().map(|c| (*c).to_owned()).collect(),
        })
    };
    let listening = s.listener_connections > 0;
    let listener_unknown = !listening && !s.sees_all_sessions;

    if s.dead_events > 0 {
        finding(
            Verdict::Unhealthy,
            format!(
                "{} used up every attempt",
                format::counted(s.dead_events, "dead event", "dead events")
            ),
            &["reconciler audit", "reconciler recover --dead"],
        );
    }

    if s.messages_without_event_1h > 0 {
        let far_off = s.ratio_1h.is_some_and(|r| r < t.ratio_unhealthy_below);
        finding(
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
        notes.push(format!(
            "{} more message.created events than messages in the last hour: events written by the reconciler for older messages",
            format::count(s.created_events_1h - s.messages_1h)
        ));
    }

    if s.orphans > 0 {
        let oldest = s.oldest_pending_secs.unwrap_or(0.0);
        let next: &[&str] = if listening {
            &[
                "reconciler recover",
                "reconciler relisten",
                "reconciler audit",
            ]
        } else {
            &[START_WORKER, "reconciler relisten"]
        };
        finding(
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

    if s.retries_overdue > 0 {
        finding(
            Verdict::Degraded,
            format!(
                "{} overdue",
                format::counted(s.retries_overdue, "retry", "retries")
            ),
            if listening {
                &["reconciler recover", "reconciler audit"]
            } else {
                &[START_WORKER]
            },
        );
    }

    if !listening {
        if listener_unknown {
            notes.push(
                "cannot tell whether a worker is listening: this database role cannot see other \
                 roles' sessions (GRANT pg_read_all_stats TO it)"
                    .to_owned(),
            );
        } else {
            finding(
                Verdict::Degraded,
                "no worker is listening".to_owned(),
                &[START_WORKER, "reconciler relisten"],
            );
        }
    }

    if !s.stale_listeners.is_empty() {
        let n = s.stale_listeners.len() as u64;
        let longest = s
            .stale_listeners
            .iter()
            .map(|l| l.silent_secs)
            .fold(0.0, f64::max);
        finding(
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
            notes.push(format!("stale listener: {}", crate::listeners::describe(l)));
        }
    }

    if s.notification_queue_usage > t.queue_degraded_above {
        finding(
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

    if s.settled_events_1h > 0 {
        let share = s.settled_processed_1h as f64 / s.settled_events_1h as f64;
        if share < t.rate_degraded_below {
            finding(
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

    if let Some(p95) = s.p95_latency_1h_secs
        && p95 > t.slow_p95.as_secs_f64()
    {
        finding(
            Verdict::Degraded,
            format!(
                "slow processing: 95% of events took up to {}",
                format::seconds(p95)
            ),
            &["reconciler audit"],
        );
    }

    match &s.last_run {
        None => notes.push("the reconciler has not run yet".to_owned()),
        Some(run) => {
            let age = run
                .finished_at
                .map(|f| s.age_secs(f))
                .unwrap_or(f64::INFINITY);
            if age > t.reconciler_stale_after.as_secs_f64() {
                finding(
                    Verdict::Degraded,
                    format!("no reconciler pass for {}", format::seconds(age)),
                    &[START_RECONCILER],
                );
            } else if run.error.is_some() {
                finding(
                    Verdict::Degraded,
                    "the last reconciler pass failed a step".to_owned(),
                    &["reconciler once", "reconciler audit"],
                );
            }
        }
    }

    if let Some(worst) = s.sweeps.losses_1h.iter().max_by_key(|l| l.missing) {
        let total: u64 = s.sweeps.losses_1h.iter().map(|l| l.missing).sum();
        finding(
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
    match s.sweeps.last_sweep_at {
        None => notes.push(
            "no history sweep recorded (BOT_SWEEP_SCHEDULE off, or the bot has not swept yet)"
                .to_owned(),
        ),
        Some(at) => {
            let age = s.age_secs(at);
            if age > t.sweep_overdue_after.as_secs_f64() {
                finding(
                    Verdict::Degraded,
                    format!("no history sweep for {}", format::seconds(age)),
                    &[CHECK_BOT_SWEEPS],
                );
            }
        }
    }

    let retrying = s.failed_events.saturating_sub(s.retries_overdue);
    if retrying > 0 {
        notes.push(format!(
            "{} failed and will be retried",
            format::counted(retrying, "event", "events")
        ));
    }

    // Worst first; the order above breaks ties (it is most-important first).
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Verdict::Healthy);
    let headline = if findings.is_empty() {
        healthy_headline(s)
    } else {
        let parts: Vec<&str> = findings.iter().map(|f| f.summary.as_str()).collect();
        format!("{}: {}", verdict.label(), parts.join("; "))
    };
    let mut next_commands: Vec<String> = Vec::new();
    for command in findings.iter().flat_map(|f| f.next.iter()) {
        if !next_commands.contains(command) {
            next_commands.push(command.clone());
        }
    }
    Assessment {
        verdict,
        headline,
        findings,
        notes,
        next_commands,
    }
}

fn healthy_headline(s: &Snapshot) -> String {
    if s.messages_1h == 0 && s.events_1h == 0 {
        let last = match s.last_message_at {
            Some(at) => format!("last message {}", format::ago(at, s.observed_at)),
            None => "no message stored yet".to_owned(),
        };
        return format!("Healthy: no messages in the last hour; {last}, nothing waiting");
    }
    let messages = format::counted(s.messages_1h, "message", "messages");
    if s.processed_1h == s.events_1h {
        match s.max_latency_1h_secs {
            Some(max) => format!(
                "Healthy: {messages} in the last hour, all processed within {}",
                format::seconds(max)
            ),
            None => format!("Healthy: {messages} in the last hour, all processed"),
        }
    } else {
        format!(
            "Healthy: {messages} in the last hour, {} of {} events processed, the rest in flight",
            format::count(s.processed_1h),
            format::count(s.events_1h)
        )
    }
}

/// A full `diagnose` result: the assessment and the facts it was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub verdict: Verdict,
    pub exit_code: u8,
    pub headline: String,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    pub next_commands: Vec<String>,
    /// `None` when the database could not be reached.
    pub snapshot: Option<Snapshot>,
    /// Why the snapshot could not be read.
    pub error: Option<String>,
}

impl Diagnosis {
    /// Assesses a snapshot.
    pub fn of(snapshot: Snapshot, thresholds: &Thresholds) -> Self {
        let a = assess(&snapshot, thresholds);
        Self {
            verdict: a.verdict,
            exit_code: a.verdict.exit_code(),
            headline: a.headline,
            findings: a.findings,
            notes: a.notes,
            next_commands: a.next_commands,
            snapshot: Some(snapshot),
            error: None,
        }
    }

    /// The diagnosis when the database cannot be read at all.
    pub fn unreachable(error: String) -> Self {
        Self {
            verdict: Verdict::Unhealthy,
            exit_code: Verdict::Unhealthy.exit_code(),
            headline: "Unhealthy: the database cannot be reached".to_owned(),
            findings: vec![Finding {
                severity: Verdict::Unhealthy,
                summary: "the database cannot be reached".to_owned(),
                next: vec![
                    "check that PostgreSQL is running and DATABASE_URL points at it: pg_isready -d \"$DATABASE_URL\"".to_owned(),
                ],
            }],
            notes: Vec::new(),
            next_commands: vec![
                "check that PostgreSQL is running and DATABASE_URL points at it: pg_isready -d \"$DATABASE_URL\"".to_owned(),
            ],
            snapshot: None,
            error: Some(error),
        }
    }

    /// The human-readable screen.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.headline);
        out.push('\n');
        if let Some(error) = &self.error {
            out.push_str(&format!("\n  Error        {error}\n"));
        }
        if let Some(s) = &self.snapshot {
            out.push('\n');
            for (label, value) in facts(s) {
                out.push_str(&format!("  {label:<12} {value}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("  Note: {note}\n"));
            }
        }
        if !self.next_commands.is_empty() {
            out.push_str("\nNext:\n");
            for (i, command) in self.next_commands.iter().enumerate() {
                out.push_str(&format!("  {}. {command}\n", i + 1));
            }
        }
        out
    }
}

/// The facts, one labelled line each.
pub(crate) fn facts(s: &Snapshot) -> Vec<(&'static str, String)> {
    let last_message = match s.last_message_at {
        Some(at) => format!("last one {}", format::ago(at, s.observed_at)),
        None => "none stored yet".to_owned(),
    };
    let processing = if s.events_1h == 0 {
        "no events in the last hour".to_owned()
    } else {
        let mut text = format!(
            "{} of the last hour's {} processed",
            format::percent(s.processing_rate_1h.unwrap_or(1.0)),
            format::counted(s.events_1h, "event", "events")
        );
        if let (Some(p50), Some(p95)) = (s.p50_latency_1h_secs, s.p95_latency_1h_secs) {
            text.push_str(&format!(
                "; p50 {}, p95 {}",
                format::seconds(p50),
                format::seconds(p95)
            ));
        }
        text
    };
    let backlog = if s.backlog == 0 {
        "nothing waiting".to_owned()
    } else {
        let mut text = format!(
            "{} waiting ({} unclaimed, {} failed awaiting retry)",
            format::count(s.backlog),
            format::count(s.unclaimed_events),
            format::count(s.failed_events)
        );
        if let Some(age) = s.oldest_pending_secs {
            text.push_str(&format!("; oldest unclaimed {}", format::seconds(age)));
        }
        text
    };
    let listener = if s.listener_connections > 0 {
        format!(
            "{} LISTEN \"events\"",
            format::counted(s.listener_connections, "session", "sessions")
        )
    } else if s.sees_all_sessions {
        "none: no session is listening on \"events\"".to_owned()
    } else {
        "unknown: this role cannot see other roles' sessions".to_owned()
    };
    let queue = if s.stale_listeners.is_empty() {
        format!(
            "{} used; no worker LISTEN session silent for more than {}",
            format::percent(s.notification_queue_usage),
            format::seconds(s.listener_stale_after_secs)
        )
    } else {
        format!(
            "{} used; {} silent for more than {}",
            format::percent(s.notification_queue_usage),
            format::counted(
                s.stale_listeners.len() as u64,
                "worker LISTEN session",
                "worker LISTEN sessions"
            ),
            format::seconds(s.listener_stale_after_secs)
        )
    };
    let reconciler = match &s.last_run {
        None => "never run".to_owned(),
        Some(run) => {
            let when = run
                .finished_at
                .map(|f| format::ago(f, s.observed_at))
                .unwrap_or_else(|| "at an unknown time".to_owned());
            let outcome = match &run.error {
                None => "every step succeeded".to_owned(),
                Some(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
            };
            format!("last pass {when} by {}, {outcome}", run.instance)
        }
    };
    vec![
        (
            "Messages",
            format!(
                "{} in the last hour, {} in the last day; {last_message}",
                format::count(s.messages_1h),
                format::count(s.messages_24h)
            ),
        ),
        (
            "Events",
            format!(
                "{} message.created in the last hour (ratio {}), {} in the last day (ratio {})",
                format::count(s.created_events_1h),
                format::ratio(s.ratio_1h),
                format::count(s.created_events_24h),
                format::ratio(s.ratio_24h)
            ),
        ),
        ("Processing", processing),
        ("Backlog", backlog),
        (
            "Dead",
            if s.dead_events == 0 {
                "none".to_owned()
            } else {
                format::counted(s.dead_events, "event", "events")
            },
        ),
        ("Listener", listener),
        ("Notify queue", queue),
        ("Reconciler", reconciler),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::runs::RunRecord;

    fn now() -> chrono::DateTime<Utc> {
        // A literal, valid instant.
        Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0)
            .single()
            .expect("valid")
    }

    fn run(secs_ago: i64, error: Option<&str>) -> RunRecord {
        let at = now() - chrono::Duration::seconds(secs_ago);
        RunRecord {
            id: 1,
            instance: "rec-1".to_owned(),
            started_at: at,
            finished_at: Some(at),
            missing_events_created: 0,
            orphans_refired: 0,
            retries_due: 0,
            dead_events: 0,
            pruned_events: 0,
            pruned_inbox: 0,
            backlog: 0,
            ratio: Some(1.0),
            processing_rate: Some(1.0),
            messages_scanned_through: Some(at),
            error: error.map(str::to_owned),
        }
    }

    /// A busy, healthy pipeline: 1,204 messages, all processed within 2 s.
    fn healthy() -> Snapshot {
        Snapshot {
            observed_at: now(),
            grace_secs: 60.0,
            messages_1h: 1_204,
            messages_24h: 28_930,
            created_events_1h: 1_204,
            created_events_24h: 28_930,
            ratio_1h: Some(1.0),
            ratio_24h: Some(1.0),
            events_1h: 1_204,
            processed_1h: 1_204,
            processing_rate_1h: Some(1.0),
            processing_rate_24h: Some(1.0),
            p50_latency_1h_secs: Some(0.04),
            p95_latency_1h_secs: Some(0.9),
            max_latency_1h_secs: Some(2.1),
            settled_events_1h: 1_190,
            settled_processed_1h: 1_190,
            listener_connections: 1,
            sees_all_sessions: true,
            last_message_at: Some(now() - chrono::Duration::seconds(12)),
            last_run: Some(run(20, None)),
            ..Snapshot::default()
        }
    }

    fn judge(s: &Snapshot) -> Assessment {
        assess(s, &Thresholds::default())
    }

    #[test]
    fn a_busy_pipeline_with_everything_processed_is_healthy() {
        let a = judge(&healthy());
        assert_eq!(a.verdict, Verdict::Healthy);
        assert_eq!(
            a.headline,
            "Healthy: 1,204 messages in the last hour, all processed within 2.1 s"
        );
        assert!(a.next_commands.is_empty());
    }

    #[test]
    fn an_idle_pipeline_with_no_messages_is_healthy() {
        let s = Snapshot {
            observed_at: now(),
            listener_connections: 1,
            sees_all_sessions: true,
            last_message_at: Some(now() - chrono::Duration::hours(3)),
            last_run: Some(run(5, None)),
            ..Snapshot::default()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Healthy);
        assert_eq!(
            a.headline,
            "Healthy: no messages in the last hour; last message 3 h ago, nothing waiting"
        );
    }

    #[test]
    fn a_fresh_install_is_healthy_and_notes_the_reconciler_has_not_run() {
        let s = Snapshot {
            observed_at: now(),
            listener_connections: 1,
            sees_all_sessions: true,
            ..Snapshot::default()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Healthy);
        assert!(
            a.headline.contains("no message stored yet"),
            "{}",
            a.headline
        );
        assert!(a.notes.iter().any(|n| n.contains("has not run")));
    }

    #[test]
    fn events_in_flight_younger_than_the_grace_do_not_degrade() {
        let s = Snapshot {
            events_1h: 1_210,
            pending_1h: 6,
            unclaimed_events: 6,
            backlog: 6,
            oldest_pending_secs: Some(0.4),
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Healthy, "{a:?}");
        assert!(a.headline.contains("the rest in flight"), "{}", a.headline);
    }

    #[test]
    fn waiting_events_and_no_listener_are_degraded_and_say_to_start_the_worker() {
        let s = Snapshot {
            unclaimed_events: 37,
            orphans: 37,
            backlog: 37,
            oldest_pending_secs: Some(240.0),
            listener_connections: 0,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(
            a.headline,
            "Degraded: 37 events waiting, oldest 4 min; no worker is listening"
        );
        assert_eq!(a.next_commands[0], START_WORKER);
        assert!(a.next_commands.contains(&"reconciler relisten".to_owned()));
    }

    #[test]
    fn waiting_events_with_a_listener_suggest_recover_and_relisten() {
        let s = Snapshot {
            unclaimed_events: 3,
            orphans: 3,
            oldest_pending_secs: Some(90.0),
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(a.next_commands[0], "reconciler recover");
        assert!(a.next_commands.contains(&"reconciler relisten".to_owned()));
    }

    #[test]
    fn events_waiting_longer_than_fifteen_minutes_are_unhealthy() {
        let s = Snapshot {
            unclaimed_events: 500,
            orphans: 500,
            oldest_pending_secs: Some(20.0 * 60.0),
            ..healthy()
        };
        assert_eq!(judge(&s).verdict, Verdict::Unhealthy);
    }

    #[test]
    fn no_listener_alone_is_degraded() {
        let s = Snapshot {
            listener_connections: 0,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(a.headline, "Degraded: no worker is listening");
    }

    #[test]
    fn an_invisible_listener_is_only_a_note() {
        let s = Snapshot {
            listener_connections: 0,
            sees_all_sessions: false,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Healthy);
        assert!(a.notes.iter().any(|n| n.contains("pg_read_all_stats")));
    }

    #[test]
    fn dead_events_are_unhealthy_and_point_to_audit_and_recover() {
        let s = Snapshot {
            dead_events: 3,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Unhealthy);
        assert_eq!(a.headline, "Unhealthy: 3 dead events used up every attempt");
        assert_eq!(
            a.next_commands,
            vec!["reconciler audit", "reconciler recover --dead"]
        );
    }

    #[test]
    fn a_few_messages_without_events_are_degraded_and_many_are_unhealthy() {
        let few = Snapshot {
            created_events_1h: 1_200,
            messages_without_event_1h: 4,
            ratio_1h: Some(0.9967),
            ..healthy()
        };
        let a = judge(&few);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(
            a.headline,
            "Degraded: 4 messages in the last hour have no event (ratio 0.997)"
        );
        assert_eq!(a.next_commands, vec!["reconciler once"]);

        let many = Snapshot {
            created_events_1h: 600,
            messages_without_event_1h: 604,
            ratio_1h: Some(0.4983),
            ..healthy()
        };
        assert_eq!(judge(&many).verdict, Verdict::Unhealthy);
    }

    #[test]
    fn more_events_than_messages_is_a_note_not_a_problem() {
        let s = Snapshot {
            created_events_1h: 1_210,
            ratio_1h: Some(1.005),
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Healthy);
        assert!(a.notes.iter().any(|n| n.contains("6 more")));
    }

    #[test]
    fn a_low_processing_rate_is_degraded_below_ninety_and_unhealthy_below_fifty_percent() {
        let s = Snapshot {
            processed_1h: 1_000,
            settled_events_1h: 1_190,
            settled_processed_1h: 1_000,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert!(a.headline.contains("only 84.0%"), "{}", a.headline);

        let s = Snapshot {
            settled_processed_1h: 400,
            ..s
        };
        assert_eq!(judge(&s).verdict, Verdict::Unhealthy);
    }

    #[test]
    fn slow_processing_is_degraded() {
        let s = Snapshot {
            p95_latency_1h_secs: Some(12.0),
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert!(a.headline.contains("up to 12 s"), "{}", a.headline);
    }

    #[test]
    fn overdue_retries_are_degraded() {
        let s = Snapshot {
            failed_events: 5,
            retries_overdue: 2,
            backlog: 5,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(a.headline, "Degraded: 2 retries overdue");
        assert!(a.notes.iter().any(|n| n.contains("3 events failed")));
    }

    #[test]
    fn a_stale_or_failing_reconciler_is_degraded() {
        let stale = Snapshot {
            last_run: Some(run(3 * 3600, None)),
            ..healthy()
        };
        let a = judge(&stale);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(a.headline, "Degraded: no reconciler pass for 3 h");
        assert_eq!(a.next_commands, vec![START_RECONCILER]);

        let failing = Snapshot {
            last_run: Some(run(10, Some("prune: database error"))),
            ..healthy()
        };
        assert_eq!(judge(&failing).verdict, Verdict::Degraded);
    }

    #[test]
    fn a_sweep_that_found_missing_messages_is_degraded_and_names_the_channel() {
        let s = Snapshot {
            sweeps: crate::sweeps::Sweeps {
                last_sweep_at: Some(now() - chrono::Duration::seconds(60)),
                losses_1h: vec![
                    crate::sweeps::SweepLoss {
                        channel_id: 1_372_012_942_848_954_388,
                        swept_at: now() - chrono::Duration::seconds(120),
                        missing: 7,
                        listed: 300,
                    },
                    crate::sweeps::SweepLoss {
                        channel_id: 42,
                        swept_at: now() - chrono::Duration::seconds(60),
                        missing: 1,
                        listed: 20,
                    },
                ],
            },
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert!(a.headline.contains("silent gateway loss"), "{}", a.headline);
        assert!(a.headline.contains("8 messages"), "{}", a.headline);
        assert!(a.headline.contains("1372012942848954388"), "{}", a.headline);
        assert_eq!(a.next_commands[1], RESTART_BOT);
    }

    #[test]
    fn an_overdue_sweep_is_degraded_and_never_sweeping_is_only_a_note() {
        let s = Snapshot {
            sweeps: crate::sweeps::Sweeps {
                last_sweep_at: Some(now() - chrono::Duration::seconds(45 * 60)),
                losses_1h: Vec::new(),
            },
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert!(
            a.headline.contains("no history sweep for"),
            "{}",
            a.headline
        );
        let never = judge(&healthy());
        assert_eq!(never.verdict, Verdict::Healthy);
        assert!(never.notes.iter().any(|n| n.contains("no history sweep")));
        let recent = Snapshot {
            sweeps: crate::sweeps::Sweeps {
                last_sweep_at: Some(now() - chrono::Duration::seconds(300)),
                losses_1h: Vec::new(),
            },
            ..healthy()
        };
        assert_eq!(judge(&recent).verdict, Verdict::Healthy);
    }

    fn stale_listener(pid: i32, silent_secs: f64) -> crate::listeners::StaleListener {
        crate::listeners::StaleListener {
            pid,
            application_name: format!("aplus-worker-listener w{pid}"),
            backend_start: Some(now() - chrono::Duration::hours(1)),
            client_addr: Some("10.0.0.7".to_owned()),
            heard_at: Some(now() - chrono::Duration::seconds(silent_secs as i64)),
            silent_secs,
        }
    }

    #[test]
    fn a_listener_that_stopped_reading_is_degraded_and_names_the_command_that_ends_it() {
        let s = Snapshot {
            stale_listeners: vec![stale_listener(4242, 300.0), stale_listener(4243, 45.0)],
            listener_stale_after_secs: 30.0,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(
            a.headline,
            "Degraded: 2 worker LISTEN sessions have not read notifications for 5 min"
        );
        assert_eq!(
            a.next_commands,
            vec!["reconciler recover --stale-listeners"]
        );
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("pid 4242 (aplus-worker-listener w4242, 10.0.0.7)")),
            "{:?}",
            a.notes
        );
    }

    #[test]
    fn a_filling_notification_queue_is_degraded_above_one_percent_and_unhealthy_above_half() {
        let nearly_empty = Snapshot {
            notification_queue_usage: 0.000_004,
            ..healthy()
        };
        assert_eq!(judge(&nearly_empty).verdict, Verdict::Healthy);

        let filling = Snapshot {
            notification_queue_usage: 0.03,
            ..healthy()
        };
        let a = judge(&filling);
        assert_eq!(a.verdict, Verdict::Degraded);
        assert_eq!(
            a.headline,
            "Degraded: the notification queue is 3.0% full (NOTIFY fails at 100%)"
        );
        assert!(a.next_commands[0].contains("pg_stat_activity"), "{a:?}");

        let full = Snapshot {
            notification_queue_usage: 0.8,
            stale_listeners: vec![stale_listener(7, 7_200.0)],
            ..healthy()
        };
        let a = judge(&full);
        assert_eq!(a.verdict, Verdict::Unhealthy);
        assert_eq!(a.next_commands[0], "reconciler recover --stale-listeners");
    }

    #[test]
    fn the_worst_finding_leads_the_verdict_line() {
        let s = Snapshot {
            listener_connections: 0,
            dead_events: 1,
            ..healthy()
        };
        let a = judge(&s);
        assert_eq!(
            a.headline,
            "Unhealthy: 1 dead event used up every attempt; no worker is listening"
        );
        assert_eq!(a.verdict.exit_code(), 2);
    }

    #[test]
    fn an_unreachable_database_is_unhealthy_with_exit_status_two() {
        let d = Diagnosis::unreachable("connection refused".to_owned());
        assert_eq!(d.exit_code, 2);
        assert!(d.render().contains("connection refused"));
        assert!(d.render().contains("pg_isready"));
    }

    #[test]
    fn the_screen_leads_with_the_verdict_and_lists_the_facts() {
        let d = Diagnosis::of(healthy(), &Thresholds::default());
        let screen = d.render();
        let first = screen.lines().next().unwrap_or_default();
        assert!(first.starts_with("Healthy: "), "{screen}");
        for label in [
            "Messages",
            "Events",
            "Processing",
            "Backlog",
            "Dead",
            "Listener",
            "Notify queue",
            "Reconciler",
        ] {
            assert!(screen.contains(label), "{label} missing from\n{screen}");
        }
        assert!(screen.contains("28,930"), "{screen}");
        assert!(!screen.contains("Next:"), "{screen}");
    }
}
