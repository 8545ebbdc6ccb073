//! Reading the services from outside, as an operator would: `/readyz` for
//! readiness and `/metrics` for counters.
//!
//! Counters restart from zero with every process. [`CounterTotals`] keeps
//! what earlier instances had counted, so a total spans restarts (less what
//! an instance counted after its last scrape before it was killed: totals
//! are lower bounds, which is what "redelivery happened" needs).

use std::collections::HashMap;
use std::time::Duration;

/// HTTP client for the probes; loopback only, short timeouts (a paused
/// service must not hold the monitor up).
#[derive(Debug, Clone)]
pub struct Probe {
    client: reqwest::Client,
}

impl Probe {
    /// A client that ignores `HTTP_PROXY` and gives up after `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(timeout: Duration) -> reqwest::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .build()?,
        })
    }

    /// Whether `/readyz` on `port` answers 200.
    pub async fn ready(&self, port: u16) -> bool {
        match self
            .client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    /// The samples of `/metrics` on `port`, if it answers.
    pub async fn metrics(&self, port: u16) -> Option<Vec<Sample>> {
        let response = self
            .client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(parse_exposition(&response.text().await.ok()?))
    }
}

/// One line of the Prometheus text format: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// The label set as written (`source="backfill"`), empty without labels.
    pub labels: String,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The series key: name and labels.
    pub fn key(&self) -> String {
        format!("{}{{{}}}", self.name, self.labels)
    }
}

/// Parses the Prometheus text exposition format, skipping comments and
/// anything it does not understand.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(Sample {
                name: name.trim().to_owned(),
                labels: labels.to_owned(),
                value,
            })
        })
        .collect()
}

/// Counter totals of one service across its restarts.
#[derive(Debug, Default, Clone)]
pub struct CounterTotals {
    series: HashMap<String, Track>,
    /// The highest value each gauge had.
    gauge_max: HashMap<String, f64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Track {
    /// What earlier instances had counted.
    carried: f64,
    /// The latest value of the current instance.
    last: f64,
}

impl CounterTotals {
    /// Takes one scrape. A counter lower than before means a new instance.
    pub fn observe(&mut self, samples: &[Sample]) {
        for sample in samples {
            let key = sample.key();
            if sample.name.ends_with("_total") {
                let track = self.series.entry(key).or_default();
                if sample.value < track.last {
                    track.carried += track.last;
                }
                track.last = sample.value;
            } else {
                let max = self.gauge_max.entry(key).or_insert(f64::MIN);
                *max = max.max(sample.value);
            }
        }
    }

    /// A new instance started: whatever the old one counted is carried over
    /// even if the new one's first scrape is not lower (it may have caught up).
    pub fn instance_restarted(&mut self) {
        for track in self.series.values_mut() {
            track.carried += track.last;
            track.last = 0.0;
        }
    }

    /// Sum over every series of counter `name` whose labels contain `label`
    /// (empty: all of them).
    pub fn total(&self, name: &str, label: &str) -> f64 {
        self.series
            .iter()
            .filter(|(key, _)| series_matches(key, name, label))
            .map(|(_, t)| t.carried + t.last)
            // An empty float sum is -0.0; reports should say 0.
            .fold(0.0, |sum, v| sum + v)
    }

    /// The highest value seen of gauge `name` (with `label`), if any.
    pub fn gauge_max(&self, name: &str, label: &str) -> Option<f64> {
        self.gauge_max
            .iter()
            .filter(|(key, _)| series_matches(key, name, label))
            .map(|(_, v)| *v)
            .reduce(f64::max)
    }
}

fn series_matches(key: &str, name: &str, label: &str) -> bool {
    key.strip_prefix(name)
        .is_some_and(|rest| rest.starts_with('{') && rest.contains(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_counting_across_restarts() {
        let mut totals = CounterTotals::default();
        let scrape = |v: f64| {
            parse_exposition(&format!(
                "# TYPE x counter\nx_total{{source=\"backfill\"}} {v}\ny 3\n"
            ))
        };
        totals.observe(&scrape(5.0));
        totals.observe(&scrape(7.0));
        totals.observe(&scrape(2.0));
        assert_eq!(totals.total("x_total", ""), 9.0);
        assert_eq!(totals.total("x_total", "source=\"backfill\""), 9.0);
        assert_eq!(totals.total("x_total", "source=\"gateway\""), 0.0);
        assert_eq!(totals.gauge_max("y", ""), Some(3.0));
    }

    #[test]
    fn an_announced_restart_carries_the_count_over() {
        let mut totals = CounterTotals::default();
        totals.observe(&parse_exposition("x_total 5\n"));
        totals.instance_restarted();
        totals.observe(&parse_exposition("x_total 6\n"));
        assert_eq!(totals.total("x_total", ""), 11.0);
    }
}
