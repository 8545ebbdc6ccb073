//! `cargo xtask bench e2e`: builds the release binaries, makes sure the
//! PostgreSQL server and pgbench are installed, then hands over to the
//! `loadbench` harness.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::{postgres, run};

/// Arguments of `bench e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// A run of a few minutes with smaller loads.
    #[arg(long)]
    quick: bool,
    /// Measure the `bot` and `worker` in this directory (say, older builds)
    /// instead of building the current tree's.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the JSON and markdown results go [default: target/bench].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Builds, checks the prerequisites, and replaces this process with the
/// harness, so that Ctrl-C reaches the harness itself and it can stop
/// everything it started.
pub fn run(args: E2eArgs) -> Result<()> {
    postgres::ensure_server_binaries()?;
    postgres::ensure_pgbench()?;
    let mut build = run::cargo();
    build.args(["build", "--release", "-p", "loadbench"]);
    if args.bin_dir.is_none() {
        build.args(["-p", "bot", "-p", "worker"]);
    }
    run::status(build, "the release build")?;

    let release = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| run::workspace_root().join("target"))
        .join("release");
    let mut harness = std::process::Command::new(release.join("loadbench"));
    harness
        .current_dir(run::workspace_root())
        .arg("--bin-dir")
        .arg(args.bin_dir.unwrap_or(release))
        .arg("--pgbench")
        .arg(postgres::PGBENCH)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    if args.quick {
        harness.arg("--quick");
    }
    if let Some(out) = args.out {
        harness.arg("--out").arg(out);
    }
    // Only returns when the harness could not be started.
    let error = harness.exec();
    bail!("starting the benchmark harness: {error}")
}
