//! Watches the services from outside twice a second: readiness of each and
//! of all together, counters from `/metrics` (kept across restarts), and the
//! bot's resident memory. Recovery times are read from this record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::probe::{CounterTotals, Probe};
use crate::stack::Service;
use crate::timeline::Timeline;

/// Time between two looks.
const INTERVAL: Duration = Duration::from_millis(500);

/// What one service looked like over the scenario.
#[derive(Debug, Default, Clone)]
pub struct ServiceRecord {
    /// Counters across restarts, and the highest gauge values.
    pub counters: CounterTotals,
    /// The highest resident memory seen, in KiB.
    pub max_rss_kib: u64,
    /// Resident memory samples, in KiB, on the timeline.
    pub rss_kib: Vec<(Duration, u64)>,
    starts_seen: u32,
}

/// Everything the monitor saw.
#[derive(Debug, Default, Clone)]
pub struct MonitorRecord {
    /// Whether every launched service was ready, at each look.
    pub all_ready: Vec<(Duration, bool)>,
    /// Per service, by name.
    pub services: BTreeMap<String, ServiceRecord>,
}

impl MonitorRecord {
    /// How long after `after` every service became ready and stayed ready
    /// for `stable`. `None` if that never happened.
    ///
    /// "Stayed" matters: right after a fault a service may still report the
    /// readiness it computed before, and flip a second later.
    pub fn recovered_after(&self, after: Duration, stable: Duration) -> Option<Duration> {
        let looks: Vec<&(Duration, bool)> =
            self.all_ready.iter().filter(|(t, _)| *t >= after).collect();
        for (i, (t, ready)) in looks.iter().enumerate() {
            if !ready {
                continue;
            }
            let window: Vec<_> = looks[i..]
                .iter()
                .take_while(|(u, _)| *u <= *t + stable)
                .collect();
            let covers = looks[i..].iter().any(|(u, _)| *u >= *t + stable);
            if window.iter().all(|(_, r)| *r) && covers {
                return Some(t.saturating_sub(after));
            }
        }
        None
    }

    /// A counter's total over every service whose name starts with `prefix`.
    pub fn total(&self, prefix: &str, name: &str, label: &str) -> f64 {
        self.services
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| s.counters.total(name, label))
            // An empty float sum is -0.0; reports should say 0.
            .fold(0.0, |sum, v| sum + v)
    }

    /// A gauge's highest value over services whose name starts with `prefix`.
    pub fn gauge_max(&self, prefix: &str, name: &str, label: &str) -> Option<f64> {
        self.services
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .filter_map(|(_, s)| s.counters.gauge_max(name, label))
            .reduce(f64::max)
    }
}

/// The running monitor.
#[derive(Debug)]
pub struct Monitor {
    record: Arc<Mutex<MonitorRecord>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Monitor {
    /// Starts watching `services` (those not launched yet are skipped until they are).
    pub fn start(services: Vec<Service>, probe: Probe, timeline: Timeline) -> Self {
        let record = Arc::new(Mutex::new(MonitorRecord::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(
            services,
            probe,
            timeline,
            Arc::clone(&record),
            stop.clone(),
        ));
        Self { record, stop, task }
    }

    /// A copy of the record so far.
    pub fn snapshot(&self) -> MonitorRecord {
        lock(&self.record).clone()
    }

    /// Stops watching and returns the record.
    pub async fn finish(self) -> MonitorRecord {
        self.stop.cancel();
        // The task only loops over probes; a join error would mean a panic
        // in it, and the record taken so far is still the best there is.
        let _ = self.task.await;
        lock(&self.record).clone()
    }
}

fn lock(record: &Mutex<MonitorRecord>) -> MutexGuard<'_, MonitorRecord> {
    // Every update is a plain insert, so a poisoned lock still holds a consistent record.
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn watch(
    services: Vec<Service>,
    probe: Probe,
    timeline: Timeline,
    record: Arc<Mutex<MonitorRecord>>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let launched: Vec<&Service> = services.iter().filter(|s| s.process.launched()).collect();
        let looks = futures::future::join_all(launched.iter().map(|service| {
            let probe = probe.clone();
            async move {
                let (ready, metrics) =
                    tokio::join!(probe.ready(service.port), probe.metrics(service.port));
                (ready, metrics)
            }
        }))
        .await;
        let at = timeline.now();
        let mut record = lock(&record);
        let all_ready = looks.iter().all(|(ready, _)| *ready);
        record.all_ready.push((at, all_ready));
        for (service, (_, metrics)) in launched.iter().zip(looks) {
            let entry = record.services.entry(service.name.clone()).or_default();
            let starts = service.process.starts();
            if starts > entry.starts_seen {
                if entry.starts_seen > 0 {
                    entry.counters.instance_restarted();
                }
                entry.starts_seen = starts;
            }
            if let Some(samples) = metrics {
                entry.counters.observe(&samples);
            }
            if let Some(rss) = service.process.pid().and_then(rss_kib) {
                entry.max_rss_kib = entry.max_rss_kib.max(rss);
                entry.rss_kib.push((at, rss));
            }
        }
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(looks: &[(u64, bool)]) -> MonitorRecord {
        MonitorRecord {
            all_ready: looks
                .iter()
                .map(|(ms, r)| (Duration::from_millis(*ms), *r))
                .collect(),
            services: BTreeMap::new(),
        }
    }

    #[test]
    fn recovery_waits_for_readiness_that_lasts() {
        // Ready at once (stale), flips, then ready for good at 2.0 s.
        let r = record(&[
            (1000, true),
            (1500, false),
            (2000, true),
            (2500, true),
            (3000, true),
            (4000, true),
        ]);
        let after = Duration::from_millis(1000);
        assert_eq!(
            r.recovered_after(after, Duration::from_secs(2)),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(r.recovered_after(after, Duration::from_secs(10)), None);
    }
}
