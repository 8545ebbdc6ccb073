//! Counters a test can read or wait on.

/// Running totals since the simulator started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// WebSocket connections accepted.
    pub connections_opened: u64,
    /// WebSocket connections open now.
    pub connections_open: u64,
    /// Successful IDENTIFYs (each made a new session and sent READY).
    pub identifies: u64,
    /// IDENTIFYs refused with a close code (bad token, disallowed intents, bad shard, ...).
    pub identifies_refused: u64,
    /// Successful RESUMEs (each replayed what was missed, then sent RESUMED).
    pub resumes: u64,
    /// RESUMEs answered with INVALID_SESSION because the session was unknown or gone.
    pub resumes_refused: u64,
    /// Dispatch frames replayed after RESUMEs.
    pub replayed: u64,
    /// Sessions attached to an open connection now.
    pub sessions_connected: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Heartbeat ACKs sent.
    pub heartbeat_acks: u64,
    /// Close frames received from clients.
    pub client_closes: u64,
    /// Dispatches assigned a sequence number (one per session per event).
    pub dispatches: u64,
    /// Dispatch frames written to sockets, replays included.
    pub frames_written: u64,
    /// MESSAGE_CREATE frames written to sockets, replays included.
    pub message_creates_written: u64,
    /// Message events (create, update, delete) silently dropped by [`crate::SilentLoss`].
    pub silently_dropped: u64,
    /// REST requests received.
    pub rest_requests: u64,
    /// REST requests answered with an injected fault.
    pub rest_faults_served: u64,
}
