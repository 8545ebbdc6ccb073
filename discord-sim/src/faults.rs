//! Faults a test can inject into the gateway and the REST API.

use std::time::Duration;

/// Which gateway connections or sessions something applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every open connection (or every live session, for dispatches).
    All,
    /// Connections or sessions identified as this shard id (any shard count).
    Shard(u32),
    /// The connection or session with this session id.
    Session(String),
}

/// Something to do to a gateway connection, in order with the dispatches queued before it.
///
/// A fault reaches a connection through the same queue as its dispatches, so everything posted
/// before [`crate::Sim::inject`] is written to the socket first; that keeps tests about "what
/// was missed" deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayFault {
    /// Send a close frame with this code, then drop the connection.
    ///
    /// 4000-4003, 4005, 4008 and 1000/1001 leave the session resumable (serenity resumes);
    /// 4007 and 4009 invalidate it (serenity identifies again); 4004, 4010, 4011, 4012, 4013
    /// and 4014 also invalidate it, and serenity treats 4004, 4013 and 4014 as fatal.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// Close the TCP connection without a close frame (FIN).
    Drop,
    /// Reset the TCP connection (RST, via `SO_LINGER` 0).
    Reset,
    /// Send opcode 7 RECONNECT; the session stays resumable.
    Reconnect,
    /// Send opcode 9 INVALID_SESSION. With `resumable: false` the session is discarded at once,
    /// so dispatches made before the client identifies again reach no one and exist only in
    /// REST history.
    InvalidSession {
        /// The `d` of the opcode 9 frame.
        resumable: bool,
    },
    /// Stop acknowledging heartbeats on this connection (a "zombie" connection).
    StopHeartbeatAcks,
    /// Send opcode 1, asking the client for an immediate heartbeat.
    RequestHeartbeat,
    /// Send this text frame verbatim (for payloads that are not even JSON).
    RawFrame(String),
}

/// Silent loss of message dispatches on live, healthy sessions: Discord sometimes stops
/// delivering guild `MESSAGE_CREATE`s while the socket and its heartbeats look fine.
///
/// A dropped event is decided once, for every session: it gets no sequence number and no
/// place in any replay buffer (so a RESUME does not bring it back), no close and no reconnect
/// follow, and the ground truth still records the message, its edit or its delete. Only REST
/// history has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SilentLoss {
    /// Fraction of `MESSAGE_CREATE`, `MESSAGE_UPDATE` and `MESSAGE_DELETE` events dropped, 0 to 1.
    pub rate: f64,
    /// Seed of the draws, so a run can be repeated.
    pub seed: u64,
}

/// What to answer instead of the real response to a REST call.
#[derive(Debug, Clone, PartialEq)]
pub enum RestFault {
    /// 429 with `Retry-After` (whole seconds, rounded up), the `X-RateLimit-*` headers and the
    /// JSON body `{"message", "retry_after", "global"}`.
    RateLimited {
        /// Seconds, as in the body's `retry_after`.
        retry_after: f64,
        /// Whether this is the global limit (`X-RateLimit-Global: true`, scope `global`).
        global: bool,
    },
    /// This HTTP status with a Discord-style JSON body (`{"message": "...", "code": 0}`).
    Status(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
}

/// A queued REST fault: applies to the next `remaining` matching calls.
#[derive(Debug, Clone)]
pub(crate) struct RestFaultRule {
    pub fault: RestFault,
    pub remaining: u32,
    /// Only calls whose path contains this string match.
    pub path_contains: Option<String>,
}

/// Whether a server-sent close code ends the session (no resume possible).
#[must_use]
pub(crate) fn close_invalidates_session(code: u16) -> bool {
    matches!(code, 4004 | 4007 | 4009 | 4010 | 4011 | 4012 | 4013 | 4014)
}
