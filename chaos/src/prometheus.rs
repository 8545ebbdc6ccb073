//! A real Prometheus for the monitoring tests: scrapes the running services
//! every second, evaluates `deploy/prometheus/rules.yml` every second, and
//! answers the HTTP query API.
//!
//! It runs from a temporary directory on a free port and is killed when
//! dropped (also when a test fails). Debian's `prometheus` package is
//! installed when missing and the process may (see `testkit::packages`).
//! The rules under test may have their `for:` durations shortened
//! ([`shorten_for`]): the expressions stay exactly those that ship.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The shipped rules.
pub fn rules_path() -> PathBuf {
    repo_root().join("deploy/prometheus/rules.yml")
}

/// The shipped Grafana board.
pub fn dashboard_path() -> PathBuf {
    repo_root().join("deploy/grafana/aplus-pipeline.json")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the chaos crate sits in the workspace")
        .to_owned()
}

/// `promtool check rules <path>`; returns its output.
///
/// # Errors
/// When promtool is missing or the rules do not pass.
pub fn check_rules(path: &Path) -> Result<String> {
    let promtool =
        testkit::packages::ensure("promtool", "prometheus").map_err(anyhow::Error::msg)?;
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(path)
        .output()
        .context("running promtool")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("promtool check rules {} failed:\n{text}", path.display());
    }
    Ok(text)
}

/// `rules` with every `for: <duration>` replaced by `for: <to>`.
pub fn shorten_for(rules: &str, to: &str) -> String {
    rules
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for:") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}for: {to}")
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
    client: reqwest::Client,
    /// Its directory (config, rules, data, log).
    pub dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `jobs` (job name, port on
    /// 127.0.0.1) and evaluating `rules` (YAML text), both every second.
    ///
    /// # Errors
    /// When it is missing and cannot be installed, or not ready in 30 s.
    pub async fn start(dir: &Path, jobs: &[(&str, u16)], rules: &str) -> Result<Self> {
        let binary =
            testkit::packages::ensure("prometheus", "prometheus").map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(dir.join("data")).context("creating the Prometheus dir")?;
        std::fs::write(dir.join("rules.yml"), rules).context("writing the rules")?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - rules.yml\nscrape_configs:\n",
        );
        for (job, port) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).context("writing the config")?;
        let port = testkit::cluster::free_port().context("finding a free port")?;
        let log = std::fs::File::create(dir.join("prometheus.log")).context("creating the log")?;
        let child = Command::new(binary)
            .current_dir(dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the log")?)
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let prometheus = Self {
            child,
            port,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .context("building the HTTP client")?,
            dir: dir.to_owned(),
        };
        let started = Instant::now();
        loop {
            let ready = prometheus
                .client
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return Ok(prometheus);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("prometheus not ready after 30 s:\n{}", prometheus.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let response = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .query(query)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("GET {path}: body"))?;
        if body["status"] != "success" {
            bail!("GET {path} {query:?}: {body}");
        }
        Ok(body["data"].clone())
    }

    /// Evaluates `expr` now; returns the result's series (an error when the
    /// expression does not evaluate).
    ///
    /// # Errors
    /// When Prometheus refuses the expression or cannot be reached.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        Ok(match &data["result"] {
            Value::Array(series) => series.clone(),
            // A scalar or string result is one value.
            other => vec![other.clone()],
        })
    }

    /// Names of the alerts pending or firing now, with their state.
    ///
    /// # Errors
    /// When Prometheus cannot be reached.
    pub async fn active_alerts(&self) -> Result<Vec<(String, String)>> {
        let data = self.get("/api/v1/alerts", &[]).await?;
        let mut alerts: Vec<(String, String)> = data["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|alert| {
                        (
                            alert["labels"]["alertname"]
                                .as_str()
                                .unwrap_or("?")
                                .to_owned(),
                            alert["state"].as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        alerts.sort();
        alerts.dedup();
        Ok(alerts)
    }

    /// Every loaded rule: (name, expression, health, last error).
    ///
    /// # Errors
    /// When Prometheus cannot be reached.
    pub async fn rules(&self) -> Result<Vec<RuleState>> {
        let data = self.get("/api/v1/rules", &[]).await?;
        let mut rules = Vec::new();
        for group in data["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                rules.push(RuleState {
                    name: rule["name"].as_str().unwrap_or("?").to_owned(),
                    kind: rule["type"].as_str().unwrap_or("?").to_owned(),
                    expr: rule["query"].as_str().unwrap_or("").to_owned(),
                    health: rule["health"].as_str().unwrap_or("?").to_owned(),
                    last_error: rule["lastError"].as_str().unwrap_or("").to_owned(),
                });
            }
        }
        Ok(rules)
    }

    /// The `up` value of every target, by job.
    ///
    /// # Errors
    /// When Prometheus cannot be reached.
    pub async fn targets_up(&self) -> Result<Vec<(String, f64)>> {
        let series = self.query("up").await?;
        Ok(series
            .iter()
            .map(|s| {
                (
                    s["metric"]["job"].as_str().unwrap_or("?").to_owned(),
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect())
    }
}

/// A rule as Prometheus reports it.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// Alert or record name.
    pub name: String,
    /// `alerting` or `recording`.
    pub kind: String,
    /// The expression.
    pub expr: String,
    /// `ok`, `err` or `unknown` (not evaluated yet).
    pub health: String,
    /// The evaluation error, if any.
    pub last_error: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The metric names an expression reads (`aplus_*`, `process_*`, `up` and
/// recording rules `aplus:*`), for checking each returns data.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            // A label name inside `{...}` or `by (...)` is never one of these
            // prefixes; a word followed by `(` is a function.
            let is_metric = word.starts_with("aplus_")
                || word.starts_with("aplus:")
                || word.starts_with("process_")
                || word == "up";
            let quoted = start > 0 && (bytes[start - 1] == b'"' || bytes[start - 1] == b'\'');
            if is_metric && !quoted && !names.iter().any(|n| n == word) {
                names.push(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_for_durations_are_shortened() {
        let rules = "  - alert: A\n    expr: x > 1\n    for: 10m\n    labels: {}\n";
        assert_eq!(
            shorten_for(rules, "2s"),
            "  - alert: A\n    expr: x > 1\n    for: 2s\n    labels: {}"
        );
    }

    #[test]
    fn metric_names_skip_functions_labels_and_strings() {
        assert_eq!(
            metric_names(
                "sum by (job) (rate(aplus_worker_events_total{outcome=\"processed\"}[5m])) / on() up{job=\"aplus_x\"} and aplus:market_open"
            ),
            vec!["aplus_worker_events_total", "up", "aplus:market_open"]
        );
    }
}
