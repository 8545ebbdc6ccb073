//! `chaos`: runs the chaos scenarios against the real services and exits 0
//! only when every scenario passed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::settings::{default_log_root, parse_rate};
use chaos::{Binaries, Scenario, Settings};
use clap::Parser;
use service::config::parse_duration;
use tokio_util::sync::CancellationToken;

/// Runs the pipeline's services under faults and checks against ground
/// truth that no message is lost and no effect is applied twice.
#[derive(Debug, Parser)]
#[command(name = "chaos", version, about)]
struct Cli {
    /// Scenarios to run, by name or fault number (`f03`); repeat or separate
    /// with commas. Default: all.
    #[arg(long = "scenario", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Load and fault time per scenario [default: 60s; 30m with --soak].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Messages posted per second (`20/s`, `600/min`) [default: 20/s; 120/s with --soak].
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Run the soak instead of the scenarios: one long run with random
    /// faults of every scenario that can share a stack, then one summary
    /// line and the RSS of every service.
    #[arg(long, conflicts_with = "scenarios")]
    soak: bool,
    /// Multiplies the time bounds of the reliability targets (a busy machine wants 2 or 3).
    #[arg(long, default_value_t = 1.0)]
    timing_factor: f64,
    /// How long the pipeline may take to catch up after the load.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Seed of the random fault timings (printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the services' logs go [default: <data folder>/chaos/<time>].
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for scenario in Scenario::ALL {
            println!("{:<26} {}", scenario.name(), scenario.title());
        }
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The suite's own connections see the faults too; their
                // warnings are expected and would only clutter the report.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let picked = if cli.soak {
        Ok(vec![Scenario::Soak])
    } else {
        pick(&cli.scenarios)
    };
    let scenarios = match picked {
        Ok(s) => s,
        Err(message) => {
            eprintln!("chaos: {message}");
            return ExitCode::from(2);
        }
    };
    let binaries = match Binaries::locate() {
        Ok(b) => b,
        Err(message) => {
            eprintln!("chaos: {message}");
            return ExitCode::from(2);
        }
    };
    let mut settings = Settings::new(binaries, cli.logs.unwrap_or_else(default_log_root));
    let (duration, rate) = if cli.soak {
        (
            chaos::scenarios::soak::DEFAULT_DURATION,
            chaos::scenarios::soak::DEFAULT_RATE,
        )
    } else {
        (Duration::from_secs(60), 20.0)
    };
    settings.duration = cli.duration.unwrap_or(duration);
    settings.rate = cli.rate.unwrap_or(rate);
    settings.timing_factor = cli.timing_factor;
    settings.drain_timeout = if cli.soak {
        cli.drain_timeout.max(chaos::scenarios::soak::DRAIN_TIMEOUT)
    } else {
        cli.drain_timeout
    };
    if let Some(seed) = cli.seed {
        settings.seed = seed;
    }
    if !chaos::bins::FAILPOINTS_BUILT
        && std::env::var_os(chaos::bins::BIN_DIR_VAR).is_none()
        && scenarios.iter().any(|s| s.needs_failpoints())
    {
        eprintln!(
            "chaos: warning: built without the `failpoints` feature; scenarios that need a failpoint will prove nothing"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("chaos: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let json = cli.json;
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("chaos: interrupted; cleaning up the scenario in progress");
                on_signal.cancel();
            }
        });
        eprintln!(
            "chaos: {} scenarios, {:.0}s each at {}/s, seed {}, logs in {}",
            scenarios.len(),
            settings.duration.as_secs_f64(),
            settings.rate,
            settings.seed,
            settings.log_root.display()
        );
        chaos::run(&settings, &scenarios, &cancel, |report| {
            if !json {
                println!("{}", report.render());
            }
        })
        .await
    });
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("chaos: cannot write the report as JSON: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("{}", report.table());
    }
    if cli.soak {
        for scenario in &report.scenarios {
            if let Some(line) = scenario.evidence.0.get("summary").and_then(|v| v.as_str()) {
                let verdict = if scenario.passed { "PASS" } else { "FAIL" };
                println!("soak {verdict}: {line} (seed {})", report.seed);
            }
            for (key, value) in &scenario.evidence.0 {
                if key.starts_with("rss_") {
                    println!("{key}: {}", value.as_str().unwrap_or_default());
                }
            }
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scenarios named on the command line, or all of them.
fn pick(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return Ok(Scenario::ALL.to_vec());
    }
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|name| {
            Scenario::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario `{name}`; known: {}", known.join(", "))
            })
        })
        .collect()
}
