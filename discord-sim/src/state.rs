//! The simulator's whole state behind one lock: guilds, channels, message history, gateway
//! sessions and connections, ground truth, REST faults and counters.
//!
//! Keeping it in one place under one `std::sync::Mutex` makes every scripted action atomic with
//! respect to the gateway: "store in history and dispatch to sessions" happens as one step, and
//! a RESUME takes its replay and attaches the new connection without a dispatch slipping in
//! between. The lock is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::SimError;
use crate::faults::{
    GatewayFault, RestFault, RestFaultRule, SilentLoss, Target, close_invalidates_session,
};
use crate::ground_truth::{EmittedMessage, GroundTruth};
use crate::message::{Author, NewMessage};
use crate::payload;
use crate::rest_log::RestCall;
use crate::session::{Session, SessionInfo, intents};
use crate::snowflake::{self, SnowflakeGenerator};
use crate::stats::SimStats;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

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

    // ----- world -------------------------------------------------------------------------

    pub fn add_guild(&mut self, guild: GuildInfo) -> Result<u64, SimError> {
        if self.guilds.contains_key(&guild.id) {
            return Err(SimError::DuplicateId(guild.id));
        }
        self.ids.observe(guild.id);
        let id = guild.id;
        self.guilds.insert(id, guild);
        // A guild joined while connected arrives as GUILD_CREATE, like on Discord.
        let d = self.guild_create_payload(id);
        self.dispatch(
            "GUILD_CREATE",
            &d,
            Route::Natural(Some(id)),
            &Gate::Guilds,
            None,
        );
        Ok(id)
    }

    pub fn add_channel(&mut self, channel: ChannelInfo) -> Result<u64, SimError> {
        if self.channels.contains_key(&channel.id) {
            return Err(SimError::DuplicateId(channel.id));
        }
        if let Some(guild_id) = channel.guild_id
            && !self.guilds.contains_key(&guild_id)
        {
            return Err(SimError::UnknownGuild(guild_id));
        }
        if let Some(parent) = channel.parent_id
            && !self.channels.contains_key(&parent)
        {
            return Err(SimError::UnknownChannel(parent));
        }
        self.ids.observe(channel.id);
        let id = channel.id;
        let guild_id = channel.guild_id;
        let event = if channel.kind.is_thread() {
            "THREAD_CREATE"
        } else {
            "CHANNEL_CREATE"
        };
        let d = if channel.kind.is_thread() {
            payload::thread_create(&channel, Utc::now())
        } else {
            payload::channel(&channel, Utc::now())
        };
        let is_dm = channel.kind == ChannelKind::Dm;
        self.channels.insert(id, channel);
        // Discord no longer sends CHANNEL_CREATE for DM channels.
        if !is_dm {
            self.dispatch(event, &d, Route::Natural(guild_id), &Gate::Guilds, None);
        }
        Ok(id)
    }

    pub fn set_forbidden(&mut self, channel_id: u64, forbidden: bool) -> Result<(), SimError> {
        let channel = self
            .channels
            .get_mut(&channel_id)
            .ok_or(SimError::UnknownChannel(channel_id))?;
        channel.forbidden = forbidden;
        Ok(())
    }

    pub fn guilds(&self) -> Vec<GuildInfo> {
        self.guilds.values().cloned().collect()
    }

    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.channels.values().cloned().collect()
    }

    pub fn channel(&self, id: u64) -> Option<&ChannelInfo> {
        self.channels.get(&id)
    }

    pub fn channel_access(&self, id: u64) -> Result<&ChannelInfo, Access> {
        match self.channels.get(&id) {
            None => Err(Access::Unknown),
            Some(channel) if channel.forbidden => Err(Access::Forbidden),
            Some(channel) => Ok(channel),
        }
    }

    fn guild_create_payload(&self, guild_id: u64) -> Value {
        let channels: Vec<&ChannelInfo> = self
            .channels
            .values()
            .filter(|c| c.guild_id == Some(guild_id))
            .collect();
        match self.guilds.get(&guild_id) {
            Some(guild) => payload::guild_create(guild, &channels, self.started_at),
            None => Value::Null,
        }
    }

    // ----- messages ----------------------------------------------------------------------

    /// Gives a spec its id and timestamp and builds the REST-shaped object.
    pub fn resolve(&self, spec: &NewMessage) -> Result<(u64, Value), SimError> {
        if !self.channels.contains_key(&spec.channel_id) {
            return Err(SimError::UnknownChannel(spec.channel_id));
        }
        let id = match (spec.id, spec.at) {
            (Some(id), _) => id,
            (None, Some(at)) => self.ids.at(at),
            (None, None) => self.ids.next_now(),
        };
        if self.message_channel.contains_key(&id) || self.truth.get(id).is_some() {
            return Err(SimError::DuplicateId(id));
        }
        self.ids.observe(id);
        let timestamp = spec.at.unwrap_or_else(|| snowflake::timestamp_of(id));
        Ok((id, payload::message_object(spec, id, timestamp)))
    }

    /// The gateway shape of a spec, with a fresh id, neither stored nor recorded.
    pub fn build_gateway_message(&self, spec: &NewMessage) -> Result<Value, SimError> {
        let (_, rest) = self.resolve(spec)?;
        let guild_id = self.channels.get(&spec.channel_id).and_then(|c| c.guild_id);
        Ok(payload::gateway_message(&rest, guild_id))
    }

    /// Stores a message; dispatches MESSAGE_CREATE when `live`.
    pub fn insert_message(&mut self, spec: &NewMessage, live: bool) -> Result<u64, SimError> {
        let (id, rest) = self.resolve(spec)?;
        let channel = self.channels.get(&spec.channel_id).cloned();
        let guild_id = channel.as_ref().and_then(|c| c.guild_id);
        let parent_channel_id = channel.as_ref().and_then(|c| c.parent_id);
        self.messages
            .entry(spec.channel_id)
            .or_default()
            .insert(id, rest.clone());
        self.message_channel.insert(id, spec.channel_id);
        self.truth.record(EmittedMessage {
            id,
            channel_id: spec.channel_id,
            parent_channel_id,
            guild_id,
            live,
            raw: false,
            deleted: false,
            edits: 0,
            dispatches: 0,
            writes: 0,
            dispatched_at: None,
        });
        if live {
            self.dispatch_message_event(MESSAGE_CREATE, id, &rest, None);
        }
        Ok(id)
    }

    pub fn stored_message(&self, id: u64) -> Option<&Value> {
        let channel = self.message_channel.get(&id)?;
        self.messages.get(channel)?.get(&id)
    }

    fn stored_message_mut(&mut self, id: u64) -> Result<&mut Value, SimError> {
        let channel = *self
            .message_channel
            .get(&id)
            .ok_or(SimError::UnknownMessage(id))?;
        self.messages
            .get_mut(&channel)
            .and_then(|m| m.get_mut(&id))
            .ok_or(SimError::UnknownMessage(id))
    }

    pub fn edit_message(&mut self, id: u64, content: &str) -> Result<(), SimError> {
        let message = self.stored_message_mut(id)?;
        payload::apply_edit(message, content, Utc::now());
        let message = message.clone();
        if let Some(record) = self.truth.get_mut(id) {
            record.edits += 1;
        }
        self.dispatch_message_event("MESSAGE_UPDATE", id, &message, None);
        Ok(())
    }

    pub fn set_embeds(&mut self, id: u64, embeds: Vec<Value>) -> Result<(), SimError> {
        let message = self.stored_message_mut(id)?;
        payload::apply_embeds(message, embeds);
        let message = message.clone();
        self.dispatch_message_event("MESSAGE_UPDATE", id, &message, None);
        Ok(())
    }

    pub fn delete_message(&mut self, id: u64) -> Result<(), SimError> {
        let channel_id = self
            .message_channel
            .remove(&id)
            .ok_or(SimError::UnknownMessage(id))?;
        let message = self
            .messages
            .get_mut(&channel_id)
            .and_then(|m| m.remove(&id));
        if let Some(record) = self.truth.get_mut(id) {
            record.deleted = true;
        }
        let guild_id = self.channels.get(&channel_id).and_then(|c| c.guild_id);
        let d = payload::message_delete(id, channel_id, guild_id);
        let gate = Gate::Message {
            in_guild: guild_id.is_some(),
            content_exempt: true,
        };
        if message.is_some() {
            self.dispatch("MESSAGE_DELETE", &d, Route::Natural(guild_id), &gate, None);
        }
        Ok(())
    }

    /// Sends MESSAGE_CREATE for a stored message again, `times` times, to `route`.
    pub fn redispatch(
        &mut self,
        id: u64,
        times: u32,
        route: Option<Target>,
    ) -> Result<u32, SimError> {
        let message = self
            .stored_message(id)
            .cloned()
            .ok_or(SimError::UnknownMessage(id))?;
        let mut sent = 0;
        for _ in 0..times {
            sent += self.dispatch_message_event(MESSAGE_CREATE, id, &message, route.clone());
        }
        Ok(sent)
    }

    /// Dispatches an arbitrary payload, bypassing intent checks.
    pub fn dispatch_raw(&mut self, target: Target, event: &str, d: &Value) -> u32 {
        let message_id = if event == MESSAGE_CREATE {
            raw_snowflake(d, "id")
        } else {
            None
        };
        if let Some(id) = message_id
            && self.truth.get(id).is_none()
        {
            let channel_id = raw_snowflake(d, "channel_id").unwrap_or(0);
            let channel = self.channels.get(&channel_id);
            self.truth.record(EmittedMessage {
                id,
                channel_id,
                parent_channel_id: channel.and_then(|c| c.parent_id),
                guild_id: raw_snowflake(d, "guild_id"),
                live: true,
                raw: true,
                deleted: false,
                edits: 0,
                dispatches: 0,
                writes: 0,
                dispatched_at: None,
            });
        }
        let sent = self.dispatch(event, d, Route::Explicit(target), &Gate::Always, message_id);
        if let Some(record) = message_id.and_then(|id| self.truth.get_mut(id)) {
            record.dispatches += sent;
        }
        sent
    }

    /// Dispatches a message event for a stored REST-shaped message, routed naturally unless
    /// `target` says otherwise. Returns the number of sessions it went to.
    fn dispatch_message_event(
        &mut self,
        event: &str,
        id: u64,
        rest_message: &Value,
        target: Option<Target>,
    ) -> u32 {
        let channel_id = self.message_channel.get(&id).copied();
        let guild_id = channel_id
            .and_then(|c| self.channels.get(&c))
            .and_then(|c| c.guild_id);
        let bot_id = self.settings.bot.id;
        let author_is_bot = raw_snowflake(&rest_message["author"], "id") == Some(bot_id);
        let mentions_bot = rest_message["mentions"]
            .as_array()
            .is_some_and(|m| m.iter().any(|u| raw_snowflake(u, "id") == Some(bot_id)));
        let d = payload::gateway_message(rest_message, guild_id);
        let gate = Gate::Message {
            in_guild: guild_id.is_some(),
            content_exempt: author_is_bot || mentions_bot,
        };
        let route = target.map_or(Route::Natural(guild_id), Route::Explicit);
        let counted = (event == MESSAGE_CREATE).then_some(id);
        // Taken before the frame is built and queued, so a latency measured from it includes
        // everything the gateway does with the message.
        let at = SystemTime::now();
        let sent = self.dispatch(event, &d, route, &gate, counted);
        if event == MESSAGE_CREATE
            && let Some(record) = self.truth.get_mut(id)
        {
            record.dispatches += sent;
            if sent > 0 && record.dispatched_at.is_none() {
                record.dispatched_at = Some(at);
            }
        }
        sent
    }

    /// Starts (or, with `None`, stops) dropping a fraction of message events silently.
    pub fn set_silent_loss(&mut self, loss: Option<SilentLoss>) {
        self.silent_loss = loss.map(|l| (l, StdRng::seed_from_u64(l.seed)));
    }

    /// Whether this event is lost on its way to every session.
    fn silently_lost(&mut self, event: &str) -> bool {
        let Some((loss, rng)) = self.silent_loss.as_mut() else {
            return false;
        };
        if !matches!(event, MESSAGE_CREATE | "MESSAGE_UPDATE" | "MESSAGE_DELETE") {
            return false;
        }
        let lost = rng.random::<f64>() < loss.rate;
        if lost {
            self.stats.silently_dropped += 1;
        }
        lost
    }

    /// Routes one event to sessions, gives it each session's next sequence number, buffers it
    /// for replay and queues it on the attached connection. Returns the number of sessions.
    pub fn dispatch(
        &mut self,
        event: &str,
        d: &Value,
        route: Route,
        gate: &Gate,
        message_id: Option<u64>,
    ) -> u32 {
        self.expire_sessions();
        if matches!(route, Route::Natural(_)) && self.silently_lost(event) {
            return 0;
        }
        let full = d.to_string();
        let mut blanked: Option<String> = None;
        let mut sent = 0;
        for session in self.sessions.values_mut() {
            let routed = match &route {
                Route::Natural(guild_id) => session.handles_guild(*guild_id),
                Route::Explicit(target) => session.matches(target),
            };
            if !routed {
                continue;
            }
            let Some(blank) = gate.check(session.intents) else {
                continue;
            };
            let d_json = if blank {
                blanked
                    .get_or_insert_with(|| payload::without_content(d).to_string())
                    .as_str()
            } else {
                full.as_str()
            };
            deliver(session, &self.connections, event, d_json, message_id);
            sent += 1;
        }
        self.stats.dispatches += u64::from(sent);
        sent
    }

    /// Drops sessions that stayed disconnected longer than the resume window.
    fn expire_sessions(&mut self) {
        let window = self.settings.resume_window;
        let now = Instant::now();
        self.sessions.retain(|_, s| match s.disconnected_at {
            Some(at) if s.conn.is_none() => now.duration_since(at) <= window,
            _ => true,
        });
    }

    pub fn history(&self, channel_id: u64, page: Page, limit: usize) -> Vec<Value> {
        let Some(messages) = self.messages.get(&channel_id) else {
            return Vec::new();
        };
        // Discord always answers newest first, whatever the anchor.
        let mut picked: Vec<&Value> = match page {
            Page::Latest => messages.values().rev().take(limit).collect(),
            Page::Before(id) => messages
                .range(..id)
                .rev()
                .map(|(_, m)| m)
                .take(limit)
                .collect(),
            // The `limit` messages right after `id` (the oldest ones after it), not the newest.
            Page::After(id) => messages
                .range(id.saturating_add(1)..)
                .map(|(_, m)| m)
                .take(limit)
                .collect(),
            Page::Around(id) => {
                let newer_count = limit / 2;
                let mut newer: Vec<&Value> = messages
                    .range(id.saturating_add(1)..)
                    .map(|(_, m)| m)
                    .take(newer_count)
                    .collect();
                let older_count = limit - newer.len();
                let older: Vec<&Value> = messages
                    .range(..=id)
                    .rev()
                    .map(|(_, m)| m)
                    .take(older_count)
                    .collect();
                newer.reverse();
                newer.extend(older);
                return newer.into_iter().cloned().collect();
            }
        };
        if matches!(page, Page::After(_)) {
            picked.reverse();
        }
        picked.into_iter().cloned().collect()
    }

    // ----- ground truth ------------------------------------------------------------------

    pub fn ground_truth(&self) -> GroundTruth {
        self.truth.clone()
    }

    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    pub fn note_frame_written(&mut self, message_id: Option<u64>) {
        self.stats.frames_written += 1;
        if let Some(id) = message_id {
            self.stats.message_creates_written += 1;
            if let Some(record) = self.truth.get_mut(id) {
                record.writes += 1;
            }
        }
    }

    // ----- connections and sessions ------------------------------------------------------

    pub fn open_connection(&mut self, tx: UnboundedSender<Outbound>) -> u64 {
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        self.connections.insert(
            id,
            Connection {
                tx,
                session_id: None,
                shard: None,
                heartbeat_acks: true,
            },
        );
        self.stats.connections_opened += 1;
        self.stats.connections_open += 1;
        id
    }

    /// Forgets a connection; its session (if any) stays resumable unless `invalidate`.
    pub fn close_connection(&mut self, conn_id: u64, invalidate: bool) {
        let Some(conn) = self.connections.remove(&conn_id) else {
            return;
        };
        self.stats.connections_open = self.stats.connections_open.saturating_sub(1);
        if let Some(session_id) = conn.session_id {
            if invalidate {
                self.sessions.remove(&session_id);
            } else if let Some(session) = self.sessions.get_mut(&session_id)
                && session.conn == Some(conn_id)
            {
                session.conn = None;
                session.disconnected_at = Some(Instant::now());
            }
        }
        self.recount_connected();
    }

    fn recount_connected(&mut self) {
        self.stats.sessions_connected =
            self.sessions.values().filter(|s| s.conn.is_some()).count() as u64;
    }

    pub fn acks_enabled(&self, conn_id: u64) -> bool {
        self.heartbeat_acks
            && self
                .connections
                .get(&conn_id)
                .is_some_and(|c| c.heartbeat_acks)
    }

    pub fn stop_acks(&mut self, conn_id: u64) {
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.heartbeat_acks = false;
        }
    }

    pub fn detach(&mut self, conn_id: u64) {
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = None;
        }
    }

    /// Handles IDENTIFY on `conn_id`: checks it, makes a session and queues READY and the
    /// GUILD_CREATEs of the shard's guilds.
    pub fn identify(&mut self, conn_id: u64, identify: Identify) -> Result<String, RefuseWith> {
        let refusal = self.identify_refusal(conn_id, &identify);
        if let Some(code) = refusal {
            self.stats.identifies_refused += 1;
            return Err(RefuseWith(code));
        }
        let token = bare_token(&identify.token).to_owned();
        // A client identifying again for a shard has given up its disconnected sessions for that
        // shard; dropping them keeps their buffers from growing and their dispatches from being
        // counted for no one.
        self.sessions
            .retain(|_, s| !(s.conn.is_none() && s.token == token && s.shard == identify.shard));
        let session_id = format!("{:032x}", rand::random::<u128>());
        let mut session = Session::new(
            session_id.clone(),
            identify.shard,
            identify.intents,
            token,
            self.settings.replay_buffer,
        );
        session.conn = Some(conn_id);
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = Some(session_id.clone());
            conn.shard = Some(identify.shard[0]);
        }
        let guild_ids: Vec<u64> = self
            .guilds
            .keys()
            .copied()
            .filter(|g| session.handles_guild(Some(*g)))
            .collect();
        let ready = payload::ready(
            &self.settings.bot,
            self.settings.application_id,
            &guild_ids,
            &session_id,
            &self.settings.gateway_url,
            Some(identify.shard),
        );
        deliver(
            &mut session,
            &self.connections,
            "READY",
            &ready.to_string(),
            None,
        );
        let mut dispatched = 1;
        if identify.intents & intents::GUILDS != 0 {
            for guild_id in &guild_ids {
                let d = self.guild_create_payload(*guild_id);
                deliver(
                    &mut session,
                    &self.connections,
                    "GUILD_CREATE",
                    &d.to_string(),
                    None,
                );
                dispatched += 1;
            }
        }
        self.sessions.insert(session_id.clone(), session);
        self.stats.dispatches += dispatched;
        self.stats.identifies += 1;
        self.recount_connected();
        Ok(session_id)
    }

    fn identify_refusal(&self, conn_id: u64, identify: &Identify) -> Option<u16> {
        let already = self
            .connections
            .get(&conn_id)
            .is_some_and(|c| c.session_id.is_some());
        let token = bare_token(&identify.token);
        let bad_token = token.is_empty()
            || self
                .settings
                .bad_token
                .as_deref()
                .is_some_and(|bad| bare_token(bad) == token);
        let [shard_id, shard_count] = identify.shard;
        if already {
            Some(4005)
        } else if bad_token {
            Some(4004)
        } else if let Some(code) = self.identify_close_code {
            Some(code)
        } else if shard_count == 0 || shard_id >= shard_count {
            Some(4010)
        } else if identify.intents & self.settings.disallowed_intents != 0 {
            Some(4014)
        } else {
            None
        }
    }

    /// Handles RESUME on `conn_id`: replays what the session missed, then RESUMED. Returns the
    /// number of frames replayed, or `None` when the session cannot be resumed (it is then
    /// discarded and the caller answers INVALID_SESSION false).
    pub fn resume(
        &mut self,
        conn_id: u64,
        session_id: &str,
        token: &str,
        seq: u64,
    ) -> Option<usize> {
        self.expire_sessions();
        let token = bare_token(token);
        let replay = match self.sessions.get(session_id) {
            Some(session) if session.token == token => session.replay_after(seq).ok(),
            _ => None,
        };
        let Some(replay) = replay else {
            self.sessions.remove(session_id);
            self.stats.resumes_refused += 1;
            self.recount_connected();
            return None;
        };
        let session = self.sessions.get_mut(session_id)?;
        if let Some(old) = session.conn
            && old != conn_id
            && let Some(old_conn) = self.connections.get_mut(&old)
        {
            // Discord moves the session to the new connection; the old one gets nothing more.
            old_conn.session_id = None;
            let _ = old_conn.tx.send(Outbound::Detach);
        }
        session.conn = Some(conn_id);
        session.disconnected_at = None;
        session.resumes += 1;
        let shard = session.shard[0];
        let replayed = replay.len();
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = Some(session_id.to_owned());
            conn.shard = Some(shard);
            for frame in replay {
                let _ = conn.tx.send(Outbound::Frame {
                    text: frame.frame,
                    message_id: frame.message_id,
                });
            }
        }
        deliver(session, &self.connections, "RESUMED", "{}", None);
        self.stats.dispatches += 1;
        self.stats.replayed += replayed as u64;
        self.stats.resumes += 1;
        self.recount_connected();
        Some(replayed)
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self.sessions.values().map(Session::info).collect();
        sessions.sort_by(|a, b| a.shard.cmp(&b.shard).then(a.session_id.cmp(&b.session_id)));
        sessions
    }

    /// Queues a fault on every matching connection. Returns how many connections got it.
    pub fn inject(&mut self, target: &Target, fault: &GatewayFault) -> usize {
        let picked: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| match target {
                Target::All => true,
                Target::Shard(shard) => c.shard == Some(*shard),
                Target::Session(id) => c.session_id.as_deref() == Some(id.as_str()),
            })
            .map(|(id, _)| *id)
            .collect();
        let invalidates = match fault {
            GatewayFault::InvalidSession { resumable } => !resumable,
            GatewayFault::Close { code, .. } => close_invalidates_session(*code),
            _ => false,
        };
        for conn_id in &picked {
            let Some(conn) = self.connections.get_mut(conn_id) else {
                continue;
            };
            if invalidates && let Some(session_id) = conn.session_id.take() {
                // Gone at once: what is posted from now on reaches this client only through
                // REST history.
                self.sessions.remove(&session_id);
            }
            let _ = conn.tx.send(Outbound::Fault(fault.clone()));
        }
        self.recount_connected();
        picked.len()
    }

    // ----- REST --------------------------------------------------------------------------

    pub fn push_rest_fault(&mut self, rule: RestFaultRule) {
        self.rest_faults.push_back(rule);
    }

    pub fn clear_rest_faults(&mut self) {
        self.rest_faults.clear();
    }

    /// Takes the fault for the next call to `path`, if one is queued.
    pub fn take_rest_fault(&mut self, path: &str) -> Option<RestFault> {
        let index = self.rest_faults.iter().position(|rule| {
            rule.path_contains
                .as_deref()
                .is_none_or(|needle| path.contains(needle))
        })?;
        let rule = self.rest_faults.get_mut(index)?;
        rule.remaining = rule.remaining.saturating_sub(1);
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.rest_faults.remove(index);
        }
        Some(fault)
    }

    pub fn log_rest_call(&mut self, call: RestCall) {
        if self.rest_calls.len() >= self.settings.rest_log_limit {
            self.rest_calls.pop_front();
        }
        self.rest_calls.push_back(call);
    }

    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.rest_calls.iter().cloned().collect()
    }

    pub fn bad_token(&self, token: &str) -> bool {
        self.settings
            .bad_token
            .as_deref()
            .is_some_and(|bad| bare_token(bad) == bare_token(token))
    }
}

/// Gives `session` the next sequence number for an event and queues the frame on its
/// connection, if one is attached.
fn deliver(
    session: &mut Session,
    connections: &HashMap<u64, Connection>,
    event: &str,
    d_json: &str,
    message_id: Option<u64>,
) {
    let frame = session.push(event, d_json, message_id);
    if let Some(conn) = session.conn.and_then(|id| connections.get(&id)) {
        // A closed receiver means the connection task is ending; the frame stays in the replay
        // buffer for the RESUME that follows.
        let _ = conn.tx.send(Outbound::Frame {
            text: frame.frame,
            message_id: frame.message_id,
        });
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
mod tests {
    use super::*;

    fn state() -> State {
        State::new(StateSettings {
            bot: Author::bot(1, "bot"),
            application_id: 2,
            gateway_url: "ws://127.0.0.1:1".into(),
            bad_token: Some("bad".into()),
            disallowed_intents: 0,
            resume_window: Duration::from_secs(60),
            replay_buffer: 1000,
            rest_log_limit: 100,
        })
    }

    fn with_channel(state: &mut State) -> u64 {
        let guild = state
            .add_guild(GuildInfo {
                id: 10 << 22,
                name: "g".into(),
                owner_id: 1,
            })
            .expect("new guild");
        state
            .add_channel(ChannelInfo {
                id: 20 << 22,
                guild_id: Some(guild),
                name: "c".into(),
                kind: ChannelKind::Text,
                parent_id: None,
                recipient: None,
                forbidden: false,
            })
            .expect("new channel")
    }

    fn ids(values: &[Value]) -> Vec<u64> {
        values
            .iter()
            .map(|v| raw_snowflake(v, "id").expect("id"))
            .collect()
    }

    #[test]
    fn history_pages_follow_discord_semantics() {
        let mut state = state();
        let channel = with_channel(&mut state);
        for i in 1..=10_u64 {
            state
                .insert_message(&NewMessage::text(channel, "m").id(i << 22), false)
                .expect("insert");
        }
        let id = |i: u64| i << 22;
        assert_eq!(
            ids(&state.history(channel, Page::Latest, 3)),
            vec![id(10), id(9), id(8)]
        );
        assert_eq!(
            ids(&state.history(channel, Page::Before(id(5)), 2)),
            vec![id(4), id(3)]
        );
        // `after` gives the messages right after the anchor, still newest first.
        assert_eq!(
            ids(&state.history(channel, Page::After(id(2)), 3)),
            vec![id(5), id(4), id(3)]
        );
        assert_eq!(
            ids(&state.history(channel, Page::Around(id(5)), 4)),
            vec![id(7), id(6), id(5), id(4)]
        );
        assert_eq!(
            ids(&state.history(channel, Page::Around(id(5)), 1)),
            vec![id(5)]
        );
    }

    #[test]
    fn silently_lost_events_stay_in_history_and_ground_truth() {
        let mut state = state();
        let channel = with_channel(&mut state);
        state.set_silent_loss(Some(SilentLoss { rate: 1.0, seed: 7 }));
        let id = state
            .insert_message(&NewMessage::text(channel, "m"), true)
            .expect("insert");
        state.edit_message(id, "edited").expect("edit");
        state.delete_message(id).expect("delete");
        assert_eq!(
            state.stats.silently_dropped, 3,
            "create, update and delete dropped"
        );
        assert!(
            state
                .truth()
                .get(id)
                .is_some_and(|m| m.deleted && m.edits == 1)
        );
        let kept = state
            .insert_message(&NewMessage::text(channel, "kept"), true)
            .expect("insert");
        assert_eq!(ids(&state.history(channel, Page::Latest, 10)), vec![kept]);
        state.set_silent_loss(None);
        state
            .insert_message(&NewMessage::text(channel, "heard"), true)
            .expect("insert");
        assert_eq!(
            state.stats.silently_dropped, 4,
            "nothing dropped once it is off"
        );
    }

    #[test]
    fn a_silent_loss_rate_drops_about_that_fraction() {
        let mut state = state();
        let channel = with_channel(&mut state);
        state.set_silent_loss(Some(SilentLoss {
            rate: 0.05,
            seed: 42,
        }));
        for _ in 0..4000 {
            state
                .insert_message(&NewMessage::text(channel, "m"), true)
                .expect("insert");
        }
        let dropped = state.stats.silently_dropped;
        assert!(
            (120..=280).contains(&dropped),
            "{dropped} of 4000 dropped at 5%"
        );
    }

    #[test]
    fn deleted_messages_leave_history_but_stay_in_ground_truth() {
        let mut state = state();
        let channel = with_channel(&mut state);
        let id = state
            .insert_message(&NewMessage::text(channel, "m"), false)
            .expect("insert");
        state.delete_message(id).expect("delete");
        assert!(state.history(channel, Page::Latest, 50).is_empty());
        assert!(state.ground_truth().get(id).is_some_and(|m| m.deleted));
        assert!(matches!(
            state.delete_message(id),
            Err(SimError::UnknownMessage(_))
        ));
    }

    #[test]
    fn identify_refusals_use_discords_close_codes() {
        let mut state = state();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let conn = state.open_connection(tx);
        let identify = |token: &str, shard: [u32; 2]| Identify {
            token: token.into(),
            intents: intents::GUILD_MESSAGES,
            shard,
        };
        assert_eq!(
            state.identify(conn, identify("Bot bad", [0, 1])),
            Err(RefuseWith(4004))
        );
        assert_eq!(
            state.identify(conn, identify("good", [2, 2])),
            Err(RefuseWith(4010))
        );
        assert!(state.identify(conn, identify("good", [0, 1])).is_ok());
        assert_eq!(
            state.identify(conn, identify("good", [0, 1])),
            Err(RefuseWith(4005))
        );
    }

    #[test]
    fn guild_messages_are_blanked_without_message_content() {
        let gate = Gate::Message {
            in_guild: true,
            content_exempt: false,
        };
        assert_eq!(gate.check(intents::GUILD_MESSAGES), Some(true));
        assert_eq!(
            gate.check(intents::GUILD_MESSAGES | intents::MESSAGE_CONTENT),
            Some(false)
        );
        assert_eq!(gate.check(intents::DIRECT_MESSAGES), None);
        let dm = Gate::Message {
            in_guild: false,
            content_exempt: false,
        };
        assert_eq!(dm.check(intents::DIRECT_MESSAGES), Some(false));
    }
}
