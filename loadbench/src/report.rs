//! The figures of one run: as JSON, as a markdown table, and as the four
//! closing lines that sum it up.

use std::fmt::Write as _;

use serde::Serialize;

use crate::database::BenchDb;
use crate::scenarios::burst::BurstResult;
use crate::scenarios::drain::DrainResult;
use crate::scenarios::paced::PacedResult;
use crate::settings::Settings;
use crate::stats::Percentiles;
use crate::yardstick::{GROUP, Yardsticks};

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// `model name` of the first core.
    pub cpu: String,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// The server's version.
    pub postgres: String,
    /// `/proc/loadavg` when the run began: other work on the machine moves
    /// the figures.
    pub load_average: String,
}

impl Machine {
    /// Reads the machine and asks the server its version.
    pub async fn read(db: &BenchDb) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let value = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: value(&cpuinfo, "model name"),
            memory_mib: value(&meminfo, "MemTotal")
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                / 1024,
            postgres: db.server_version().await,
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// Every scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResults {
    /// The burst.
    pub burst: BurstResult,
    /// The paced runs, slowest first.
    pub paced: Vec<PacedResult>,
    /// The worker drain.
    pub drain: DrainResult,
}

/// One run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time: u64,
    /// The machine.
    pub machine: Machine,
    /// What was run.
    pub settings: Settings,
    /// The pgbench ceilings.
    pub yardsticks: Yardsticks,
    /// The pipeline's figures.
    pub scenarios: ScenarioResults,
    /// Burst end-to-end throughput / single-message ceiling.
    pub end_to_end_over_ceiling: f64,
}

impl Report {
    /// Puts the figures together.
    pub fn new(
        machine: Machine,
        settings: &Settings,
        yardsticks: Yardsticks,
        scenarios: ScenarioResults,
    ) -> Self {
        let ratio = if yardsticks.single > 0.0 {
            scenarios.burst.processed_per_s / yardsticks.single
        } else {
            0.0
        };
        Self {
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine,
            settings: settings.clone(),
            yardsticks,
            scenarios,
            end_to_end_over_ceiling: ratio,
        }
    }

    /// The paced run at `rate`, if there was one.
    fn paced_at(&self, rate: f64) -> Option<&PacedResult> {
        self.scenarios
            .paced
            .iter()
            .find(|p| (p.rate - rate).abs() < 0.5)
    }

    /// The markdown table.
    pub fn table(&self) -> String {
        let y = &self.yardsticks;
        let b = &self.scenarios.burst;
        let d = &self.scenarios.drain;
        let m = &self.machine;
        let mut rows: Vec<(String, String)> = vec![
            (
                format!("Single-message ceiling (pgbench, {} clients)", y.clients),
                format!("{} msg/s", n0(y.single)),
            ),
            (
                "Single-message ceiling (pgbench, 1 client)".into(),
                format!("{} msg/s", n0(y.single_one_client)),
            ),
            (
                format!(
                    "Grouped ceiling ({GROUP}/transaction, {} clients)",
                    y.clients
                ),
                format!("{} msg/s", n0(y.grouped)),
            ),
            (
                format!("Burst{}: stored / processed", incomplete(b.complete)),
                format!(
                    "{} / {} msg/s ({} messages)",
                    n0(b.stored_per_s),
                    n0(b.processed_per_s),
                    n0(b.messages as f64)
                ),
            ),
            (
                "Burst: stored / processed, 10-90% window".into(),
                format!(
                    "{} / {} msg/s",
                    n0(b.stored_per_s_10_90),
                    n0(b.processed_per_s_10_90)
                ),
            ),
            (
                "Burst: end-to-end / single-message ceiling".into(),
                format!("{:.2}", self.end_to_end_over_ceiling),
            ),
            (
                "Burst: dropped from memory (buffer overflow / read back from history)".into(),
                format!(
                    "{} / {}",
                    n0(b.buffer_overflow),
                    n0(b.read_back_from_history)
                ),
            ),
            ("Burst: NOTIFY failures".into(), n0(b.notify_failures)),
            (
                "Burst: bot peak RSS (VmHWM / largest sampled VmRSS)".into(),
                format!(
                    "{:.0} / {:.0} MiB",
                    b.bot_peak_rss_mib, b.bot_max_sampled_rss_mib
                ),
            ),
            (
                "Burst: CPU s per 10k messages (bot / worker / PostgreSQL)".into(),
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    b.cpu_per_10k.bot, b.cpu_per_10k.worker, b.cpu_per_10k.postgres
                ),
            ),
            (
                "Burst: statements per message (bot) / per event (worker)".into(),
                format!(
                    "{:.2} / {:.2}",
                    b.statements.bot_per_message, b.statements.worker_per_event
                ),
            ),
        ];
        for p in &self.scenarios.paced {
            let rate = n0(p.rate);
            rows.push((
                format!(
                    "{rate}/s{}: dispatch->stored p50 / p95 / p99 / max",
                    incomplete(p.complete)
                ),
                latencies(&p.stored),
            ));
            rows.push((
                format!("{rate}/s: dispatch->processed p50 / p95 / p99 / max"),
                latencies(&p.processed),
            ));
            rows.push((
                format!("{rate}/s: CPU s per 10k messages (bot / worker / PostgreSQL)"),
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    p.cpu_per_10k.bot, p.cpu_per_10k.worker, p.cpu_per_10k.postgres
                ),
            ));
            rows.push((
                format!("{rate}/s: statements per message (bot) / per event (worker)"),
                format!(
                    "{:.2} / {:.2}",
                    p.statements.bot_per_message, p.statements.worker_per_event
                ),
            ));
        }
        rows.extend([
            (
                format!("Worker drain{}", incomplete(d.complete)),
                format!(
                    "{} events/s (10-90%: {}; {} events)",
                    n0(d.events_per_s),
                    n0(d.events_per_s_10_90),
                    n0(d.events as f64)
                ),
            ),
            (
                "Worker drain: CPU s per 10k events (worker / PostgreSQL)".into(),
                format!(
                    "{:.2} / {:.2}",
                    d.cpu_per_10k.worker, d.cpu_per_10k.postgres
                ),
            ),
            (
                "Worker drain: statements per event".into(),
                format!("{:.2}", d.statements.worker_per_event),
            ),
        ]);

        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} cores ({}), {} MiB, {}; load average {} at the start; {} run\n",
            m.cores,
            m.cpu,
            n0(m.memory_mib as f64),
            m.postgres,
            m.load_average,
            if self.settings.quick { "quick" } else { "full" }
        );
        let _ = writeln!(out, "| Figure | Value |\n|---|---|");
        for (figure, value) in rows {
            let _ = writeln!(out, "| {figure} | {value} |");
        }
        out
    }

    /// The four closing lines. Plain numbers, without separators, so a
    /// script can read them.
    pub fn summary(&self) -> String {
        let b = &self.scenarios.burst;
        let p99 = self
            .paced_at(1_000.0)
            .map_or_else(|| "n/a".to_owned(), |p| format!("{:.0}", p.processed.p99));
        format!(
            "end-to-end / ceiling = {:.2}\n\
             worker drain = {:.0} events/s\n\
             p99 dispatch->processed at 1000/s = {p99} ms\n\
             burst dropped = {:.0}, bot peak RSS = {:.0} MiB",
            self.end_to_end_over_ceiling,
            self.scenarios.drain.events_per_s,
            b.dropped,
            b.bot_peak_rss_mib
        )
    }
}

fn incomplete(complete: bool) -> &'static str {
    if complete { "" } else { " (incomplete)" }
}

fn latencies(p: &Percentiles) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1} ms",
        p.p50, p.p95, p.p99, p.max
    )
}

/// A whole number with thousands separators: `40,000`.
fn n0(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::n0;

    #[test]
    fn whole_numbers_get_thousands_separators() {
        assert_eq!(n0(40_000.0), "40,000");
        assert_eq!(n0(999.4), "999");
        assert_eq!(n0(1_234_567.0), "1,234,567");
        assert_eq!(n0(0.0), "0");
    }
}
