//! `cargo xtask up` and `down`: the pipeline under supervisord.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use testkit::cluster;

use crate::{postgres, run, secrets};

/// Flags of `cargo xtask up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Start in the background and return (stop with `cargo xtask down`).
    #[arg(long)]
    detach: bool,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
    /// Seconds between the simulator's demo A+ posts (no-token mode).
    #[arg(long, default_value_t = 20)]
    demo_interval: u64,
}

const BINARIES: [&str; 5] = ["bot", "worker", "reconciler", "migration", "discord-sim"];

fn state_dir() -> PathBuf {
    cluster::data_root().join("run")
}

/// Builds, prepares the database, and runs supervisord.
pub fn up(args: UpArgs) -> Result<()> {
    let mut build = run::cargo();
    build.arg("build");
    if !args.debug {
        build.arg("--release");
    }
    for bin in BINARIES {
        build.args(["-p", bin]);
    }
    run::status(build, "the build")?;
    let bin_dir =
        run::workspace_root()
            .join("target")
            .join(if args.debug { "debug" } else { "release" });

    let db = postgres::ensure_for_pipeline()?;
    let roles = prepare_roles(&db, &bin_dir)?;
    let mut migrate = Command::new(bin_dir.join("migration"));
    migrate
        .args(["up", "--wait-for-database", "30s"])
        .env_remove("DATABASE_URL")
        .env(
            "DATABASE_URL_FILE",
            secrets::path(&format!("{}.url", roles.owner)),
        );
    run::status(migrate, "the migrations")?;

    let supervisord = supervisord()?;
    let state = state_dir();
    std::fs::create_dir_all(state.join("logs"))
        .with_context(|| format!("creating {}", state.display()))?;

    let token = std::env::var("DISCORD_TOKEN").unwrap_or_default();
    let token_set = !token.is_empty();
    secrets::write(
        "discord-token",
        if token_set { &token } else { "simulator-token" },
    )?;
    let mut command = Command::new(&supervisord.0);
    command.args(&supervisord.1);
    // supervisord's environment, which every program inherits, holds no
    // secret: each program is given its own files (deploy/supervisord.conf).
    for secret in [
        "DATABASE_URL",
        "DATABASE_URL_FILE",
        "DISCORD_TOKEN",
        "DISCORD_TOKEN_FILE",
        "PGPASSWORD",
    ] {
        command.env_remove(secret);
    }
    command
        .arg("-c")
        .arg(run::workspace_root().join("deploy/supervisord.conf"))
        .env("APLUS_SECRETS_DIR", secrets::dir())
        .env("APLUS_BIN_DIR", &bin_dir)
        .env("APLUS_STATE_DIR", &state)
        .env("APLUS_START_SIM", if token_set { "false" } else { "true" })
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    if !token_set {
        command
            .env("DISCORD_API_URL", "http://127.0.0.1:7878")
            .env("DISCORD_SIM_DEMO_INTERVAL", args.demo_interval.to_string())
            .env_remove("APLUS_CHANNELS")
            .env("APLUS_CHANNELS", "1372012942848954388");
    }
    command.env(
        "APLUS_SUPERVISOR_NODAEMON",
        if args.detach { "false" } else { "true" },
    );

    print_endpoints(token_set, &state, &bin_dir, &roles);
    if args.detach {
        run::status(command, "supervisord")?;
        println!("Running in the background. Stop with: cargo xtask down");
        Ok(())
    } else {
        println!("Press Ctrl-C to stop.");
        run::status(command, "supervisord")
    }
}

/// The roles the services log in as.
#[derive(Debug)]
struct Roles {
    owner: &'static str,
    reconciler: &'static str,
    /// False when `migration roles` was refused (a given `DATABASE_URL`
    /// without the right to create roles): every service then uses that URL.
    own_roles: bool,
}

/// Creates the roles with generated passwords (`migration roles`, as the
/// administrator) and writes each role's URL file. A given `DATABASE_URL`
/// whose role may not create roles keeps the old way: every service logs in
/// with it, and a warning says so.
fn prepare_roles(db: &postgres::PipelineDb, bin_dir: &Path) -> Result<Roles> {
    for role in secrets::ROLES {
        secrets::password(role)?;
    }
    let admin_file = secrets::write("admin.url", &db.admin_url)?;
    let mut roles = Command::new(bin_dir.join("migration"));
    roles
        .args(["roles", "--password-dir"])
        .arg(secrets::dir())
        .env_remove("DATABASE_URL")
        .env("DATABASE_URL_FILE", &admin_file);
    let created = match run::status(roles, "`migration roles`") {
        Ok(()) => true,
        Err(error) if !db.private => {
            println!(
                "xtask: warning: {error:#}: the role of DATABASE_URL may not create roles, so \
                 every service uses DATABASE_URL (run `migration roles` as an administrator once)"
            );
            false
        }
        Err(error) => return Err(error),
    };
    let _ = std::fs::remove_file(&admin_file);
    for role in secrets::ROLES {
        let url = if created {
            secrets::role_url(&db.admin_url, role, &secrets::password(role)?)?
        } else {
            db.admin_url.clone()
        };
        secrets::write(&format!("{role}.url"), &url)?;
    }
    Ok(Roles {
        owner: secrets::ROLES[0],
        reconciler: secrets::ROLES[3],
        own_roles: created,
    })
}

fn print_endpoints(token_set: bool, state: &Path, bin_dir: &Path, roles: &Roles) {
    println!();
    println!("A+ pipeline");
    println!("  dashboard        http://127.0.0.1:9103/");
    println!("  bot health       http://127.0.0.1:9101/readyz   metrics: /metrics");
    println!("  worker health    http://127.0.0.1:9102/readyz   metrics: /metrics");
    println!("  reconciler       http://127.0.0.1:9103/readyz   metrics: /metrics");
    if !token_set {
        println!("  Discord          simulator at http://127.0.0.1:7878 (no DISCORD_TOKEN set)");
    }
    println!("  logs             {}", state.join("logs").display());
    println!(
        "  diagnose         DATABASE_URL_FILE={} {} diagnose",
        secrets::path(&format!("{}.url", roles.reconciler)).display(),
        bin_dir.join("reconciler").display()
    );
    if roles.own_roles {
        println!(
            "  database roles   aplus_bot, aplus_worker, aplus_reconciler (passwords in {})",
            secrets::dir().display()
        );
    }
    println!();
}

/// Stops supervisord (and with it the services) and the private PostgreSQL.
pub fn down() -> Result<()> {
    let state = state_dir();
    let pid_file = state.join("supervisord.pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = pid.trim().to_owned();
        let stopped = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if stopped {
            println!("xtask: supervisord (pid {pid}) asked to stop");
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    postgres::stop_pipeline_cluster()
}

/// The supervisord command: from PATH, or from a virtualenv in `.data`
/// (installed from PyPI on first use).
fn supervisord() -> Result<(PathBuf, Vec<String>)> {
    if run::on_path("supervisord") {
        return Ok((PathBuf::from("supervisord"), Vec::new()));
    }
    let venv = cluster::data_root().join("venv");
    let bin = venv.join("bin/supervisord");
    if !bin.is_file() {
        println!("xtask: installing supervisor into {}", venv.display());
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        run::status(create, "python3 -m venv")?;
        let mut install = Command::new(venv.join("bin/pip"));
        install.args(["install", "--quiet", "supervisor"]);
        run::status(install, "pip install supervisor")?;
    }
    if !bin.is_file() {
        bail!("supervisord is not available; install the `supervisor` package");
    }
    Ok((bin, Vec::new()))
}
