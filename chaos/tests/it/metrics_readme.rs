//! README's metrics table is true: every metric it names is exported by
//! the services it names, and every `aplus_` metric a service exports is in
//! the table. Read from the real bot, worker and reconciler's `/metrics`
//! right after start, which also proves every series exists before
//! anything happened (so `rate()` and `absent()` alerts work on a fresh
//! process) and every metric has its `# HELP`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

/// README's table: metric (with `aplus_`) -> the services that export it.
fn readme_table() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("reading README.md");
    let start = readme
        .find("| metric | service | what it says |")
        .expect("README has the metrics table");
    let mut table = BTreeMap::new();
    for line in readme[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let services: BTreeSet<String> = match cells[2] {
            "all" => ["bot", "worker", "reconciler"].map(String::from).into(),
            list => list.split(',').map(|s| s.trim().to_owned()).collect(),
        };
        for name in cells[1].split('`').skip(1).step_by(2) {
            let base = name.split('{').next().expect("a name");
            table.insert(format!("aplus_{base}"), services.clone());
        }
    }
    assert!(table.len() > 40, "the table parsed to only {table:?}");
    table
}

/// Metric names (by `# TYPE`) of a `/metrics` page, and those with `# HELP`.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    (names("# TYPE "), names("# HELP "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_readme_is_exported_and_every_exported_metric_is_in_the_readme() {
    let dir = common::test_dir("metrics-readme");
    let pipeline = common::Pipeline::start(&dir, &[]).await;
    let table = readme_table();
    let mut problems = Vec::new();
    for (service, port) in [
        ("bot", pipeline.stack.bot.port),
        ("worker", pipeline.worker_port),
        ("reconciler", pipeline.stack.reconcilers[0].port),
    ] {
        let text = common::get_text(port, "/metrics").await;
        let (types, helps) = exported(&text);
        for name in &types {
            if !helps.contains(name) {
                problems.push(format!("{service}: {name} has no # HELP"));
            }
            if name.starts_with("aplus_") && !table.get(name).is_some_and(|s| s.contains(service)) {
                problems.push(format!(
                    "{service} exports {name}, which README does not list for it"
                ));
            }
        }
        for (name, services) in &table {
            if services.contains(service) && !types.contains(name) {
                problems.push(format!(
                    "README lists {name} for {service}, which does not export it"
                ));
            }
        }
        for process in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            if !types.contains(process) {
                problems.push(format!("{service} exports no {process}"));
            }
        }
        // Each histogram has buckets of its own scale.
        let buckets: &[&str] = match service {
            "bot" => &["aplus_bot_write_group_size_bucket{le=\"2500\"}"],
            "worker" => &[
                "aplus_worker_batch_size_bucket{le=\"2500\"}",
                "aplus_worker_event_latency_seconds_bucket{le=\"0.001\"}",
            ],
            _ => &["aplus_reconciler_pass_duration_seconds_bucket{le=\"120\"}"],
        };
        for bucket in buckets {
            if !text.contains(bucket) {
                problems.push(format!("{service} has no {bucket}"));
            }
        }
        println!("{service}: {} metrics, all with # HELP", types.len());
    }
    pipeline.stop().await;
    assert!(
        problems.is_empty(),
        "README and /metrics disagree:\n{}",
        problems.join("\n")
    );
}
