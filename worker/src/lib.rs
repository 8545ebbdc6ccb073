//! The worker: consumes outbox events and keeps each message's parse and
//! setups in step with the message.
//!
//! [`Worker`] is the service (`Worker::build(config)?.run(shutdown)`): a LISTEN connection (NOTIFY is only a hint), a
//! poll as the fallback, a few consumer loops claiming batches with `FOR
//! UPDATE SKIP LOCKED`, and health and metrics endpoints. [`SetupHandler`]
//! is the effect of one event: whatever its kind, it re-derives the
//! message's outcome from the message as stored now, so events may arrive in
//! any order and be delivered any number of times.

pub mod config;
pub mod handler;
pub mod metrics;
mod run;
mod store;
pub mod text;

pub use config::WorkerConfig;
pub use handler::SetupHandler;
pub use run::Worker;
