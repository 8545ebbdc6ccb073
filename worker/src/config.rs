//! The worker's flags, each with an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service::config::parse_duration;
use service::{DatabaseArgs, TelemetryArgs};

/// Consumes outbox events and parses A+ setups.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "WORKER_HTTP_LISTEN", default_value = "127.0.0.1:9102")]
    pub http_listen: SocketAddr,

    /// Name recorded in `inbox.worker` (default: host name and process id).
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,

    /// Events claimed per batch transaction. A batch costs about ten
    /// statements whatever its size, so a backlog drains faster in large
    /// batches; at a low rate batches stay small anyway.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: u32,

    /// Consumer loops, each with its own batch transaction. While one loop
    /// waits for its commit to reach the disk, the others claim and apply:
    /// four drained a backlog about a third faster than two on two cores.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u32,

    /// How often to look for work without a notification; `0` turns polling off.
    #[arg(long, env = "WORKER_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Attempts before an event is dead.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,

    /// A batch transaction idle for longer than this (a paused or wedged
    /// worker) is ended by the server, which frees its events for others.
    #[arg(long, env = "WORKER_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How often the listener NOTIFYs itself.
    #[arg(long, env = "WORKER_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A heartbeat not back within this replaces the LISTEN connection.
    #[arg(long, env = "WORKER_HEARTBEAT_TIMEOUT", default_value = "6s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// On SIGTERM, how long the stop may take (in-flight batches, then the
    /// listener); keep it below `stopwaitsecs` and `TimeoutStopSec`.
    #[arg(long, env = "WORKER_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl WorkerConfig {
    /// The configuration with defaults and the given database, for tests.
    pub fn for_database(database: DatabaseArgs) -> Self {
        // The literal arguments are valid for every flag, so parsing cannot fail.
        let mut config =
            WorkerConfig::try_parse_from(["worker", "--database-url", "postgres://unused"])
                .expect("default worker flags parse");
        config.database = database;
        config.http_listen = "127.0.0.1:0".parse().expect("literal address");
        config
    }

    /// The name recorded in the inbox.
    pub fn worker_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "worker".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}
