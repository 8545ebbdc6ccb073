//! `cluster`: the pipeline on many hosts, on one machine.
//!
//! Each host is a Linux network namespace with its own address on a bridge
//! (10.231.0.0/24, only inside the namespaces the run creates, see [`net`]):
//! PostgreSQL on `db`; the Discord simulator and this run's own driver on
//! `sim`; two bot hosts, each running one shard range of four; three worker
//! hosts; two reconciler hosts. The run measures the workers' throughput
//! with one, two and three worker hosts, then injects host-level faults
//! under load (a worker host killed, a bot host killed during a burst, a
//! worker host and the lock-holding reconciler cut off from the database
//! for longer than their leases) and checks each against the simulator's
//! ground truth with the chaos suite's checker ([`run`]).
//!
//! The process started by `cargo xtask cluster` creates the network, runs
//! itself again inside the `sim` host (`--inside`), and removes every
//! namespace (and with them every link and process) when that ends, fails,
//! or is interrupted. Needs root and `ip` (iproute2).

mod hosts;
mod net;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

const INSIDE: &str = "--inside";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cluster: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match args.first().map(String::as_str) {
        Some(INSIDE) => runtime.block_on(inside(args.get(1).map(PathBuf::from))),
        Some("--help" | "-h") => {
            println!(
                "cluster [LOG_DIR]: the pipeline on network-namespace hosts under host faults \
                 (root; service binaries from APLUS_BIN_DIR)"
            );
            return ExitCode::SUCCESS;
        }
        other => runtime.block_on(outside(other.map(PathBuf::from))),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("cluster: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Creates the hosts, runs the driver on `sim`, and removes the hosts
/// whatever happens.
async fn outside(log_dir: Option<PathBuf>) -> Result<bool> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("network namespaces need root: run `cargo xtask cluster` as root");
    }
    let log_dir = log_dir.unwrap_or_else(|| std::env::temp_dir().join("aplus-cluster"));
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let network = net::Network::create().context("creating the hosts")?;
    println!(
        "cluster: {} hosts on 10.231.0.0/24 (logs in {})",
        net::hosts().len(),
        log_dir.display()
    );
    let exe = std::env::current_exe().context("finding this program")?;
    let mut driver = tokio::process::Command::new("ip")
        .args(["netns", "exec", &net::SIM.netns()])
        .arg(exe)
        .arg(INSIDE)
        .arg(&log_dir)
        .kill_on_drop(true)
        .spawn()
        .context("starting the driver on the sim host")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let status = tokio::select! {
        status = driver.wait() => Some(status.context("waiting for the driver")?),
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate.recv() => None,
    };
    let passed = match status {
        Some(status) => status.success(),
        None => {
            eprintln!("cluster: interrupted; stopping the driver and removing the hosts");
            if let Some(pid) = driver.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(Duration::from_secs(20), driver.wait())
                .await
                .is_err()
            {
                let _ = driver.kill().await;
            }
            false
        }
    };
    drop(network);
    println!("cluster: every host, link and process of the run removed");
    Ok(passed)
}

/// The driver, inside the `sim` host.
async fn inside(log_dir: Option<PathBuf>) -> Result<bool> {
    let log_dir = log_dir.context("the driver needs its log directory")?;
    let binaries = chaos::Binaries::locate().map_err(anyhow::Error::msg)?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        trigger.cancel();
    });
    run::run(&binaries, &log_dir, &cancel).await
}
