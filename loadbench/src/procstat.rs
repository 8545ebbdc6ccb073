//! CPU time and memory of processes, read from `/proc` as `top` would.
//!
//! PostgreSQL's CPU is that of the postmaster and every child of it. A
//! backend that exits during a measurement takes its own counters with it,
//! but the postmaster reaps it and the kernel adds its time to the
//! postmaster's `cutime`/`cstime`; summing the postmaster's own and reaped
//! time with every live child's therefore counts each backend once, however
//! short-lived.

use std::fs;
use std::sync::OnceLock;

/// CPU seconds used so far by one process (user + system, its threads
/// included, not its children).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let ticks = stat_ticks(pid)?;
    Some(ticks.own as f64 / clock_ticks())
}

/// CPU seconds used so far by a PostgreSQL server: the postmaster, the
/// children it has reaped, and every live child.
pub fn server_cpu_seconds(postmaster: u32) -> Option<f64> {
    let main = stat_ticks(postmaster)?;
    let mut ticks = main.own + main.reaped;
    for pid in children_of(postmaster) {
        if let Some(child) = stat_ticks(pid) {
            ticks += child.own + child.reaped;
        }
    }
    Some(ticks as f64 / clock_ticks())
}

/// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[derive(Debug, Clone, Copy)]
struct Ticks {
    /// utime + stime.
    own: u64,
    /// cutime + cstime: children waited for.
    reaped: u64,
}

fn stat_ticks(pid: u32) -> Option<Ticks> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = fields_after_name(&stat);
    // Fields 14-17 of proc(5), counted from the state (field 3) here.
    let at = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Ticks {
        own: at(14)? + at(15)?,
        reaped: at(16)? + at(17)?,
    })
}

/// The fields after `(comm)`, which may itself hold spaces and parentheses.
fn fields_after_name(stat: &str) -> Vec<&str> {
    match stat.rfind(')') {
        Some(end) => stat[end + 1..].split_whitespace().collect(),
        None => Vec::new(),
    }
}

/// Live processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| fields_after_name(&stat).get(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "42 (postgres: aplus (x)) S 7 42 42 0 -1 4194560 1 0 0 0 11 22 33 44 20 0";
        let fields = fields_after_name(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "7");
        assert_eq!(fields[14 - 3], "11");
        assert_eq!(fields[17 - 3], "44");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        let (rss, peak) = memory_kib(pid).expect("own status is readable");
        assert!(rss > 0 && peak >= rss);
    }
}
