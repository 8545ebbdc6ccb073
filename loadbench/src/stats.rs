//! Summaries of latency samples and of commit-time series.

use std::time::SystemTime;

use serde::Serialize;

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples summarised.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Summarises `samples` (milliseconds, any order); zeros when empty.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            // Nearest rank: the smallest sample with at least q of them at or below it.
            let index = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[index - 1]
        };
        Self {
            count: samples.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier, which
/// only clock resolution can cause on one host).
pub fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// Rows per second: `rows / (last - first)`.
pub fn rate(rows: usize, first: SystemTime, last: SystemTime) -> f64 {
    let secs = millis_between(first, last) / 1e3;
    if secs > 0.0 { rows as f64 / secs } else { 0.0 }
}

/// Rows per second between the 10th and the 90th percentile of the commit
/// times: the steady rate, without the ramp-up and the tail.
pub fn rate_10_90(mut commits: Vec<SystemTime>) -> f64 {
    if commits.len() < 10 {
        return 0.0;
    }
    commits.sort();
    let at = |q: f64| commits[((q * commits.len() as f64) as usize).min(commits.len() - 1)];
    let (low, high) = (at(0.10), at(0.90));
    rate((commits.len() * 8) / 10, low, high)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(vec![7.0]).p99, 7.0);
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }

    #[test]
    fn the_steady_rate_ignores_the_ends() {
        let start = SystemTime::UNIX_EPOCH;
        // 100 rows, one per 10 ms, plus a straggler a minute later.
        let mut commits: Vec<SystemTime> = (0..100)
            .map(|i| start + Duration::from_millis(i * 10))
            .collect();
        commits.push(start + Duration::from_secs(60));
        let steady = rate_10_90(commits);
        assert!((90.0..=110.0).contains(&steady), "{steady}");
    }
}
