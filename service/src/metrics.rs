//! The metrics every service exports, declared in one table per crate.
//!
//! A metric that appears only after its first increment breaks alerting: on
//! a fresh process `rate()` has nothing to work on and `absent()` fires. So
//! each crate lists its metrics as [`Metric`]s, and [`install`] gives every
//! one its `# HELP` line, its own histogram buckets, and a series at its
//! starting value for every known label value, before anything records.
//! The same call adds `aplus_build_info{version,git}` and the `process_*`
//! metrics (CPU, memory, file descriptors; read from `/proc` at each scrape,
//! see [`refresh_process_metrics`]).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// A value that is set.
    Gauge,
    /// A distribution with buckets.
    Histogram,
}

/// Latencies in seconds, from milliseconds to minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Counts of items per batch or group, 1 to a few thousand.
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];
/// Durations of whole passes, tens of milliseconds to minutes.
pub const PASS_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// One metric: its name, kind, help text, the values of its one label (if
/// any), its starting value (gauges) and its buckets (histograms).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Full name, `aplus_...`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The label and every value it takes, each registered at start.
    pub label: Option<(&'static str, &'static [&'static str])>,
    /// A gauge's value before anything sets it.
    pub initial: f64,
    /// A histogram's buckets.
    pub buckets: &'static [f64],
}

impl Metric {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> Metric {
        Metric {
            name,
            kind: Kind::Counter,
            help,
            label: None,
            initial: 0.0,
            buckets: &[],
        }
    }

    /// A gauge starting at 0.
    pub const fn gauge(name: &'static str, help: &'static str) -> Metric {
        Metric {
            kind: Kind::Gauge,
            ..Metric::counter(name, help)
        }
    }

    /// A histogram with `buckets`.
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        buckets: &'static [f64],
    ) -> Metric {
        Metric {
            kind: Kind::Histogram,
            buckets,
            ..Metric::counter(name, help)
        }
    }

    /// The metric has one label taking `values` (all registered at start).
    pub const fn label(self, label: &'static str, values: &'static [&'static str]) -> Metric {
        Metric {
            label: Some((label, values)),
            ..self
        }
    }

    /// A gauge that starts at `value` (a ratio starts at 1: nothing wrong yet).
    pub const fn starting_at(self, value: f64) -> Metric {
        Metric {
            initial: value,
            ..self
        }
    }
}

/// The metrics every service has: build and process.
pub const COMMON: &[Metric] = &[
    Metric::gauge(
        "aplus_build_info",
        "Always 1; the labels say which version and git commit is running.",
    ),
    Metric::gauge(
        "process_cpu_seconds_total",
        "User and system CPU time the process has used, in seconds.",
    ),
    Metric::gauge(
        "process_resident_memory_bytes",
        "Resident memory of the process, in bytes.",
    ),
    Metric::gauge(
        "process_virtual_memory_bytes",
        "Virtual memory of the process, in bytes.",
    ),
    Metric::gauge("process_open_fds", "Open file descriptors of the process."),
    Metric::gauge(
        "process_max_fds",
        "The process's limit on open file descriptors.",
    ),
    Metric::gauge(
        "process_start_time_seconds",
        "When the process started, in seconds since the Unix epoch.",
    ),
    Metric::gauge("process_threads", "Threads of the process."),
];

/// The git commit this build came from (`unknown` when built without git
/// and without `APLUS_GIT_HASH`).
pub const GIT_HASH: &str = env!("APLUS_GIT_HASH");

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder with `tables`' buckets,
/// then describes and registers every metric of [`COMMON`] and `tables`.
///
/// Call it before anything records a metric: values recorded while no
/// recorder is installed are dropped. The first call wins; later calls (a
/// test running several services in one process) return the same handle
/// and register their tables too.
pub fn install(version: &'static str, tables: &[&[Metric]]) -> PrometheusHandle {
    let handle = HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                // A non-empty constant: the one case in which it fails.
                .expect("bucket list is not empty");
            for metric in tables.iter().flat_map(|t| t.iter()) {
                if metric.kind == Kind::Histogram && !metric.buckets.is_empty() {
                    builder = builder
                        .set_buckets_for_metric(
                            Matcher::Full(metric.name.to_owned()),
                            metric.buckets,
                        )
                        .expect("bucket list is not empty");
                }
            }
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global (a test harness); keep a
                // private one so `/metrics` still renders something truthful.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone();
    register(COMMON);
    for table in tables {
        register(table);
    }
    metrics::gauge!("aplus_build_info", "version" => version, "git" => GIT_HASH).set(1.0);
    refresh_process_metrics();
    handle
}

/// The installed handle; installs a recorder with only [`COMMON`] if no
/// service installed one.
pub fn handle() -> PrometheusHandle {
    match HANDLE.get() {
        Some(handle) => handle.clone(),
        None => install(env!("CARGO_PKG_VERSION"), &[]),
    }
}

/// Gives each metric its help text and its series at the starting value.
fn register(table: &[Metric]) {
    for metric in table {
        let values: &[&str] = match metric.label {
            Some((_, values)) => values,
            None => &[""],
        };
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
        // build_info carries its own labels; it is set in `install`.
        if metric.name == "aplus_build_info" {
            continue;
        }
        for value in values {
            let labels: Vec<metrics::Label> = match metric.label {
                Some((label, _)) => vec![metrics::Label::new(label, *value)],
                None => Vec::new(),
            };
            match metric.kind {
                Kind::Counter => metrics::counter!(metric.name, labels).increment(0),
                Kind::Gauge => metrics::gauge!(metric.name, labels).set(metric.initial),
                // Registering is enough: an empty histogram renders its
                // buckets at zero.
                Kind::Histogram => drop(metrics::histogram!(metric.name, labels)),
            }
        }
    }
}

/// Reads the process's CPU time, memory, threads and file descriptors from
/// `/proc/self` into the `process_*` gauges. Called before each render, so
/// the values are as fresh as the scrape. Where `/proc` is missing (not
/// Linux) the gauges keep their last values.
pub fn refresh_process_metrics() {
    let Some(process) = read_process() else {
        return;
    };
    metrics::gauge!("process_cpu_seconds_total").set(process.cpu_seconds);
    metrics::gauge!("process_resident_memory_bytes").set(process.resident_bytes);
    metrics::gauge!("process_virtual_memory_bytes").set(process.virtual_bytes);
    metrics::gauge!("process_start_time_seconds").set(process.start_time);
    metrics::gauge!("process_threads").set(process.threads);
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(entries.count() as f64);
    }
    if let Some(max) = max_fds() {
        metrics::gauge!("process_max_fds").set(max);
    }
}

#[derive(Debug)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    threads: f64,
}

/// Linux's fixed units: `USER_HZ` is 100 on every architecture the kernel
/// exports to user space, and the services run on 4 KiB pages.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: f64 = 4096.0;

fn read_process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last `)`. The first of them is field 3 (`state`).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let cpu_seconds = (field(14)? + field(15)?) / TICKS_PER_SECOND;
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)?;
    let resident_bytes = field(24)? * PAGE_SIZE;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    Some(Process {
        cpu_seconds,
        resident_bytes,
        virtual_bytes,
        start_time: boot_time + start_ticks / TICKS_PER_SECOND,
        threads,
    })
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Metric] = &[
        Metric::counter("aplus_test_things_total", "Things seen, by colour.")
            .label("colour", &["red", "blue"]),
        Metric::gauge("aplus_test_ratio", "A ratio.").starting_at(1.0),
        Metric::histogram("aplus_test_batch_size", "Items per batch.", SIZE_BUCKETS),
    ];

    #[test]
    fn every_declared_metric_is_exported_with_help_before_anything_records() {
        let text = install("9.9.9", &[TABLE]).render();
        assert!(
            text.contains("# HELP aplus_test_things_total Things seen, by colour."),
            "{text}"
        );
        assert!(
            text.contains("aplus_test_things_total{colour=\"red\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("aplus_test_things_total{colour=\"blue\"} 0"),
            "{text}"
        );
        assert!(text.contains("aplus_test_ratio 1"), "{text}");
        // The buckets are the first installer's (another test in this
        // process may have installed first); the series is there either way.
        assert!(text.contains("aplus_test_batch_size_count 0"), "{text}");
        assert!(
            text.contains(&format!(
                "aplus_build_info{{version=\"9.9.9\",git=\"{GIT_HASH}\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains("# HELP process_resident_memory_bytes"),
            "{text}"
        );
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("resident memory exported");
        assert!(rss > 1_000_000.0, "{rss}");
        assert!(!GIT_HASH.is_empty());
    }
}
