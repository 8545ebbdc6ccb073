//! Errors of the scripting API.

use std::time::Duration;

use crate::stats::SimStats;

/// Why a scripted action on the simulator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No channel with this id exists.
    #[error("unknown channel {0}")]
    UnknownChannel(u64),
    /// No guild with this id exists.
    #[error("unknown guild {0}")]
    UnknownGuild(u64),
    /// No (undeleted) message with this id exists.
    #[error("unknown message {0}")]
    UnknownMessage(u64),
    /// The id is already taken.
    #[error("id {0} is already in use")]
    DuplicateId(u64),
    /// A thread was asked for under a channel that cannot hold threads.
    #[error("channel {0} cannot have threads")]
    NotAThreadParent(u64),
}

/// A wait on the simulator's counters ran out of time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last counters: {last:?}")]
pub struct WaitTimeout {
    /// What was awaited.
    pub what: String,
    /// How long the wait lasted.
    pub waited: Duration,
    /// The counters when it gave up.
    pub last: SimStats,
}
