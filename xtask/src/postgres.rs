//! Making sure a PostgreSQL is available.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use testkit::cluster;

use crate::{run, secrets};

/// `DATABASE_URL` when set; otherwise the private test cluster, installing
/// the server package first if it is missing and we may. The second value
/// stops that cluster when dropped: only `cargo xtask up` keeps a server
/// running after the command.
pub fn ensure_for_tests() -> Result<(String, Option<StopOnDrop>)> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        println!("xtask: using DATABASE_URL");
        return Ok((url, None));
    }
    ensure_server_binaries()?;
    let cluster = cluster::shared_test_cluster().context("starting the private test PostgreSQL")?;
    println!(
        "xtask: private PostgreSQL for tests at 127.0.0.1:{} ({})",
        cluster.port,
        cluster.data_dir.display()
    );
    let url = cluster.url("postgres");
    Ok((url, Some(StopOnDrop(cluster))))
}

/// Stops a private cluster when dropped.
#[derive(Debug)]
pub struct StopOnDrop(cluster::Cluster);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.0.is_running() {
            return;
        }
        match self.0.stop(cluster::StopMode::Fast) {
            Ok(()) => println!("xtask: private PostgreSQL for tests stopped"),
            Err(error) => eprintln!("xtask: stopping the private PostgreSQL for tests: {error}"),
        }
    }
}

/// The database `cargo xtask up` runs the pipeline on.
#[derive(Debug)]
pub struct PipelineDb {
    /// An administrator's URL (a password, if any, inside).
    pub admin_url: String,
    /// True for the private cluster.
    pub private: bool,
}

/// `DATABASE_URL` when set; otherwise the pipeline's private cluster: in
/// `.data/pg`, or where the server can reach when the clone's parents are
/// closed to it. The private cluster asks every client for a password
/// (scram); the superuser's is generated once and kept in
/// `.data/secrets/postgres` (mode 0600).
pub fn ensure_for_pipeline() -> Result<PipelineDb> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(PipelineDb {
            admin_url: url,
            private: false,
        });
    }
    ensure_server_binaries()?;
    let cluster = cluster::pipeline_cluster().context("starting the private PostgreSQL")?;
    println!(
        "xtask: private PostgreSQL at 127.0.0.1:{} (data in {})",
        cluster.port,
        cluster.data_dir.display()
    );
    let password = secrets::password("postgres")?;
    if cluster
        .require_password(&password)
        .context("making the private PostgreSQL ask for passwords")?
    {
        println!(
            "xtask: the private PostgreSQL now asks every client for a password (superuser's in {})",
            secrets::dir().join("postgres").display()
        );
    }
    if !create_database(&cluster.url("postgres"), &password, "aplus") {
        bail!("cannot create the database `aplus` on the private PostgreSQL (is psql installed?)");
    }
    let mut url = url::Url::parse(&cluster.url("aplus")).context("the cluster's url")?;
    url.set_password(Some(&password))
        .map_err(|()| anyhow::anyhow!("the cluster's url has no user"))?;
    Ok(PipelineDb {
        admin_url: url.into(),
        private: true,
    })
}

/// Stops the pipeline's private cluster if it runs.
pub fn stop_pipeline_cluster() -> Result<()> {
    if cluster::find_bin_dir().is_none() {
        return Ok(());
    }
    let cluster = cluster::Cluster::new(
        cluster::server_dir("pg")?,
        0, // The port does not matter for stopping.
    )?;
    if cluster.is_running() {
        cluster.stop(cluster::StopMode::Fast)?;
        println!("xtask: private PostgreSQL stopped");
    }
    Ok(())
}

/// Installs Debian's `postgresql` package when no server binaries are found.
pub fn ensure_server_binaries() -> Result<()> {
    if cluster::find_bin_dir().is_some() {
        return Ok(());
    }
    if !(run::is_root() && run::on_path("apt-get")) {
        bail!(
            "no PostgreSQL server binaries (initdb, pg_ctl) found, and they cannot be installed \
             automatically here. Install PostgreSQL 15 or newer, or set DATABASE_URL."
        );
    }
    apt_install("postgresql")?;
    if cluster::find_bin_dir().is_none() {
        bail!("postgresql was installed but initdb is still not found");
    }
    Ok(())
}

/// Where `cargo xtask bench e2e` expects pgbench.
pub const PGBENCH: &str = "/usr/bin/pgbench";

/// Installs Debian's `postgresql-client` (which ships pgbench) when
/// `/usr/bin/pgbench` is missing.
pub fn ensure_pgbench() -> Result<()> {
    if std::path::Path::new(PGBENCH).is_file() {
        return Ok(());
    }
    if !(run::is_root() && run::on_path("apt-get")) {
        bail!(
            "no pgbench at {PGBENCH}, and it cannot be installed automatically here. \
             Install the PostgreSQL client (Debian: apt-get install postgresql-client)."
        );
    }
    apt_install("postgresql-client")?;
    if !std::path::Path::new(PGBENCH).is_file() {
        bail!("postgresql-client was installed but {PGBENCH} is still missing");
    }
    Ok(())
}

/// `apt-get update` and `apt-get install` of one Debian package.
pub fn apt_install(package: &str) -> Result<()> {
    println!("xtask: installing {package} (apt-get install {package})");
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run::status(update, "apt-get update")?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run::status(install, &format!("apt-get install {package}"))
}

fn psql() -> Option<std::path::PathBuf> {
    if run::on_path("psql") {
        return Some("psql".into());
    }
    cluster::find_bin_dir()
        .map(|dir| dir.join("psql"))
        .filter(|p| p.is_file())
}

/// Creates a database if it does not exist (needs `psql`). True when it
/// exists afterwards. The password goes in `PGPASSWORD`, not on a command line.
fn create_database(server_url: &str, password: &str, name: &str) -> bool {
    let Some(psql) = psql() else { return false };
    let exists = Command::new(&psql)
        .args([server_url, "-tAc"])
        .arg(format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))
        .env("PGPASSWORD", password)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false);
    exists
        || Command::new(&psql)
            .args([server_url, "-qc"])
            .arg(format!(r#"CREATE DATABASE "{name}""#))
            .env("PGPASSWORD", password)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Drops databases that earlier test runs left behind (best effort).
pub fn drop_leftover_test_databases(database_url: &str) {
    let Some(psql) = psql() else { return };
    let Ok(output) = Command::new(&psql)
        .args([database_url, "-tAc"])
        .arg("SELECT datname FROM pg_database WHERE datname LIKE 'aplus\\_test\\_%' OR datname LIKE 'aplus\\_tmpl\\_%'")
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&output.stdout).lines() {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let _ = Command::new(&psql)
            .args([database_url, "-qc"])
            .arg(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .stderr(std::process::Stdio::null())
            .status();
    }
}
