//! The worker's flags, each with an environment variable, and their
//! defaults, written once in [`defaults`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use outbox::consume::ConsumerConfig;
use service::config::parse_duration;
use service::db::PoolSettings;
use service::{DatabaseArgs, TelemetryArgs};

/// Every flag's default, used by the flags and by
/// [`WorkerConfig::for_database`]. The consumer's own (batch size,
/// attempts, retry delays) belong to `outbox::consume::defaults`.
pub mod defaults {
    /// Address of /healthz, /readyz and /metrics.
    pub const HTTP_LISTEN: &str = "127.0.0.1:9102";
    /// Events claimed per batch transaction.
    pub const BATCH_SIZE: u32 = outbox::consume::defaults::BATCH_SIZE;
    /// Consumer loops.
    pub const CONCURRENCY: u32 = 4;
    /// How often to look for work without a notification.
    pub const POLL_INTERVAL: &str = "1s";
    /// Attempts before an event is dead.
    pub const MAX_ATTEMPTS: u32 = outbox::consume::defaults::MAX_ATTEMPTS;
    /// The server ends a batch transaction idle this long.
    pub const LEASE: &str = "30s";
    /// How often the listener NOTIFYs itself.
    pub const HEARTBEAT_INTERVAL: &str = "2s";
    /// A heartbeat not back within this replaces the LISTEN connection.
    pub const HEARTBEAT_TIMEOUT: &str = "6s";
    /// How long a stop may take: below supervisord's `stopwaitsecs` and
    /// systemd's `TimeoutStopSec` (30 s).
    pub const SHUTDOWN_TIMEOUT: &str = "20s";
}

/// Consumes outbox events and parses A+ setups.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "WORKER_HTTP_LISTEN", default_value = defaults::HTTP_LISTEN)]
    pub http_listen: SocketAddr,

    /// Name recorded in `inbox.worker` (default: host name and process id).
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,

    /// Events claimed per batch transaction. A batch costs about ten
    /// statements whatever its size, so a backlog drains faster in large
    /// batches; at a low rate batches stay small anyway.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: u32,

    /// Consumer loops, each with its own batch transaction. While one loop
    /// waits for its commit to reach the disk, the others claim and apply:
    /// four drained a backlog about a third faster than two on two cores.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = defaults::CONCURRENCY)]
    pub concurrency: u32,

    /// How often to look for work without a notification; `0` turns polling off.
    #[arg(long, env = "WORKER_POLL_INTERVAL", default_value = defaults::POLL_INTERVAL, value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Attempts before an event is dead.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", default_value_t = defaults::MAX_ATTEMPTS)]
    pub max_attempts: u32,

    /// A batch transaction idle for longer than this (a paused or wedged
    /// worker) is ended by the server, which frees its events for others.
    #[arg(long, env = "WORKER_LEASE", default_value = defaults::LEASE, value_parser = parse_duration)]
    pub lease: Duration,

    /// How often the listener NOTIFYs itself.
    #[arg(long, env = "WORKER_HEARTBEAT_INTERVAL", default_value = defaults::HEARTBEAT_INTERVAL, value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A heartbeat not back within this replaces the LISTEN connection.
    #[arg(long, env = "WORKER_HEARTBEAT_TIMEOUT", default_value = defaults::HEARTBEAT_TIMEOUT, value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// On SIGTERM, how long the stop may take (in-flight batches, then the
    /// listener); keep it below `stopwaitsecs` and `TimeoutStopSec`.
    #[arg(long, env = "WORKER_SHUTDOWN_TIMEOUT", default_value = defaults::SHUTDOWN_TIMEOUT, value_parser = parse_duration)]
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

    /// Session settings of a pool of the worker's: the lease among them, so
    /// a batch transaction left idle is ended by the server.
    pub fn pool_settings(&self, application_name: String, max_connections: u32) -> PoolSettings {
        let mut settings = PoolSettings::new(application_name, max_connections);
        settings.idle_in_transaction_timeout = Some(self.lease);
        settings
    }

    /// How the consumer loops claim and retry, recorded as `name`.
    pub fn consumer(&self, name: String) -> ConsumerConfig {
        ConsumerConfig {
            batch_size: self.batch_size,
            max_attempts: self.max_attempts,
            ..ConsumerConfig::new(name)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener's heartbeat defaults are written twice: as flags here
    /// and as `outbox::listener::ListenerConfig::default()`, which library
    /// callers use. They must say the same.
    #[test]
    fn the_heartbeat_defaults_agree_with_the_listeners_own() {
        let listener = outbox::listener::ListenerConfig::default();
        assert_eq!(
            parse_duration(defaults::HEARTBEAT_INTERVAL),
            Ok(listener.heartbeat_interval)
        );
        assert_eq!(
            parse_duration(defaults::HEARTBEAT_TIMEOUT),
            Ok(listener.heartbeat_timeout)
        );
    }
}
