//! How a run is set up: how long each scenario loads the pipeline, how
//! fast, how much slack the time bounds get, and where things are.

use std::path::PathBuf;
use std::time::Duration;

use crate::bins::Binaries;

/// Settings shared by every scenario of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long each scenario posts messages and injects faults.
    pub duration: Duration,
    /// Messages posted per second.
    pub rate: f64,
    /// Multiplies every time bound of the reliability targets (1.0 = as
    /// written; a loaded test machine wants more slack).
    pub timing_factor: f64,
    /// How long the pipeline may take to catch up once the load stops.
    pub drain_timeout: Duration,
    /// Where each scenario's logs go (one directory per scenario).
    pub log_root: PathBuf,
    /// The service binaries.
    pub binaries: Binaries,
    /// Seed of the random fault timings (printed, so a run can be repeated).
    pub seed: u64,
}

impl Settings {
    /// Defaults: 60 s per scenario at 20 messages a second.
    pub fn new(binaries: Binaries, log_root: PathBuf) -> Self {
        Self {
            duration: Duration::from_secs(60),
            rate: 20.0,
            timing_factor: 1.0,
            drain_timeout: Duration::from_secs(90),
            log_root,
            binaries,
            seed: rand::random(),
        }
    }

    /// A time bound with the run's slack applied.
    pub fn bound(&self, target: Duration) -> Duration {
        target.mul_f64(self.timing_factor.max(1.0))
    }
}

/// Parses a rate written as `20`, `20/s` or `1200/min`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a rate such as 20/s or 600/min"))?;
    let per_second = match per {
        "s" | "sec" => value,
        "m" | "min" => value / 60.0,
        other => return Err(format!("unknown rate unit `{other}` in `{text}`")),
    };
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(format!("`{text}` is not a positive rate"));
    }
    Ok(per_second)
}

/// The default place for logs: `<data folder>/chaos/<unix time>`.
pub fn default_log_root() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    testkit::cluster::data_root()
        .join("chaos")
        .join(stamp.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_per_second_and_per_minute() {
        assert_eq!(parse_rate("20/s"), Ok(20.0));
        assert_eq!(parse_rate("20"), Ok(20.0));
        assert_eq!(parse_rate("600/min"), Ok(10.0));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/h").is_err());
    }
}
