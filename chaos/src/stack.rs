//! The system under test: the private database, the fake Discord, and the
//! bot, worker(s) and reconciler(s) as supervised child processes wired to
//! them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use discord_sim::{NewMessage, Sim, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::bins::Binaries;
use crate::database::{ChaosDb, DbRole};
use crate::probe::Probe;
use crate::proxy::Proxy;
use crate::supervisor::{Program, Supervised};
use crate::timeline::Timeline;

/// Messages already in each channel's history before the bot first starts,
/// so the first backfill has something to read.
const INITIAL_HISTORY: usize = 10;

/// What a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The capture bot.
    Bot,
    /// An event consumer.
    Worker,
    /// The repair service.
    Reconciler,
}

/// One service: its name, health port and process.
#[derive(Debug, Clone)]
pub struct Service {
    /// What it is.
    pub role: Role,
    /// Its name in reports, logs and (for workers) `inbox.worker`.
    pub name: String,
    /// Port of `/healthz`, `/readyz` and `/metrics`, kept across restarts.
    pub port: u16,
    /// The supervised process.
    pub process: Supervised,
}

impl Service {
    /// The `application_name` of a worker's consumer sessions.
    pub fn consumer_application_name(&self) -> String {
        format!("aplus-worker {}", self.name)
    }

    /// The `application_name` of a worker's LISTEN session.
    pub fn listener_application_name(&self) -> String {
        format!("aplus-worker-listener {}", self.name)
    }
}

/// How a scenario wants the services set up: counts, and variables on top
/// of the defaults (a `FAILPOINTS` value, a shorter lease, ...).
#[derive(Debug, Clone)]
pub struct StackSpec {
    /// Worker processes.
    pub workers: usize,
    /// Reconciler processes.
    pub reconcilers: usize,
    /// Extra variables for the bot.
    pub bot_env: Vec<(String, String)>,
    /// Extra variables for every worker.
    pub worker_env: Vec<(String, String)>,
    /// Extra variables for every reconciler.
    pub reconciler_env: Vec<(String, String)>,
    /// Workers not started with the others; the scenario launches them.
    pub delayed_workers: bool,
    /// Workers reach the database through a [`Proxy`] the scenario can freeze.
    pub workers_through_proxy: bool,
    /// Server settings for every session of the services (`ALTER ROLE ... SET`).
    pub role_settings: Vec<(&'static str, &'static str)>,
}

impl Default for StackSpec {
    fn default() -> Self {
        Self {
            workers: 1,
            reconcilers: 1,
            bot_env: Vec::new(),
            worker_env: Vec::new(),
            reconciler_env: Vec::new(),
            delayed_workers: false,
            workers_through_proxy: false,
            role_settings: Vec::new(),
        }
    }
}

impl StackSpec {
    /// Adds a variable for the bot.
    pub fn bot(mut self, key: &str, value: impl Into<String>) -> Self {
        self.bot_env.push((key.to_owned(), value.into()));
        self
    }

    /// Adds a variable for every worker.
    pub fn worker(mut self, key: &str, value: impl Into<String>) -> Self {
        self.worker_env.push((key.to_owned(), value.into()));
        self
    }

    /// Adds a variable for every reconciler.
    pub fn reconciler(mut self, key: &str, value: impl Into<String>) -> Self {
        self.reconciler_env.push((key.to_owned(), value.into()));
        self
    }
}

/// Settings every scenario shares.
pub mod defaults {
    /// The lease (`WORKER_LEASE`): short, so a paused worker's events come back soon.
    pub const WORKER_LEASE_SECS: u64 = 8;
    /// The worker's fallback poll.
    pub const WORKER_POLL: &str = "1s";
    /// Reconciler passes every five seconds.
    pub const RECONCILER_SCHEDULE: &str = "*/5 * * * * *";
    /// Unclaimed events older than this are re-fired.
    pub const ORPHAN_GRACE: &str = "5s";
    /// Restart delay of the supervisor (supervisord's is about a second).
    pub const RESTART_DELAY_MS: u64 = 500;
    /// Channels watched by the bot (the last one gets only history-only posts).
    pub const CHANNELS: usize = 3;
}

/// The running system under test.
#[derive(Debug)]
pub struct Stack {
    /// The private PostgreSQL.
    pub db: ChaosDb,
    /// The fake Discord.
    pub sim: Sim,
    /// The watched channels.
    pub channels: Vec<u64>,
    /// The bot.
    pub bot: Service,
    /// The workers.
    pub workers: Vec<Service>,
    /// The reconcilers.
    pub reconcilers: Vec<Service>,
    /// Where the services' logs go.
    pub log_dir: PathBuf,
    /// The proxy between the workers and the database, if they use one.
    pub proxy: Option<Proxy>,
    probe: Probe,
}

impl Stack {
    /// Starts the database and the simulator, fills some history, and
    /// launches the services (all but delayed workers).
    ///
    /// # Errors
    /// When PostgreSQL or the simulator cannot be started.
    pub async fn start(
        spec: &StackSpec,
        binaries: &Binaries,
        timeline: Timeline,
        log_dir: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let db = ChaosDb::start().await?;
        for (setting, value) in &spec.role_settings {
            db.set_for_services(setting, value).await?;
        }
        let sim = Sim::start(SimConfig::default())
            .await
            .context("starting the Discord simulator")?;
        let guild = sim.create_guild("Trading");
        let mut channels = Vec::new();
        for index in 0..defaults::CHANNELS {
            channels.push(
                sim.create_channel(guild, &format!("aplus-setups-{index}"))
                    .context("creating a channel")?,
            );
        }
        for (index, channel) in channels.iter().enumerate() {
            for n in 0..INITIAL_HISTORY {
                sim.post_history(NewMessage::text(
                    *channel,
                    format!("posted before the bot started: channel {index}, #{n}"),
                ))
                .context("filling history")?;
            }
        }

        let restart = Duration::from_millis(defaults::RESTART_DELAY_MS);
        let common = |role: DbRole| -> Vec<(String, String)> {
            vec![
                ("DATABASE_URL".into(), db.url(role)),
                ("LOG_FORMAT".into(), "json".into()),
                ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
                ("no_proxy".into(), "127.0.0.1,localhost".into()),
            ]
        };
        let program = |name: &str, path: &Path, args: &[&str], env: Vec<(String, String)>| {
            Program {
                name: name.to_owned(),
                path: path.to_owned(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                env,
                // Only what a scenario sets may arm a failpoint, and the
                // services log at their own default level, as deployed
                // (what the log-volume checks are about).
                env_remove: vec!["FAILPOINTS".into(), "RUST_LOG".into()],
            }
        };

        let port = free_port()?;
        let mut env = common(DbRole::Bot);
        env.extend([
            ("DISCORD_TOKEN".into(), "chaos-token".into()),
            ("DISCORD_API_URL".into(), sim.api_url()),
            (
                "APLUS_CHANNELS".into(),
                channels
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("BOT_HTTP_LISTEN".into(), format!("127.0.0.1:{port}")),
            // Kept with the run's logs: a later run must not replay it.
            (
                "BOT_LEDGER_FILE".into(),
                log_dir.join("bot-gap-ledger").display().to_string(),
            ),
        ]);
        env.extend(spec.bot_env.iter().cloned());
        let bot = Service {
            role: Role::Bot,
            name: "bot".into(),
            port,
            process: Supervised::new(
                program("bot", &binaries.bot, &[], env),
                timeline,
                log_dir,
                restart,
            ),
        };

        let proxy = if spec.workers_through_proxy {
            Some(
                Proxy::start(db.addr())
                    .await
                    .context("starting the database proxy")?,
            )
        } else {
            None
        };
        let mut workers = Vec::new();
        for index in 0..spec.workers {
            let name = format!("worker-{}", char::from(b'a' + (index % 26) as u8));
            let port = free_port()?;
            let mut env = common(DbRole::Worker);
            env.extend([
                ("WORKER_HTTP_LISTEN".into(), format!("127.0.0.1:{port}")),
                ("WORKER_NAME".into(), name.clone()),
                (
                    "WORKER_LEASE".into(),
                    format!("{}s", defaults::WORKER_LEASE_SECS),
                ),
                ("WORKER_POLL_INTERVAL".into(), defaults::WORKER_POLL.into()),
            ]);
            if let Some(proxy) = &proxy {
                env.push((
                    "DATABASE_URL".into(),
                    db.url_through(proxy.port(), DbRole::Worker),
                ));
            }
            env.extend(spec.worker_env.iter().cloned());
            workers.push(Service {
                role: Role::Worker,
                process: Supervised::new(
                    program(&name, &binaries.worker, &[], env),
                    timeline,
                    log_dir,
                    restart,
                ),
                name,
                port,
            });
        }

        let mut reconcilers = Vec::new();
        for index in 0..spec.reconcilers {
            let name = format!("reconciler-{}", index + 1);
            let port = free_port()?;
            let mut env = common(DbRole::Reconciler);
            env.extend([
                ("RECONCILER_HTTP_LISTEN".into(), format!("127.0.0.1:{port}")),
                ("RECONCILER_INSTANCE".into(), name.clone()),
                (
                    "RECONCILER_SCHEDULE".into(),
                    defaults::RECONCILER_SCHEDULE.into(),
                ),
                (
                    "RECONCILER_ORPHAN_GRACE".into(),
                    defaults::ORPHAN_GRACE.into(),
                ),
            ]);
            env.extend(spec.reconciler_env.iter().cloned());
            reconcilers.push(Service {
                role: Role::Reconciler,
                process: Supervised::new(
                    program(&name, &binaries.reconciler, &["run"], env),
                    timeline,
                    log_dir,
                    restart,
                ),
                name,
                port,
            });
        }

        let stack = Self {
            db,
            sim,
            channels,
            bot,
            workers,
            reconcilers,
            log_dir: log_dir.to_owned(),
            proxy,
            probe: Probe::new(Duration::from_millis(800)).context("building the HTTP probe")?,
        };
        stack.bot.process.launch();
        if !spec.delayed_workers {
            for worker in &stack.workers {
                worker.process.launch();
            }
        }
        for reconciler in &stack.reconcilers {
            reconciler.process.launch();
        }
        Ok(stack)
    }

    /// Every service, launched or not.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        std::iter::once(&self.bot)
            .chain(self.workers.iter())
            .chain(self.reconcilers.iter())
    }

    /// Whether every launched service answers `/readyz` with 200 now.
    pub async fn all_ready(&self) -> bool {
        for service in self.services().filter(|s| s.process.launched()) {
            if !self.probe.ready(service.port).await {
                return false;
            }
        }
        true
    }

    /// Waits until every launched service is ready; returns how long it took.
    ///
    /// # Errors
    /// When they are not ready within `timeout`; names those that are not.
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Duration> {
        let started = std::time::Instant::now();
        loop {
            if self.all_ready().await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout || cancel.is_cancelled() {
                let mut not_ready = Vec::new();
                for service in self.services().filter(|s| s.process.launched()) {
                    if !self.probe.ready(service.port).await {
                        not_ready.push(format!(
                            "{} (log: {})",
                            service.name,
                            service.process.log_path().display()
                        ));
                    }
                }
                anyhow::bail!("not ready after {timeout:?}: {}", not_ready.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every service (SIGTERM, then SIGKILL) and the simulator.
    pub async fn stop(&self) {
        let mut stops = Vec::new();
        for service in self.services() {
            let process = service.process.clone();
            stops.push(async move { process.stop().await });
        }
        futures::future::join_all(stops).await;
        self.sim.shutdown().await;
    }
}

fn free_port() -> Result<u16> {
    testkit::cluster::free_port().context("finding a free port")
}
