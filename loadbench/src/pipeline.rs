//! The system under test: the fake Discord, in this process, and the real
//! `bot` and `worker` as child processes under `chaos`'s supervisor, each
//! logging in to the database as a role of its own.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chaos::probe::Probe;
use chaos::supervisor::{Program, Supervised};
use chaos::timeline::Timeline;
use discord_sim::{Sim, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::database::{BOT_ROLE, BenchDb, WORKER_ROLE};
use crate::settings::Settings;

/// Channels the bot watches; the load is spread over them.
const CHANNELS: usize = 3;
/// How long the services may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The supervisor's restart delay. A crash shows in the report as a
/// restart, not as a stall.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// One service process and its health port.
#[derive(Debug, Clone)]
pub struct Service {
    /// The supervised process.
    pub process: Supervised,
    /// Port of `/readyz` and `/metrics`.
    pub port: u16,
}

/// The simulator and the two services.
#[derive(Debug)]
pub struct Pipeline {
    /// The fake Discord.
    pub sim: Sim,
    /// The watched channels.
    pub channels: Vec<u64>,
    /// The guild of the channels.
    pub guild: u64,
    /// The capture bot.
    pub bot: Service,
    /// The worker the scenarios start with.
    pub worker: Service,
    /// Reads `/readyz` and `/metrics`.
    pub probe: Probe,
    worker_env: Vec<(String, String)>,
    timeline: Timeline,
    log_dir: std::path::PathBuf,
    binaries: crate::settings::ServiceBinaries,
}

impl Pipeline {
    /// Starts the simulator and prepares the services; nothing is launched
    /// until [`Pipeline::launch`], so the yardsticks run on a quiet machine.
    ///
    /// # Errors
    /// When the simulator cannot start or no port is free.
    pub async fn start(db: &BenchDb, settings: &Settings) -> Result<Self> {
        let sim = Sim::start(SimConfig::default())
            .await
            .context("starting the Discord simulator")?;
        let guild = sim.create_guild("Trading");
        let channels = (0..CHANNELS)
            .map(|i| sim.create_channel(guild, &format!("aplus-setups-{i}")))
            .collect::<Result<Vec<_>, _>>()
            .context("creating the channels")?;
        let timeline = Timeline::start();
        let common = |role: &str| -> Vec<(String, String)> {
            vec![
                ("DATABASE_URL".into(), db.url_for(role)),
                ("LOG_FORMAT".into(), "json".into()),
                ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
                ("no_proxy".into(), "127.0.0.1,localhost".into()),
            ]
        };

        let bot_port = free_port()?;
        let mut bot_env = common(BOT_ROLE);
        bot_env.extend([
            ("DISCORD_TOKEN".into(), "loadbench-token".into()),
            ("DISCORD_API_URL".into(), sim.api_url()),
            (
                "APLUS_CHANNELS".into(),
                channels
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("BOT_HTTP_LISTEN".into(), format!("127.0.0.1:{bot_port}")),
        ]);
        let bot = Service {
            process: supervised(
                "bot",
                &settings.binaries.bot,
                bot_env,
                timeline,
                &settings.log_dir,
            ),
            port: bot_port,
        };
        let worker_env = common(WORKER_ROLE);
        let worker = worker_service(
            "worker",
            &settings.binaries.worker,
            &worker_env,
            timeline,
            &settings.log_dir,
        )?;
        Ok(Self {
            sim,
            channels,
            guild,
            bot,
            worker,
            probe: Probe::new(Duration::from_millis(800)).context("building the HTTP probe")?,
            worker_env,
            timeline,
            log_dir: settings.log_dir.clone(),
            binaries: settings.binaries.clone(),
        })
    }

    /// Launches the bot and the worker and waits until both are ready and
    /// the bot holds a gateway session.
    ///
    /// # Errors
    /// When they are not ready within a minute, or the run is cancelled.
    pub async fn launch(&self, cancel: &CancellationToken) -> Result<()> {
        self.bot.process.launch();
        self.worker.process.launch();
        self.wait_ready(&[&self.bot, &self.worker], cancel).await?;
        self.sim
            .wait_for_identifies(1, READY_TIMEOUT)
            .await
            .context("the bot did not identify on the gateway")?;
        Ok(())
    }

    /// A second worker process with the same settings, not yet launched
    /// (a stopped [`Supervised`] cannot be launched again).
    ///
    /// # Errors
    /// When no port is free.
    pub fn fresh_worker(&self, name: &str) -> Result<Service> {
        worker_service(
            name,
            &self.binaries.worker,
            &self.worker_env,
            self.timeline,
            &self.log_dir,
        )
    }

    /// Waits until every service in `services` answers `/readyz` with 200.
    ///
    /// # Errors
    /// When one is not ready within a minute, or the run is cancelled.
    pub async fn wait_ready(
        &self,
        services: &[&Service],
        cancel: &CancellationToken,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        for service in services {
            while !self.probe.ready(service.port).await {
                if cancel.is_cancelled() {
                    bail!("interrupted");
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "a service was not ready after {READY_TIMEOUT:?} (log: {})",
                        service.process.log_path().display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Sum of a counter's series on a service's `/metrics` whose labels
    /// contain `label` (empty: all); `None` when `/metrics` does not answer.
    pub async fn counter(&self, service: &Service, name: &str, label: &str) -> Option<f64> {
        let samples = self.probe.metrics(service.port).await?;
        Some(
            samples
                .iter()
                .filter(|s| s.name == name && s.labels.contains(label))
                .map(|s| s.value)
                .sum(),
        )
    }

    /// Stops the services (SIGTERM, then SIGKILL after a grace) and the
    /// simulator.
    pub async fn stop(&self) {
        futures::future::join_all([self.bot.process.stop(), self.worker.process.stop()]).await;
        self.sim.shutdown().await;
    }
}

fn worker_service(
    name: &str,
    path: &Path,
    common: &[(String, String)],
    timeline: Timeline,
    log_dir: &Path,
) -> Result<Service> {
    let port = free_port()?;
    let mut env = common.to_vec();
    env.extend([
        ("WORKER_HTTP_LISTEN".into(), format!("127.0.0.1:{port}")),
        ("WORKER_NAME".into(), name.to_owned()),
    ]);
    Ok(Service {
        process: supervised(name, path, env, timeline, log_dir),
        port,
    })
}

fn supervised(
    name: &str,
    path: &Path,
    env: Vec<(String, String)>,
    timeline: Timeline,
    log_dir: &Path,
) -> Supervised {
    Supervised::new(
        Program {
            name: name.to_owned(),
            path: path.to_owned(),
            args: Vec::new(),
            env,
            // The services log at their default level, as deployed, and no
            // fault point may be armed from the caller's environment.
            env_remove: vec!["FAILPOINTS".into(), "RUST_LOG".into()],
        },
        timeline,
        log_dir,
        RESTART_DELAY,
    )
}

fn free_port() -> Result<u16> {
    testkit::cluster::free_port().context("finding a free port")
}
