//! [`SimConfig`]: the settings of a simulator and their defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::message::Author;

/// Settings of a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free one. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Host name put in the URLs handed out (`/gateway`'s `url`, [`Sim::api_url`]); default
    /// the bound address (loopback when bound to an unspecified address).
    pub advertised_host: Option<String>,
    /// `heartbeat_interval` sent in HELLO. Default 41.25 s, as Discord. Shorter intervals make
    /// serenity notice unacknowledged heartbeats sooner.
    pub heartbeat_interval: Duration,
    /// The bot's own user (READY, `/users/@me`).
    pub bot: Author,
    /// Application id in READY.
    pub application_id: u64,
    /// `shards` in `/gateway/bot`.
    pub recommended_shards: u32,
    /// `session_start_limit.max_concurrency` in `/gateway/bot`: how many shards may identify
    /// in one 5-second window (one per bucket `shard_id % max_concurrency`). Default 1.
    pub max_concurrency: u32,
    /// A token that REST answers with 401 and IDENTIFY with close 4004.
    pub bad_token: Option<String>,
    /// Intent bits whose request in IDENTIFY is answered with close 4014 (e.g. the privileged
    /// MESSAGE_CONTENT bit when "the developer portal switch is off").
    pub disallowed_intents: u64,
    /// How long a disconnected session stays resumable. Default 120 s.
    pub resume_window: Duration,
    /// Dispatches kept per session for replay. Default 100 000.
    pub replay_buffer: usize,
    /// REST calls kept for [`Sim::rest_calls`]. Default 10 000.
    pub rest_log_limit: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertised_host: None,
            heartbeat_interval: Duration::from_millis(41_250),
            bot: Author::bot(1_100_000_000_000_000_001, "capture-bot"),
            application_id: 1_100_000_000_000_000_001,
            recommended_shards: 1,
            max_concurrency: 1,
            bad_token: None,
            disallowed_intents: 0,
            resume_window: Duration::from_secs(120),
            replay_buffer: 100_000,
            rest_log_limit: 10_000,
        }
    }
}
