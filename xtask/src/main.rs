//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `up`: build, make sure a PostgreSQL is available (`DATABASE_URL`, or a
//!   private cluster in `.data/pg`), migrate, and run the pipeline under
//!   supervisord (with the Discord simulator when no `DISCORD_TOKEN` is set).
//! - `down`: stop what `up` started.
//! - `test`: the same database bootstrap, then every test of the workspace.
//! - `bench`: the benchmarks, each printing its figures and its baseline;
//!   `bench e2e` runs the real services end to end (see `loadbench`).
//! - `chaos`: the services under faults, checked against ground truth.
//! - `cluster`: the pipeline on many hosts (network namespaces) under host
//!   kills and partitions, with the workers' throughput per host count.

mod bench_e2e;
mod env;
mod postgres;
mod run;
mod secrets;
mod sizes;
mod supervise;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build and run the whole pipeline under supervisord.
    Up(supervise::UpArgs),
    /// Stop the pipeline and the private PostgreSQL started by `up`.
    Down,
    /// Run every test against a real PostgreSQL.
    Test {
        /// Extra arguments for the test runner (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks (long; not part of `test`). Without a subcommand:
    /// the parser and the views, as `bench views`.
    Bench(BenchArgs),
    /// Run the chaos suite (about a minute per scenario; `-- --help` for its flags).
    Chaos {
        /// Arguments for the chaos runner, e.g. `--scenario f03 --duration 30s`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the pipeline on network-namespace hosts under host faults (root;
    /// about 4 minutes). Optional argument: the log directory.
    Cluster {
        /// Arguments for the cluster runner (a log directory).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Messages loaded for the view and reconciler benchmark.
    #[arg(long, default_value = SIZES)]
    sizes: String,
}

/// Sizes of the view and reconciler benchmark.
const SIZES: &str = "100000,1000000,10000000";

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Parser throughput, then the views and a reconciler pass by size.
    Views {
        /// Messages loaded for the view and reconciler benchmark.
        #[arg(long, default_value = SIZES)]
        sizes: String,
    },
    /// The real bot and worker end to end (burst, paced loads, worker
    /// drain) beside pgbench yardsticks on a private PostgreSQL; about 12
    /// minutes, `--quick` about 4.
    E2e(bench_e2e::E2eArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match cli.task {
        Task::Up(args) => supervise::up(args),
        Task::Down => supervise::down(),
        Task::Test { args } => test(args),
        Task::Bench(args) => match args.what {
            None => bench(&args.sizes),
            Some(BenchWhat::Views { sizes }) => bench(&sizes),
            Some(BenchWhat::E2e(e2e)) => bench_e2e::run(e2e),
        },
        Task::Chaos { args } => chaos(args),
        Task::Cluster { args } => cluster(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Every test of the workspace, with a database available.
///
/// The private test cluster, when this started it, is stopped at the end,
/// also when the tests fail or are interrupted.
fn test(extra: Vec<String>) -> Result<()> {
    let _interrupted = run::outlive_interrupts();
    let (database_url, _cluster) = postgres::ensure_for_tests()?;
    postgres::drop_leftover_test_databases(&database_url);
    let mut command = if run::has_nextest() {
        let mut c = run::cargo();
        c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        c
    } else {
        let mut c = run::cargo();
        c.args(["test", "--workspace", "--no-fail-fast"]);
        c
    };
    command.args(&extra);
    env::test_environment(&mut command, &database_url);
    run::status(command, "the tests")
}

/// The benchmarks: parser throughput, then views and reconciler pass by size
/// (`src/bench_views`, built in release with its feature).
fn bench(sizes: &str) -> Result<()> {
    // Refused here rather than after the release build.
    sizes::parse_sizes(sizes).map_err(anyhow::Error::msg)?;
    let _interrupted = run::outlive_interrupts();
    let (database_url, _cluster) = postgres::ensure_for_tests()?;
    let mut parser = run::cargo();
    parser.args(["bench", "-p", "parser"]);
    run::status(parser, "the parser benchmark")?;
    let mut views = run::cargo();
    views.args([
        "run",
        "--release",
        "-p",
        "xtask",
        "--features",
        "bench-views",
        "--bin",
        "bench-views",
        "--",
        "--sizes",
        sizes,
    ]);
    env::test_environment(&mut views, &database_url);
    run::status(views, "the view and reconciler benchmark")
}

/// The chaos suite. Building the `chaos` package with its `failpoints`
/// feature builds the runner and, beside it, the bot, worker and reconciler
/// from their own sources with their fault-injection points armed (the
/// Discord simulator runs inside the runner); then the runner starts them
/// under its own supervisor, each scenario on a private PostgreSQL.
fn chaos(extra: Vec<String>) -> Result<()> {
    ensure_faketime();
    let features = ["--features", "chaos/failpoints"];
    let mut build = run::cargo();
    build.args(["build", "-p", "chaos"]).args(features);
    run::status(build, "the chaos build")?;
    let mut suite = run::cargo();
    suite
        .args(["run", "--quiet", "-p", "chaos", "--bin", "chaos"])
        .args(features)
        .arg("--")
        .args(&extra)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    run::status(suite, "the chaos suite")
}

/// The multi-host run: builds the services (as the chaos package's
/// binaries, which the runner finds beside itself) and the runner, then runs
/// it; it needs root and `ip` (installed from Debian's `iproute2` when
/// missing and this may).
fn cluster(extra: Vec<String>) -> Result<()> {
    if !run::is_root() {
        anyhow::bail!("`cargo xtask cluster` creates network namespaces: run it as root");
    }
    if !run::on_path("ip") {
        if !run::on_path("apt-get") {
            anyhow::bail!("`ip` is missing: install iproute2");
        }
        postgres::apt_install("iproute2")?;
    }
    let mut build = run::cargo();
    build.args(["build", "-p", "chaos", "--bins", "-p", "cluster"]);
    run::status(build, "the cluster build")?;
    let mut runner = run::cargo();
    runner
        .args(["run", "--quiet", "-p", "cluster", "--"])
        .args(&extra);
    run::status(runner, "the cluster run")
}

/// F15 preloads libfaketime into the services. Installs Debian's `faketime`
/// package when the library is missing and this may; otherwise F15 fails
/// and says what to install, and the other scenarios run as usual.
fn ensure_faketime() {
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime",
        "/usr/lib/aarch64-linux-gnu/faketime",
        "/usr/lib/faketime",
        "/usr/local/lib/faketime",
    ]
    .iter()
    .any(|dir| std::path::Path::new(dir).join("libfaketime.so.1").is_file());
    if found || !(run::is_root() && run::on_path("apt-get")) {
        return;
    }
    println!(
        "xtask: installing libfaketime for the clock-jump scenario (apt-get install faketime)"
    );
    let mut install = std::process::Command::new("apt-get");
    install
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "faketime",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
    if let Err(error) = run::status(install, "apt-get install faketime") {
        println!("xtask: {error:#}; f15-clock-jumps will fail until libfaketime is installed");
    }
}
