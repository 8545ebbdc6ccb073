//! The capture bot: every message of the watched Discord channels goes into
//! PostgreSQL together with its outbox event, and nothing is lost while
//! Discord or the database misbehaves.
//!
//! A serenity client ([`gateway`]) hands every dispatch to the [`handler`],
//! which filters by channel ([`channels`]: an allowlist plus the threads under
//! it), converts the message ([`convert`]) and writes it through the
//! [`writer`]: a bounded queue in front of one writer task, which commits
//! what is queued as one transaction (each row with its `message.created`
//! event, via the `outbox` crate), then NOTIFYs. Edits and deletes become
//! events the same way. While PostgreSQL is unreachable the writer
//! holds writes in a bounded [`buffer`] and retries; what does not fit goes
//! to the gap [`ledger`]. On every READY and RESUMED, and after every
//! outage, the [`backfill`] pages Discord's history from the last stored id
//! of each channel (or below a ledger entry) through the bot's own [`rest`]
//! client, so whatever the gateway or the buffer dropped is read again; the
//! scheduled [`sweep`] does the same for a trailing window. Every read the
//! bot makes of `messages` is in [`reads`].
//!
//! [`Bot::build`] checks the configuration and wires the parts, and
//! [`Bot::run`] runs them until shutdown; [`ingest()`] stores one message,
//! for tests and tools. Counters ([`stats`]) are exported as `aplus_bot_*`
//! metrics.

pub mod backfill;
pub mod buffer;
pub mod channels;
pub mod config;
pub mod convert;
pub mod error;
pub mod gateway;
pub mod handler;
pub mod ingest;
pub mod ledger;
pub mod metrics;
pub mod reads;
pub mod rest;
mod run;
pub mod stats;
pub mod sweep;
pub mod writer;

pub use config::BotConfig;
pub use error::BotError;
pub use ingest::{IngestError, Ingested, ingest};
pub use run::{Bot, BotHandle, run};
pub use stats::{Rejection, StatsSnapshot};
