//! Where the service binaries are (the one place the tests look for them),
//! and the running pipeline the monitoring tests watch: a private PostgreSQL,
//! the fake Discord, and the real bot, worker and reconciler binaries
//! (this package's `chaos-*` builds of their `main.rs`).
//!
//! The worker is supervised here rather than by the stack, so a test can
//! stop it (not restart it) and start it again later.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaos::Binaries;
use chaos::probe::Probe;
use chaos::stack::{Stack, StackSpec};
use chaos::supervisor::{Program, Supervised};
use chaos::timeline::Timeline;

/// The `chaos-*` service binaries cargo built for these tests; a missing
/// one fails the test.
pub fn binaries() -> Binaries {
    let binaries = Binaries {
        bot: PathBuf::from(env!("CARGO_BIN_EXE_chaos-bot")),
        worker: PathBuf::from(env!("CARGO_BIN_EXE_chaos-worker")),
        reconciler: PathBuf::from(env!("CARGO_BIN_EXE_chaos-reconciler")),
    };
    for path in [&binaries.bot, &binaries.worker, &binaries.reconciler] {
        assert!(
            path.is_file(),
            "the service binary {} is missing: cargo builds it for this test; \
             run the test through cargo (`cargo test -p chaos`)",
            path.display()
        );
    }
    binaries
}

/// A fresh directory for one test's logs and files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    dir
}

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub stack: Stack,
    pub timeline: Timeline,
    pub worker: Supervised,
    pub worker_port: u16,
    worker_program: Program,
    log_dir: PathBuf,
    probe: Probe,
}

impl Pipeline {
    /// Starts everything and waits until every service is ready.
    pub async fn start(dir: &Path, worker_env: &[(&str, &str)]) -> Pipeline {
        let binaries = binaries();
        let timeline = Timeline::start();
        let log_dir = dir.join("logs");
        let spec = StackSpec {
            workers: 0,
            ..StackSpec::default()
        };
        let stack = Stack::start(&spec, &binaries, timeline, &log_dir)
            .await
            .expect("starting PostgreSQL, the simulator, the bot and the reconciler");
        let worker_port = testkit::cluster::free_port().expect("a free port");
        let mut env: Vec<(String, String)> = vec![
            (
                "DATABASE_URL".into(),
                stack.db.url(chaos::database::DbRole::Worker),
            ),
            ("LOG_FORMAT".into(), "json".into()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("no_proxy".into(), "127.0.0.1,localhost".into()),
            (
                "WORKER_HTTP_LISTEN".into(),
                format!("127.0.0.1:{worker_port}"),
            ),
            ("WORKER_NAME".into(), "worker-a".into()),
            ("WORKER_LEASE".into(), "8s".into()),
        ];
        env.extend(
            worker_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let worker_program = Program {
            name: "worker-a".into(),
            path: binaries.worker.clone(),
            args: Vec::new(),
            env,
            env_remove: vec!["FAILPOINTS".into(), "RUST_LOG".into()],
        };
        let pipeline = Pipeline {
            worker: supervised(&worker_program, timeline, &log_dir),
            stack,
            timeline,
            worker_port,
            worker_program,
            log_dir,
            probe: Probe::new(Duration::from_millis(800)).expect("an HTTP client"),
        };
        pipeline.worker.launch();
        pipeline.wait_ready().await;
        pipeline
    }

    /// Waits (up to a minute) until the bot, the reconciler and the worker
    /// answer `/readyz` with 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if self.stack.all_ready().await && self.probe.ready(self.worker_port).await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the pipeline is not ready after a minute; logs in {}",
                self.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the worker (it stays stopped).
    pub async fn stop_worker(&self) {
        self.worker.stop().await;
    }

    /// Starts a new worker process like the first.
    pub fn start_worker(&mut self) {
        self.worker = supervised(&self.worker_program, self.timeline, &self.log_dir);
        self.worker.launch();
    }

    /// The scrape jobs: (job name, port).
    pub fn jobs(&self) -> Vec<(&'static str, u16)> {
        vec![
            ("aplus-bot", self.stack.bot.port),
            ("aplus-worker", self.worker_port),
            ("aplus-reconciler", self.stack.reconcilers[0].port),
        ]
    }

    /// Stops every process.
    pub async fn stop(&self) {
        self.worker.stop().await;
        self.stack.stop().await;
    }
}

fn supervised(program: &Program, timeline: Timeline, log_dir: &Path) -> Supervised {
    Supervised::new(
        program.clone(),
        timeline,
        log_dir,
        Duration::from_millis(500),
    )
}

/// `GET http://127.0.0.1:<port><path>` as text.
pub async fn get_text(port: u16, path: &str) -> String {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"))
        .text()
        .await
        .expect("a text body")
}

/// `GET http://127.0.0.1:<port><path>` as text, whatever the status (the
/// dashboard answers 503 while the pipeline is unhealthy).
pub async fn get_text_any_status(port: u16, path: &str) -> String {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    match client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
    {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(error) => format!("GET {path} failed: {error}"),
    }
}
