//! Runtime plumbing shared by `bot`, `worker`, `reconciler` and `migration`.
//!
//! Nothing here knows about Discord or events: configuration pieces with
//! environment fallbacks ([`config`]), tracing set-up ([`telemetry`]), one
//! cancellation token for SIGTERM and Ctrl-C ([`shutdown`]), database
//! connections with the session settings the pipeline relies on ([`db`]) and
//! the start-up check that they are sessions of their own ([`pooler`]),
//! the small HTTP server for `/healthz`, `/readyz` and `/metrics` ([`http`]),
//! the metric tables every service registers at start ([`metrics`]), and
//! retrying with backoff until an operation succeeds or shutdown ([`retry`]).

pub mod config;
pub mod db;
pub mod exit;
pub mod health;
pub mod http;
pub mod metrics;
pub mod pooler;
pub mod retry;
pub mod secret;
pub mod shutdown;
pub mod telemetry;

pub use config::{DatabaseArgs, KeepaliveArgs, TelemetryArgs};
pub use health::Health;
