//! The one contract between the services.
//!
//! The bot records a message and its event in one transaction and NOTIFYs
//! after commit ([`record`], [`notify`]); the worker listens ([`listener`]),
//! claims events and completes each with its inbox row and its effects in one
//! transaction ([`consume`]); the reconciler repairs what fell through
//! ([`repair`]). No other crate writes SQL against `events` or `inbox`.
//!
//! Architecture invariants kept here:
//! - a message row and its `message.created` event commit together or not at all;
//! - NOTIFY is sent after commit and carries only the event id: it is a hint,
//!   never the source of truth;
//! - an event's inbox row and its effects commit together, so each event has
//!   its effects applied exactly once however often it is delivered.

pub mod consume;
mod error;
pub mod kind;
pub mod listener;
pub mod locks;
pub mod metrics;
pub mod notify;
pub mod payload;
pub mod record;
pub mod repair;
pub mod sanitize;
pub mod sql;
pub mod watermark;

pub use error::OutboxError;
pub use kind::EventKind;
// The job locks' old paths, which the reconciler uses.
pub use locks::{JobLock, LOCK_CLASS};
pub use service::retry::Backoff;

/// The NOTIFY channel for new events. The payload is the event id and nothing else.
pub const CHANNEL: &str = "events";

/// The NOTIFY channel operators use to instruct listeners (`relisten`).
pub const CONTROL_CHANNEL: &str = "events_control";
