//! The simulator's whole state behind one lock: guilds, channels, message history, gateway
//! sessions and connections, ground truth, REST faults and counters.
//!
//! Keeping it in one place under one `std::sync::Mutex` makes every scripted action atomic with
//! respect to the gateway: "store in history and dispatch to sessions" happens as one step, and
//! a RESUME takes its replay and attaches the new connection without a dispatch slipping in
//! between. The lock is never held across an `.await`.
//!
//! The methods are split by concern, each file one concept over the same fields:
//! [`world`] (guilds and channels), [`history`] (stored messages and history pages),
//! [`dispatch`] (routing events to sessions), [`sessions`] (connections, IDENTIFY, RESUME),
//! [`faults`] (injected gateway faults, silent loss, REST faults) and [`truth`] (what was
//! emitted and received: ground truth, frames written, the REST call log).

mod dispatch;
mod faults;
mod history;
mod sessions;
mod truth;
mod world;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::faults::{GatewayFault, RestFaultRule, SilentLoss, Target};
use crate::ground_truth::GroundTruth;
use crate::message::Author;
use crate::rest_log::RestCall;
use crate::session::{Session, intents};
use crate::snowflake::SnowflakeGenerator;
use crate::stats::SimStats;
use crate::world::{ChannelInfo, GuildInfo};

/// Event names used in more than one place.
pub(crate) const MESSAGE_CREATE: &str = "MESSAGE_CREATE";

/// What a connection task is told to do next, in order.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A dispatch frame (live or replayed).
    Frame {
        text: Utf8Bytes,
        message_id: Option<u64>,
    },
    /// A fault to act on.
    Fault(GatewayFault),
    /// The session moved to another connection; stop sending its frames here.
    Detach,
}

/// A WebSocket connection as the state sees it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub tx: UnboundedSender<Outbound>,
    pub session_id: Option<String>,
    pub shard: Option<u32>,
    pub heartbeat_acks: bool,
}

/// Which sessions a dispatch goes to.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// Discord's own routing: the shard of this guild (`None` = DM, shard 0).
    Natural(Option<u64>),
    /// Explicitly chosen sessions (duplicates across shards, raw payloads).
    Explicit(Target),
}

/// Which intent a dispatch needs.
#[derive(Debug, Clone)]
pub(crate) enum Gate {
    /// Always delivered.
    Always,
    /// Needs `GUILDS`.
    Guilds,
    /// A message event: needs `GUILD_MESSAGES` or `DIRECT_MESSAGES`; content is blanked
    /// without `MESSAGE_CONTENT` unless it is a DM, the bot's own message, or mentions the bot.
    Message {
        in_guild: bool,
        content_exempt: bool,
    },
}

impl Gate {
    /// `None` to skip the session, `Some(blank_content)` to deliver.
    fn check(&self, session_intents: u64) -> Option<bool> {
        match self {
            Self::Always => Some(false),
            Self::Guilds => (session_intents & intents::GUILDS != 0).then_some(false),
            Self::Message {
                in_guild,
                content_exempt,
            } => {
                let needed = if *in_guild {
                    intents::GUILD_MESSAGES
                } else {
                    intents::DIRECT_MESSAGES
                };
                if session_intents & needed == 0 {
                    return None;
                }
                let has_content = session_intents & intents::MESSAGE_CONTENT != 0;
                Some(*in_guild && !*content_exempt && !has_content)
            }
        }
    }
}

/// Settings the state needs from [`crate::SimConfig`].
#[derive(Debug, Clone)]
pub(crate) struct StateSettings {
    pub bot: Author,
    pub application_id: u64,
    pub gateway_url: String,
    pub bad_token: Option<String>,
    pub disallowed_intents: u64,
    pub resume_window: Duration,
    pub replay_buffer: usize,
    pub rest_log_limit: usize,
}

/// Why an IDENTIFY was refused: the close code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefuseWith(pub u16);

/// Parameters of an IDENTIFY.
#[derive(Debug, Clone)]
pub(crate) struct Identify {
    pub token: String,
    pub intents: u64,
    pub shard: [u32; 2],
}

/// How a history page is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    Latest,
    Before(u64),
    After(u64),
    Around(u64),
}

/// Why a channel cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Unknown,
    Forbidden,
}

#[derive(Debug)]
pub(crate) struct State {
    pub settings: StateSettings,
    pub started_at: DateTime<Utc>,
    ids: SnowflakeGenerator,
    guilds: BTreeMap<u64, GuildInfo>,
    channels: BTreeMap<u64, ChannelInfo>,
    /// Live (not deleted) messages per channel, REST-shaped, by id.
    messages: HashMap<u64, BTreeMap<u64, Value>>,
    /// Channel of every live message.
    message_channel: HashMap<u64, u64>,
    truth: GroundTruth,
    sessions: HashMap<String, Session>,
    connections: HashMap<u64, Connection>,
    next_connection_id: u64,
    rest_faults: VecDeque<RestFaultRule>,
    rest_calls: VecDeque<RestCall>,
    pub stats: SimStats,
    pub heartbeat_acks: bool,
    pub identify_close_code: Option<u16>,
    /// Message events dropped before any session sees them, with the draws' generator.
    silent_loss: Option<(SilentLoss, StdRng)>,
}

/// Strips the `Bot ` / `Bearer ` prefix some clients put in front of the token.
pub(crate) fn bare_token(token: &str) -> &str {
    let token = token.trim();
    token
        .strip_prefix("Bot ")
        .or_else(|| token.strip_prefix("Bearer "))
        .unwrap_or(token)
}
impl State {
    pub fn new(settings: StateSettings) -> Self {
        Self {
            settings,
            started_at: Utc::now(),
            ids: SnowflakeGenerator::new(),
            guilds: BTreeMap::new(),
            channels: BTreeMap::new(),
            messages: HashMap::new(),
            message_channel: HashMap::new(),
            truth: GroundTruth::default(),
            sessions: HashMap::new(),
            connections: HashMap::new(),
            next_connection_id: 1,
            rest_faults: VecDeque::new(),
            rest_calls: VecDeque::new(),
            stats: SimStats::default(),
            heartbeat_acks: true,
            identify_close_code: None,
            silent_loss: None,
        }
    }

    /// A fresh snowflake for "now".
    pub fn new_id(&self) -> u64 {
        self.ids.next_now()
    }

    pub fn bad_token(&self, token: &str) -> bool {
        self.settings
            .bad_token
            .as_deref()
            .is_some_and(|bad| bare_token(bad) == bare_token(token))
    }
}

/// Reads a snowflake field that may be a string or a number.
fn raw_snowflake(value: &Value, field: &str) -> Option<u64> {
    match value.get(field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
