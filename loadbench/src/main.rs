//! `loadbench`: the end-to-end benchmark. Usually run as
//! `cargo xtask bench e2e [--quick] [--bin-dir DIR]`, which builds the
//! release binaries first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;
use loadbench::report::Report;
use loadbench::settings::{ServiceBinaries, Settings};
use tokio_util::sync::CancellationToken;

/// Measures the real bot and worker end to end against pgbench yardsticks
/// on a private PostgreSQL, and writes the figures to a JSON and a markdown
/// file.
#[derive(Debug, Parser)]
#[command(name = "loadbench", version, about)]
struct Cli {
    /// A run of a few minutes with smaller loads.
    #[arg(long)]
    quick: bool,
    /// Directory holding the `bot` and `worker` to measure [default: beside this program].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The pgbench executable.
    #[arg(long, default_value = "/usr/bin/pgbench")]
    pgbench: PathBuf,
    /// Where the JSON and markdown results go [default: <workspace>/target/bench].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match settings(&cli) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("loadbench: {error:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("loadbench: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("loadbench: interrupted; stopping everything it started");
                on_signal.cancel();
            }
        });
        eprintln!(
            "loadbench: {} run of {} and {}; logs in {}",
            if settings.quick { "quick" } else { "full" },
            settings.binaries.bot.display(),
            settings.binaries.worker.display(),
            settings.log_dir.display()
        );
        loadbench::run(&settings, &cancel).await
    });
    // Everything the run started is stopped by now; the runtime's drop
    // ends what is left of its tasks.
    drop(runtime);
    match result.and_then(|report| write(&report, &out_dir(&cli)).map(|path| (report, path))) {
        Ok((report, path)) => {
            println!("{}", report.table());
            println!("results: {}", path.display());
            println!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(error) if cancel.is_cancelled() => {
            eprintln!("loadbench: {error:#}");
            ExitCode::from(130)
        }
        Err(error) => {
            eprintln!("loadbench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli) -> Result<Settings> {
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("cannot tell where this program is")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let binaries = ServiceBinaries::in_dir(&bin_dir).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        cli.pgbench.is_file(),
        "no pgbench at {} (Debian: apt-get install postgresql-client; \
         `cargo xtask bench e2e` installs it when run as root)",
        cli.pgbench.display()
    );
    let stamp = unix_time();
    let log_dir = testkit::cluster::data_root()
        .join("loadbench")
        .join(stamp.to_string());
    Ok(if cli.quick {
        Settings::quick(binaries, cli.pgbench.clone(), log_dir)
    } else {
        Settings::full(binaries, cli.pgbench.clone(), log_dir)
    })
}

fn out_dir(cli: &Cli) -> PathBuf {
    cli.out.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
                crate_dir.parent().unwrap_or(crate_dir).join("target")
            })
            .join("bench")
    })
}

/// Writes `e2e-<time>.json` and `e2e-<time>.md`; returns the JSON's path.
fn write(report: &Report, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join(format!("e2e-{}.json", report.unix_time));
    let text = serde_json::to_string_pretty(report).context("serialising the report")?;
    std::fs::write(&json, text).with_context(|| format!("writing {}", json.display()))?;
    let md = json.with_extension("md");
    std::fs::write(&md, format!("{}\n{}\n", report.table(), report.summary()))
        .with_context(|| format!("writing {}", md.display()))?;
    Ok(json)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
