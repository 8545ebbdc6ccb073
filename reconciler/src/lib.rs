//! The reconciler: repairs what falls through the cracks of the outbox, and
//! gives operators the diagnostics to see it.
//!
//! NOTIFY is only a hint and a process can die between any two steps, so
//! something must sweep up after the bot and the worker. A repair pass
//! ([`run_once`]) writes the `message.created` event of any message stored
//! without one, re-fires events nobody claimed, advances the outbox
//! watermark, prunes processed history past the retention and records what
//! it did in `reconciler_runs`. It runs on a cron schedule ([`Reconciler`],
//! in [`service`]) under an advisory lock, so any number of instances can be
//! started and one acts at a time; its time horizons come from the database
//! clock, so host clock jumps change nothing it selects.
//!
//! The operators' commands live in [`tools`]: `diagnose` (one verdict line,
//! the facts, the next command), `audit` (why events were not processed),
//! `recover` (re-fire orphans or replay dead events), `relisten` (make
//! workers re-establish their LISTEN connection), and the dashboard. Every
//! default is written once, in [`config::defaults`].
//!
//! Architecture invariant: this crate reads `events` and `inbox` but never
//! writes them; every write goes through `outbox` (`repair`, `notify`,
//! `watermark`). It writes only `reconciler_runs`.

pub mod config;
mod error;
pub mod format;
pub mod horizon;
pub mod listeners;
pub mod metrics;
pub mod service;
pub mod snapshot;
mod sql;
mod stats;
pub mod sweeps;
pub mod tools;

pub use config::PassConfig;
pub use error::{Error, Result, chain};
pub use horizon::Horizons;
pub use service::pass::{PassOutcome, PassReport, run_once};
pub use service::schedule::Schedule;
pub use service::{Reconciler, ServiceConfig};
