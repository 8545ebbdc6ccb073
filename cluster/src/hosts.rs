//! What runs on the hosts: PostgreSQL on `db`, the service binaries on the
//! bot, worker and reconciler hosts, each started with `ip netns exec` so it
//! sees only its host's network.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, anyhow};
use sea_orm::sqlx::{self, Connection as _, Executor as _, PgConnection};
use testkit::cluster::TempCluster;

use crate::net::{DB, Host};

/// The database the services use, and their role.
pub const DATABASE: &str = "aplus_cluster";
const SERVICE_ROLE: &str = "aplus_app";

/// What the services' role may do: everything on the pipeline's tables,
/// nothing beyond.
const SERVICE_GRANTS: &str = r#"
GRANT ALL ON ALL TABLES IN SCHEMA public TO aplus_app;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO aplus_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO aplus_app;
-- pipeline_health counts LISTEN sessions of every role only with this.
GRANT pg_read_all_stats TO aplus_app;
"#;

/// Runs `f` on a thread that has entered `host`'s network namespace, so
/// what it starts (a server) lives on that host.
fn on_host<T: Send + 'static>(
    host: Host,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(move || {
        let netns = File::open(format!("/var/run/netns/{}", host.netns()))
            .with_context(|| format!("opening the namespace of {}", host.name))?;
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering the namespace of {}", host.name))?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("the thread on {} panicked", host.name))?
}

/// PostgreSQL on the `db` host, with the pipeline's database migrated.
#[derive(Debug)]
pub struct Database {
    _server: TempCluster,
    port: u16,
}

impl Database {
    /// Creates the cluster on the `db` host, open to the hosts' network,
    /// the database, the services' role and the checker's effect recorder.
    pub async fn start() -> Result<Database> {
        let server = tokio::task::spawn_blocking(|| {
            on_host(DB, || {
                let listen = format!("127.0.0.1,{}", DB.ip());
                let server = TempCluster::start_with(&[
                    ("listen_addresses", listen.as_str()),
                    ("max_connections", "400"),
                ])
                .map_err(|e| anyhow!("{e}"))?;
                let hba = server.cluster.data_dir.join("pg_hba.conf");
                let mut rules = std::fs::read_to_string(&hba).context("reading pg_hba.conf")?;
                rules.push_str("host all all 10.231.0.0/24 trust\n");
                std::fs::write(&hba, rules).context("writing pg_hba.conf")?;
                server
                    .cluster
                    .stop(testkit::cluster::StopMode::Fast)
                    .map_err(|e| anyhow!("{e}"))?;
                server.cluster.start().map_err(|e| anyhow!("{e}"))?;
                Ok(server)
            })
        })
        .await??;
        let db = Database {
            port: server.cluster.port,
            _server: server,
        };
        let mut admin = db.connect_to("postgres", "aplus-cluster-admin").await?;
        for statement in [
            format!(r#"CREATE DATABASE "{DATABASE}""#),
            format!(r#"CREATE ROLE "{SERVICE_ROLE}" LOGIN"#),
        ] {
            admin
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
                .await
                .context("creating the database and the services' role")?;
        }
        let _ = admin.close().await;
        let pool = service::db::connect(
            &service::DatabaseArgs::from_url(db.admin_url()),
            &service::db::PoolSettings::new("aplus-cluster-migrate", 2),
        )?;
        migration::migrate(&pool).await.context("migrating")?;
        let _ = pool.close().await;
        let mut conn = db.connect("aplus-cluster-admin").await?;
        conn.execute(sqlx::raw_sql(chaos::database::EFFECT_RECORDER))
            .await
            .context("installing the effect recorder")?;
        conn.execute(sqlx::raw_sql(SERVICE_GRANTS))
            .await
            .context("granting the services' role")?;
        Ok(db)
    }

    /// The services' URL.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SERVICE_ROLE}@{}:{}/{DATABASE}",
            DB.ip(),
            self.port
        )
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@{}:{}/{DATABASE}", DB.ip(), self.port)
    }

    /// A connection of the run's own to the pipeline's database.
    pub async fn connect(&self, name: &str) -> Result<PgConnection> {
        self.connect_to(DATABASE, name).await
    }

    async fn connect_to(&self, database: &str, name: &str) -> Result<PgConnection> {
        let url = format!(
            "postgres://postgres@{}:{}/{database}?application_name={name}",
            DB.ip(),
            self.port
        );
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            PgConnection::connect(&url),
        )
        .await
        .context("connecting: no answer in 5 s")?
        .with_context(|| format!("connecting to {database} on the db host"))
    }
}

/// The kind of service on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bot,
    Worker,
    Reconciler,
}

/// One service process on a host; killed when dropped.
#[derive(Debug)]
pub struct Service {
    pub host: Host,
    pub kind: Kind,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    /// Describes the service; [`Service::start`] runs it.
    pub fn new(
        host: Host,
        kind: Kind,
        binary: &Path,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Service {
        Service {
            host,
            kind,
            binary: binary.to_owned(),
            env,
            log: log_dir.join(format!("{}.log", host.name)),
            child: None,
        }
    }

    /// Starts the process on its host (its log appended to `<host>.log`).
    pub fn start(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.host.netns()])
            .arg(&self.binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.kind == Kind::Reconciler {
            command.arg("run");
        }
        self.child = Some(
            command
                .spawn()
                .with_context(|| format!("starting {}", self.binary.display()))?,
        );
        Ok(())
    }

    /// Marks the process gone (the host was killed), reaping it.
    pub fn forget(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it was started and has not exited.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.forget();
    }
}
