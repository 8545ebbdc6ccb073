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
//! | no `LISTEN "events"` session | always (if the role can see sessions) | |
//! | a worker's LISTEN session has not read its heartbeat for 30 s | any | |
//! | notification queue in use (`pg_notification_queue_usage()`) | over 1% | over 50% |
//! | share of the last hour's settled events processed | below 90% | below 50% |
//! | created-to-processed p95 over the last hour | over 10 s | |
//! | last reconciler pass | older than 10 min, or a step failed | |
//! | a history sweep of the last hour stored missing messages (silent gateway loss) | any | |
//! | last history sweep (once the bot has swept at all) | older than 30 min | |
//! | failed events awaiting their retry | (a note only) | |
//!
//! Each row is one function in `rules`, run in this order; the worst
//! finding leads the verdict line, and among equally severe findings the
//! earlier row comes first.
//!
//! "Settled" events are those older than the grace: younger ones are in
//! flight and say nothing about health. An idle pipeline is healthy.

use std::time::Duration;

use serde::Serialize;

use crate::config::defaults;
use crate::snapshot::Snapshot;

mod render;
mod rules;
#[cfg(test)]
mod tests;

pub(crate) use render::facts;
use rules::{Judgement, RULES};

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
            grace: defaults::duration(defaults::ORPHAN_GRACE),
            ratio_unhealthy_below: 0.90,
            rate_degraded_below: 0.90,
            rate_unhealthy_below: 0.50,
            waiting_unhealthy_after: Duration::from_secs(15 * 60),
            slow_p95: Duration::from_secs(10),
            reconciler_stale_after: Duration::from_secs(10 * 60),
            listener_stale_after: defaults::duration(defaults::LISTENER_STALE_AFTER),
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

/// Judges a snapshot: runs every rule of the table in order, then puts
/// the worst finding first.
pub fn assess(s: &Snapshot, t: &Thresholds) -> Assessment {
    let mut judgement = Judgement::default();
    for rule in RULES {
        rule(s, t, &mut judgement);
    }
    let Judgement {
        mut findings,
        notes,
    } = judgement;
    // Worst first; the rules' order breaks ties (it is most-important first).
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Verdict::Healthy);
    let headline = if findings.is_empty() {
        render::healthy_headline(s)
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
}
