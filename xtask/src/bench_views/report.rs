//! What the benchmark prints: the machine, and the summary table of every
//! size with the growth from the smallest to the largest.

use std::time::Duration;

use outbox::sql::stmt;
use reconciler::format;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::VIEWS;

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    format::count(n)
}

/// The measurements of one size.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeResult {
    pub messages: u64,
    pub load: Duration,
    pub database_bytes: i64,
    /// Median per view, in [`VIEWS`] order.
    pub views: Vec<Duration>,
    /// Median per extra query, in the order given.
    pub queries: Vec<Duration>,
    /// Median of a steady-state pass.
    pub steady_pass: Duration,
    /// One first pass with the default retention, and what it did.
    pub first_pass: Duration,
    pub first_pass_pruned: u64,
    pub first_pass_scanned: u64,
}

pub async fn machine(db: &DatabaseConnection) -> anyhow::Result<String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB memory", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "memory unknown".to_owned());
    let row = db
        .query_one_raw(stmt(
            "SELECT current_setting('server_version') AS v, current_setting('shared_buffers') AS sb, \
                    current_setting('work_mem') AS wm",
            [],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the server settings returned no row"))?;
    let version: String = row.try_get_by("v")?;
    let shared: String = row.try_get_by("sb")?;
    let work: String = row.try_get_by("wm")?;
    Ok(format!(
        "Machine: {cpus} CPUs, {memory}; PostgreSQL {version} (shared_buffers {shared}, work_mem {work})"
    ))
}

/// The summary table: one row per query, one column per size, and the
/// growth from the smallest size to the largest.
pub fn table(results: &[SizeResult], runs: usize) -> String {
    let mut out = format!(
        "Median of {runs} runs after one warm-up, in milliseconds; growth is against the smallest size ({}).\n\n",
        results
            .first()
            .map(|r| format::count(r.messages))
            .unwrap_or_default()
    );
    out.push_str(&format!("{:<24}", "query"));
    for r in results {
        out.push_str(&format!("{:>14}", format::count(r.messages)));
    }
    out.push_str(&format!("{:>10}\n", "growth"));
    let mut row = |label: &str, pick: &dyn Fn(&SizeResult) -> Duration| {
        out.push_str(&format!("{label:<24}"));
        for r in results {
            out.push_str(&format!("{:>14}", format::millis(pick(r))));
        }
        let growth = match (results.first(), results.last()) {
            (Some(a), Some(b)) if results.len() > 1 && !pick(a).is_zero() => {
                format!("x{:.1}", pick(b).as_secs_f64() / pick(a).as_secs_f64())
            }
            _ => String::new(),
        };
        out.push_str(&format!("{growth:>10}\n"));
    };
    for (i, view) in VIEWS.iter().enumerate() {
        row(view, &|r: &SizeResult| r.views[i]);
    }
    let extra = results.first().map(|r| r.queries.len()).unwrap_or(0);
    for i in 0..extra {
        row(&format!("query {}", i + 1), &|r: &SizeResult| r.queries[i]);
    }
    row("pass (steady)", &|r: &SizeResult| r.steady_pass);
    row("pass (first, 30 days)", &|r: &SizeResult| r.first_pass);
    out.push_str(&format!("{:<24}", "load (s)"));
    for r in results {
        out.push_str(&format!("{:>14}", format!("{:.0}", r.load.as_secs_f64())));
    }
    out.push('\n');
    out.push_str(&format!("{:<24}", "database (MiB)"));
    for r in results {
        out.push_str(&format!(
            "{:>14}",
            format::count((r.database_bytes / (1 << 20)) as u64)
        ));
    }
    out.push('\n');
    out
}
