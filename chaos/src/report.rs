//! The report, as a Jepsen checker writes it: per scenario, lost /
//! duplicated / unexpected / recovered against ground truth, the
//! invariant samples, restarts, recovery times, and every check with its
//! evidence; then one summary table. Also as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checker::{EffectCounts, Latency};
use crate::facts::{Evidence, Facts, recovery_times};
use crate::sampler::Violation;
use crate::scenarios::Scenario;
use crate::script::FaultRecord;
use crate::settings::Settings;
use crate::supervisor::Ended;
use crate::timeline::secs;
use crate::verdict::Checks;

/// How one service fared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceSummary {
    /// Restarts by the supervisor.
    pub restarts: u32,
    /// Exits the suite caused (kill -9).
    pub killed: usize,
    /// Exits by SIGABRT (failpoints).
    pub aborted: usize,
    /// Any other exit before the end.
    pub other_exits: usize,
    /// Busiest second of log output over the run.
    pub max_log_lines_per_s: u32,
    /// Mean log lines a second over the run.
    pub mean_log_lines_per_s: f64,
}

/// Recovery after one fault.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// The fault.
    pub fault: FaultRecord,
    /// Seconds from the end of the fault until every service was ready
    /// (and stayed so for 2 s); `None` if never.
    pub healthy_after_s: Option<f64>,
    /// The next fault came before the services had recovered.
    pub interrupted: bool,
}

/// The report of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Its name.
    pub name: String,
    /// What the fault is.
    pub title: String,
    /// Whether every check held.
    pub passed: bool,
    /// Why the scenario could not run, if it could not.
    pub error: Option<String>,
    /// Seconds of load.
    pub duration_s: f64,
    /// Messages per second asked for.
    pub rate: f64,
    /// Messages emitted in the watched channels (ground truth).
    pub emitted: usize,
    /// Of those, posted into history only.
    pub emitted_history_only: usize,
    /// Stored messages edited in Discord afterwards.
    pub edited: usize,
    /// Stored messages deleted in Discord afterwards.
    pub deleted: usize,
    /// Rows in `messages`.
    pub stored: i64,
    /// Emitted but not stored.
    pub lost: usize,
    /// Stored more than once.
    pub duplicated: usize,
    /// Stored but never emitted.
    pub unexpected: usize,
    /// Stored although no gateway socket ever carried them: read back from history.
    pub recovered: usize,
    /// The first lost ids, for a reproduction.
    pub lost_ids: Vec<u64>,
    /// `message.created` events, processed, unprocessed, failed, dead.
    pub events: BTreeMap<String, i64>,
    /// Effect history.
    pub effects: EffectCounts,
    /// Event latency (commit to processed), seconds.
    pub latency: Latency,
    /// Invariant samples taken.
    pub samples_taken: u64,
    /// Samples that could not be taken (database down).
    pub samples_failed: u64,
    /// Invariants seen broken.
    pub violations: Vec<Violation>,
    /// Per service.
    pub services: BTreeMap<String, ServiceSummary>,
    /// Each fault and the recovery after it.
    pub recoveries: Vec<Recovery>,
    /// Seconds until every service was ready at the start.
    pub startup_s: f64,
    /// Seconds from the end of the load until everything was stored and processed.
    pub drain_s: Option<f64>,
    /// Scenario-specific evidence.
    pub evidence: Evidence,
    /// Every check.
    pub checks: Checks,
    /// Where the logs are.
    pub log_dir: String,
}

impl ScenarioReport {
    /// The report of a scenario that ran.
    pub(crate) fn new(
        scenario: Scenario,
        facts: &Facts<'_>,
        checks: Checks,
        evidence: Evidence,
        log_dir: &Path,
    ) -> Self {
        let s = &facts.state;
        let end = facts.load_stopped_at;
        let services = facts
            .services
            .iter()
            .map(|service| {
                let exits = service.process.exits();
                let before_stop: Vec<_> = exits
                    .iter()
                    .filter(|e| e.at < end || e.ended != Ended::Code(0))
                    .collect();
                let (max, mean) = service.process.log_rate(std::time::Duration::ZERO, end);
                (
                    service.name.clone(),
                    ServiceSummary {
                        restarts: service.process.starts().saturating_sub(1),
                        killed: before_stop.iter().filter(|e| e.by_chaos).count(),
                        aborted: before_stop
                            .iter()
                            .filter(|e| !e.by_chaos && e.ended == Ended::ABORT)
                            .count(),
                        other_exits: before_stop
                            .iter()
                            .filter(|e| !e.by_chaos && e.ended != Ended::ABORT)
                            .count(),
                        max_log_lines_per_s: max,
                        mean_log_lines_per_s: (mean * 100.0).round() / 100.0,
                    },
                )
            })
            .collect();
        let recoveries = facts
            .faults
            .iter()
            .zip(recovery_times(&facts.faults, &facts.monitor))
            .map(|(fault, time)| Recovery {
                fault: fault.clone(),
                healthy_after_s: time.healthy_after.map(secs),
                interrupted: time.interrupted,
            })
            .collect();
        let events = BTreeMap::from([
            ("created".to_owned(), s.counts.created_events),
            ("processed".to_owned(), s.counts.processed),
            ("unprocessed".to_owned(), s.counts.unprocessed),
            ("failed".to_owned(), s.counts.failed),
            ("dead".to_owned(), s.counts.dead),
        ]);
        Self {
            name: scenario.name().to_owned(),
            title: scenario.title().to_owned(),
            passed: checks.all_passed(),
            error: None,
            duration_s: secs(facts.settings.duration),
            rate: facts.settings.rate,
            emitted: s.emitted,
            emitted_history_only: s.emitted_history_only,
            edited: s.changes.edited,
            deleted: s.changes.deleted,
            stored: s.counts.messages,
            lost: s.comparison.lost.len(),
            duplicated: s.comparison.duplicated.len(),
            unexpected: s.comparison.unexpected.len(),
            recovered: s.recovered,
            lost_ids: s.comparison.lost.iter().take(20).copied().collect(),
            events,
            effects: s.effects,
            latency: s.latency,
            samples_taken: facts.samples.taken,
            samples_failed: facts.samples.failed,
            violations: facts.samples.violations.clone(),
            services,
            recoveries,
            startup_s: secs(facts.startup),
            drain_s: facts.drain.map(secs),
            evidence,
            checks,
            log_dir: log_dir.display().to_string(),
        }
    }

    /// The report of a scenario that could not run.
    pub(crate) fn error(
        scenario: Scenario,
        settings: &Settings,
        log_dir: &Path,
        error: &str,
    ) -> Self {
        Self {
            name: scenario.name().to_owned(),
            title: scenario.title().to_owned(),
            passed: false,
            error: Some(error.to_owned()),
            duration_s: secs(settings.duration),
            rate: settings.rate,
            emitted: 0,
            emitted_history_only: 0,
            edited: 0,
            deleted: 0,
            stored: 0,
            lost: 0,
            duplicated: 0,
            unexpected: 0,
            recovered: 0,
            lost_ids: Vec::new(),
            events: BTreeMap::new(),
            effects: EffectCounts::default(),
            latency: Latency::default(),
            samples_taken: 0,
            samples_failed: 0,
            violations: Vec::new(),
            services: BTreeMap::new(),
            recoveries: Vec::new(),
            startup_s: 0.0,
            drain_s: None,
            evidence: Evidence::default(),
            checks: Checks::default(),
            log_dir: log_dir.display().to_string(),
        }
    }

    /// The detailed text section of this scenario.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "== {} [{verdict}]: {}", self.name, self.title);
        if let Some(error) = &self.error {
            let _ = writeln!(out, "   could not run: {error}");
            let _ = writeln!(out, "   logs: {}", self.log_dir);
            return out;
        }
        let _ = writeln!(
            out,
            "   load      {:.0}s at {}/s: {} emitted ({} history only), {} stored; {} edited and {} deleted afterwards",
            self.duration_s,
            self.rate,
            self.emitted,
            self.emitted_history_only,
            self.stored,
            self.edited,
            self.deleted
        );
        let _ = writeln!(
            out,
            "   checker   lost {}  duplicated {}  unexpected {}  recovered {}",
            self.lost, self.duplicated, self.unexpected, self.recovered
        );
        let e = |k: &str| self.events.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "   events    {} created, {} processed, {} unprocessed, {} failed, {} dead; effects {} ({} twice)",
            e("created"),
            e("processed"),
            e("unprocessed"),
            e("failed"),
            e("dead"),
            self.effects.recorded,
            self.effects.applied_twice
        );
        let _ = writeln!(
            out,
            "   samples   {} taken, {} failed (database down), {} violations",
            self.samples_taken,
            self.samples_failed,
            self.violations.len()
        );
        let _ = writeln!(
            out,
            "   timing    startup {:.1}s, drain {}, event latency p50 {:.2}s p99 {:.2}s max {:.2}s",
            self.startup_s,
            self.drain_s
                .map_or("did not finish".to_owned(), |d| format!("{d:.1}s")),
            self.latency.p50,
            self.latency.p99,
            self.latency.max
        );
        for (name, s) in &self.services {
            let _ = writeln!(
                out,
                "   {name:<13} restarts {} (killed {}, aborted {}, other {}), log lines/s max {} mean {:.2}",
                s.restarts,
                s.killed,
                s.aborted,
                s.other_exits,
                s.max_log_lines_per_s,
                s.mean_log_lines_per_s
            );
        }
        if !self.recoveries.is_empty() {
            let judged: Vec<&Recovery> =
                self.recoveries.iter().filter(|r| !r.interrupted).collect();
            let healthy: Vec<f64> = judged.iter().filter_map(|r| r.healthy_after_s).collect();
            let never = judged.len() - healthy.len();
            let interrupted = self.recoveries.len() - judged.len();
            let max = healthy.iter().copied().fold(0.0, f64::max);
            let mean = if healthy.is_empty() {
                0.0
            } else {
                healthy.iter().sum::<f64>() / healthy.len() as f64
            };
            let _ = writeln!(
                out,
                "   faults    {} ({} landed); all services healthy again after mean {mean:.1}s, max {max:.1}s{}{}",
                self.recoveries.len(),
                self.recoveries.iter().filter(|r| r.fault.landed).count(),
                if never > 0 {
                    format!(", {never} never")
                } else {
                    String::new()
                },
                if interrupted > 0 {
                    format!(" ({interrupted} cut short by the next fault)")
                } else {
                    String::new()
                }
            );
        }
        if !self.evidence.0.is_empty() {
            let items: Vec<String> = self
                .evidence
                .0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "   evidence  {}", items.join(", "));
        }
        for check in &self.checks.0 {
            let _ = writeln!(out, "   {check}");
        }
        if !self.lost_ids.is_empty() {
            let _ = writeln!(out, "   lost ids  {:?}", self.lost_ids);
        }
        let _ = writeln!(out, "   logs      {}", self.log_dir);
        out
    }
}

/// The report of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// Seed of the fault timings.
    pub seed: u64,
    /// Every scenario run.
    pub scenarios: Vec<ScenarioReport>,
}

impl SuiteReport {
    /// True when every scenario passed.
    pub fn passed(&self) -> bool {
        !self.scenarios.is_empty() && self.scenarios.iter().all(|s| s.passed)
    }

    /// Every scenario's section, then the summary table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for scenario in &self.scenarios {
            out.push_str(&scenario.render());
            out.push('\n');
        }
        out.push_str(&self.table());
        out
    }

    /// One line per scenario.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<26} {:<6} {:>7} {:>5} {:>4} {:>6} {:>6} {:>8} {:>9} {:>8} {:>8} {:>7}",
            "scenario",
            "result",
            "emitted",
            "lost",
            "dup",
            "unexp",
            "recov",
            "restarts",
            "samples",
            "healthy",
            "drain",
            "p99"
        );
        for s in &self.scenarios {
            let restarts: u32 = s.services.values().map(|v| v.restarts).sum();
            let healthy = s
                .recoveries
                .iter()
                .filter(|r| !r.interrupted)
                .filter_map(|r| r.healthy_after_s)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let _ = writeln!(
                out,
                "{:<26} {:<6} {:>7} {:>5} {:>4} {:>6} {:>6} {:>8} {:>9} {:>8} {:>8} {:>7}",
                s.name,
                if s.error.is_some() {
                    "ERROR"
                } else if s.passed {
                    "pass"
                } else {
                    "FAIL"
                },
                s.emitted,
                s.lost,
                s.duplicated,
                s.unexpected,
                s.recovered,
                restarts,
                format!("{}/{}", s.samples_taken - s.samples_failed, s.samples_taken),
                healthy.map_or("-".to_owned(), |h| format!("{h:.1}s")),
                s.drain_s.map_or("-".to_owned(), |d| format!("{d:.1}s")),
                format!("{:.2}s", s.latency.p99),
            );
        }
        let _ = writeln!(
            out,
            "healthy: worst time from a fault's end to all services ready for 2 s (faults cut short by the next one aside); samples: invariant samples taken while the database answered / all; p99: event commit-to-processed latency. Seed {}.",
            self.seed
        );
        out
    }
}
