//! [`Sim`]: starting the simulator and scripting it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use crate::error::{SimError, WaitTimeout};
use crate::faults::{GatewayFault, RestFault, RestFaultRule, SilentLoss, Target};
use crate::ground_truth::GroundTruth;
use crate::message::{Author, NewMessage};
use crate::net::{PeerInfo, SimListener};
use crate::rest;
use crate::rest_log::RestCall;
use crate::session::SessionInfo;
use crate::state::{State, StateSettings};
use crate::stats::SimStats;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

/// How long [`Sim::shutdown`] waits for the HTTP server to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What the server tasks share with the [`Sim`] handles.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped after every change to the state, for [`Sim::wait_for`].
    changed: watch::Sender<u64>,
    pub cancel: CancellationToken,
    pub heartbeat_interval: Duration,
    pub recommended_shards: u32,
    pub max_concurrency: u32,
    pub gateway_url: String,
    pub api_url: String,
    pub local_addr: SocketAddr,
    server: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as any single step
        // leaves it; a test that caused the panic fails anyway, so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and then wakes waiters.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        result
    }

    /// Runs `f` on the state without counting it as a change.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    pub fn heartbeat_interval_ms(&self) -> u64 {
        u64::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A running fake Discord: REST under [`Sim::api_url`] and the gateway at
/// [`Sim::gateway_url`], on one port.
///
/// Cheap to clone; all clones drive the same simulator. It stops on [`Sim::shutdown`], or when
/// the last clone is dropped.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use discord_sim::{NewMessage, Sim, SimConfig};
/// let sim = Sim::start(SimConfig::default()).await?;
/// let guild = sim.create_guild("Trading");
/// let channel = sim.create_channel(guild, "aplus-setups").expect("guild exists");
/// // serenity: HttpBuilder::new("any-token").proxy(sim.api_url()).ratelimiter_disabled(true)
/// sim.post(NewMessage::text(channel, "A+ Trade Setups")).expect("channel exists");
/// sim.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Sim {
    shared: Arc<Shared>,
    /// Cancels the server when the last handle goes away.
    _stop_on_drop: Arc<DropGuard>,
}

impl Sim {
    /// Binds `config.listen` and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Sim> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let host = match &config.advertised_host {
            Some(host) => format!("{host}:{}", local_addr.port()),
            None => {
                let ip = match local_addr.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                SocketAddr::new(ip, local_addr.port()).to_string()
            }
        };
        let api_url = format!("http://{host}");
        let gateway_url = format!("ws://{host}");
        let state = State::new(StateSettings {
            bot: config.bot.clone(),
            application_id: config.application_id,
            gateway_url: gateway_url.clone(),
            bad_token: config.bad_token.clone(),
            disallowed_intents: config.disallowed_intents,
            resume_window: config.resume_window,
            replay_buffer: config.replay_buffer,
            rest_log_limit: config.rest_log_limit,
        });
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
            cancel: cancel.clone(),
            heartbeat_interval: config.heartbeat_interval,
            recommended_shards: config.recommended_shards.max(1),
            max_concurrency: config.max_concurrency.max(1),
            gateway_url,
            api_url,
            local_addr,
            server: Mutex::new(None),
        });
        let app = rest::router(Arc::clone(&shared));
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                SimListener::new(listener),
                app.into_make_service_with_connect_info::<PeerInfo>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        });
        *shared.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
        info!(
            api_url = shared.api_url,
            gateway_url = shared.gateway_url,
            "discord-sim listening"
        );
        Ok(Sim {
            shared,
            _stop_on_drop: Arc::new(cancel.drop_guard()),
        })
    }

    /// Base URL for serenity's `HttpBuilder::proxy` (e.g. `http://127.0.0.1:40123`).
    #[must_use]
    pub fn api_url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// The gateway URL that `GET /api/v10/gateway` hands out (e.g. `ws://127.0.0.1:40123`).
    #[must_use]
    pub fn gateway_url(&self) -> String {
        self.shared.gateway_url.clone()
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The bot's own user.
    #[must_use]
    pub fn bot_user(&self) -> Author {
        self.shared.read(|s| s.settings.bot.clone())
    }

    /// Stops serving: open gateway connections are dropped and the HTTP server shuts down.
    /// Stop clients first, or they will keep trying to reconnect.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let server = self
            .shared
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
                Ok(Ok(Ok(()))) => info!("discord-sim stopped"),
                Ok(Ok(Err(error))) => warn!(%error, "discord-sim server failed"),
                Ok(Err(error)) => warn!(%error, "discord-sim server task failed"),
                Err(_) => warn!("discord-sim server did not stop in time"),
            }
        }
    }

    // ----- guilds and channels -----------------------------------------------------------

    /// Creates a guild with a fresh id (GUILD_CREATE goes to connected sessions with the
    /// GUILDS intent).
    pub fn create_guild(&self, name: &str) -> u64 {
        self.shared.with(|s| {
            loop {
                let guild = GuildInfo {
                    id: s.new_id(),
                    name: name.to_owned(),
                    owner_id: s.settings.bot.id,
                };
                // A fresh id can only collide with an explicit one picked by a test; try again.
                if let Ok(id) = s.add_guild(guild) {
                    return id;
                }
            }
        })
    }

    /// Creates a guild with an explicit id.
    ///
    /// # Errors
    /// [`SimError::DuplicateId`] when the id is taken.
    pub fn create_guild_with_id(&self, id: u64, name: &str) -> Result<u64, SimError> {
        self.shared.with(|s| {
            let owner_id = s.settings.bot.id;
            s.add_guild(GuildInfo {
                id,
                name: name.to_owned(),
                owner_id,
            })
        })
    }

    /// Creates a text channel in a guild.
    ///
    /// # Errors
    /// [`SimError::UnknownGuild`].
    pub fn create_channel(&self, guild_id: u64, name: &str) -> Result<u64, SimError> {
        self.shared.with(|s| {
            let id = s.new_id();
            s.add_channel(guild_channel(id, guild_id, name))
        })
    }

    /// Creates a text channel with an explicit id.
    ///
    /// # Errors
    /// [`SimError::UnknownGuild`], [`SimError::DuplicateId`].
    pub fn create_channel_with_id(
        &self,
        guild_id: u64,
        id: u64,
        name: &str,
    ) -> Result<u64, SimError> {
        self.shared
            .with(|s| s.add_channel(guild_channel(id, guild_id, name)))
    }

    /// Creates a public thread under a guild channel (THREAD_CREATE goes to connected
    /// sessions with the GUILDS intent). Its `parent_id` is the channel.
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`], [`SimError::NotAThreadParent`] (DMs and threads).
    pub fn create_thread(&self, parent_id: u64, name: &str) -> Result<u64, SimError> {
        self.shared.with(|s| {
            let parent = s
                .channel(parent_id)
                .ok_or(SimError::UnknownChannel(parent_id))?;
            if parent.kind.is_thread() || parent.kind == ChannelKind::Dm {
                return Err(SimError::NotAThreadParent(parent_id));
            }
            let guild_id = parent.guild_id;
            let id = s.new_id();
            s.add_channel(ChannelInfo {
                id,
                guild_id,
                name: name.to_owned(),
                kind: ChannelKind::PublicThread,
                parent_id: Some(parent_id),
                recipient: None,
                forbidden: false,
            })
        })
    }

    /// Creates a DM channel with `recipient` (its messages go to shard 0).
    pub fn create_dm(&self, recipient: Author) -> u64 {
        self.shared.with(|s| {
            loop {
                let channel = ChannelInfo {
                    id: s.new_id(),
                    guild_id: None,
                    name: String::new(),
                    kind: ChannelKind::Dm,
                    parent_id: None,
                    recipient: Some(recipient.clone()),
                    forbidden: false,
                };
                if let Ok(id) = s.add_channel(channel) {
                    return id;
                }
            }
        })
    }

    /// Makes REST reads of a channel answer 403 Missing Access (or lifts that).
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`].
    pub fn set_channel_forbidden(&self, channel_id: u64, forbidden: bool) -> Result<(), SimError> {
        self.shared.with(|s| s.set_forbidden(channel_id, forbidden))
    }

    /// All guilds.
    #[must_use]
    pub fn guilds(&self) -> Vec<GuildInfo> {
        self.shared.read(State::guilds)
    }

    /// All channels, threads and DM channels.
    #[must_use]
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.shared.read(State::channels)
    }

    /// One channel.
    #[must_use]
    pub fn channel(&self, id: u64) -> Option<ChannelInfo> {
        self.shared.read(|s| s.channel(id).cloned())
    }

    // ----- messages ----------------------------------------------------------------------

    /// Posts a message live: stored in history and dispatched as MESSAGE_CREATE to the
    /// session(s) of its guild's shard. Returns its id.
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`], [`SimError::DuplicateId`].
    pub fn post(&self, message: NewMessage) -> Result<u64, SimError> {
        self.shared.with(|s| s.insert_message(&message, true))
    }

    /// Posts several messages live in one step: one lock and one wake-up of waiters for all of
    /// them, so a load run can put thousands on the gateway at once. Returns their ids in
    /// order; stops at the first message that cannot be posted (those before it stay posted).
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`], [`SimError::DuplicateId`].
    pub fn post_many(
        &self,
        messages: impl IntoIterator<Item = NewMessage>,
    ) -> Result<Vec<u64>, SimError> {
        self.shared.with(|s| {
            messages
                .into_iter()
                .map(|message| s.insert_message(&message, true))
                .collect()
        })
    }

    /// Stores a message in history only, as if posted while the bot was away.
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`], [`SimError::DuplicateId`].
    pub fn post_history(&self, message: NewMessage) -> Result<u64, SimError> {
        self.shared.with(|s| s.insert_message(&message, false))
    }

    /// The MESSAGE_CREATE `d` a message would have (fresh id, `guild_id` and `member` filled),
    /// without storing or sending it; alter it and pass it to [`Sim::dispatch_raw`].
    ///
    /// # Errors
    /// [`SimError::UnknownChannel`], [`SimError::DuplicateId`].
    pub fn build_message(&self, message: &NewMessage) -> Result<Value, SimError> {
        self.shared.read(|s| s.build_gateway_message(message))
    }

    /// A stored message as REST returns it.
    #[must_use]
    pub fn message(&self, id: u64) -> Option<Value> {
        self.shared.read(|s| s.stored_message(id).cloned())
    }

    /// Edits a message: new content and `edited_timestamp`, dispatched as MESSAGE_UPDATE.
    ///
    /// # Errors
    /// [`SimError::UnknownMessage`].
    pub fn edit(&self, id: u64, content: &str) -> Result<(), SimError> {
        self.shared.with(|s| s.edit_message(id, content))
    }

    /// Replaces a message's embeds without marking it edited, dispatched as MESSAGE_UPDATE
    /// (what Discord sends when it unfurls a link).
    ///
    /// # Errors
    /// [`SimError::UnknownMessage`].
    pub fn set_embeds(&self, id: u64, embeds: Vec<Value>) -> Result<(), SimError> {
        self.shared.with(|s| s.set_embeds(id, embeds))
    }

    /// Deletes a message: gone from history, MESSAGE_DELETE dispatched, still in the ground
    /// truth (marked deleted).
    ///
    /// # Errors
    /// [`SimError::UnknownMessage`].
    pub fn delete(&self, id: u64) -> Result<(), SimError> {
        self.shared.with(|s| s.delete_message(id))
    }

    /// Sends MESSAGE_CREATE for a stored message again, `times` more times, with new sequence
    /// numbers (duplicates). Returns the number of dispatches made.
    ///
    /// # Errors
    /// [`SimError::UnknownMessage`].
    pub fn redispatch(&self, id: u64, times: u32) -> Result<u32, SimError> {
        self.shared.with(|s| s.redispatch(id, times, None))
    }

    /// Sends MESSAGE_CREATE for a stored message to the chosen sessions whatever their shard
    /// (`Target::All`: "the same message on every shard"). Returns the number of dispatches.
    ///
    /// # Errors
    /// [`SimError::UnknownMessage`].
    pub fn redispatch_to(&self, id: u64, target: Target) -> Result<u32, SimError> {
        self.shared.with(|s| s.redispatch(id, 1, Some(target)))
    }

    /// Dispatches any payload as event `event` to the chosen sessions, without intent checks.
    /// A MESSAGE_CREATE whose `id` parses as a number is recorded in the ground truth with
    /// `raw: true`. Returns the number of sessions it went to.
    pub fn dispatch_raw(&self, target: Target, event: &str, d: Value) -> u32 {
        self.shared.with(|s| s.dispatch_raw(target, event, &d))
    }

    // ----- faults ------------------------------------------------------------------------

    /// Queues a fault on the matching open connections, after what is already queued for
    /// them. Returns how many connections got it.
    pub fn inject(&self, target: Target, fault: GatewayFault) -> usize {
        self.shared.with(|s| s.inject(&target, &fault))
    }

    /// Starts dropping a fraction of `MESSAGE_CREATE`, `MESSAGE_UPDATE` and `MESSAGE_DELETE`
    /// events silently on every live session (see [`SilentLoss`]); `None` stops it. Returns
    /// nothing: the loss shows only in [`SimStats::silently_dropped`] and in REST history.
    pub fn set_silent_loss(&self, loss: Option<SilentLoss>) {
        self.shared.with(|s| s.set_silent_loss(loss));
    }

    /// Turns heartbeat ACKs on or off for every connection, present and future.
    pub fn set_heartbeat_acks(&self, enabled: bool) {
        self.shared.with(|s| s.heartbeat_acks = enabled);
    }

    /// Makes every IDENTIFY (until cleared with `None`) answered by a close with this code.
    pub fn set_identify_close_code(&self, code: Option<u16>) {
        self.shared.with(|s| s.identify_close_code = code);
    }

    /// Answers the next `count` REST calls with `fault` (gateway discovery excluded).
    pub fn fail_next_rest(&self, count: u32, fault: RestFault) {
        self.push_rest_fault(None, count, fault);
    }

    /// Answers the next `count` REST calls whose path contains `path_contains` with `fault`.
    pub fn fail_next_rest_matching(&self, path_contains: &str, count: u32, fault: RestFault) {
        self.push_rest_fault(Some(path_contains.to_owned()), count, fault);
    }

    fn push_rest_fault(&self, path_contains: Option<String>, count: u32, fault: RestFault) {
        if count == 0 {
            return;
        }
        self.shared.with(|s| {
            s.push_rest_fault(RestFaultRule {
                fault,
                remaining: count,
                path_contains,
            })
        });
    }

    /// Drops all queued REST faults.
    pub fn clear_rest_faults(&self) {
        self.shared.with(State::clear_rest_faults);
    }

    // ----- observing ---------------------------------------------------------------------

    /// Current counters.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.shared.read(|s| s.stats)
    }

    /// Current sessions, by shard.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.shared.read(State::sessions)
    }

    /// The REST calls received, oldest first (the last `rest_log_limit`).
    #[must_use]
    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.shared.read(State::rest_calls)
    }

    /// Every message emitted so far.
    #[must_use]
    pub fn ground_truth(&self) -> GroundTruth {
        self.shared.read(State::ground_truth)
    }

    /// When each of `ids` was first dispatched (see [`crate::EmittedMessage::dispatched_at`]),
    /// in the order given; `None` for unknown or never-dispatched ids. Cheaper than
    /// [`Sim::ground_truth`] when only a load run's own messages matter.
    #[must_use]
    pub fn dispatch_times(&self, ids: &[u64]) -> Vec<Option<std::time::SystemTime>> {
        self.shared.read(|s| {
            let truth = s.truth();
            ids.iter()
                .map(|id| truth.get(*id).and_then(|m| m.dispatched_at))
                .collect()
        })
    }

    /// How many MESSAGE_CREATE dispatches a message had (see
    /// [`crate::EmittedMessage::dispatches`]).
    #[must_use]
    pub fn dispatch_count(&self, id: u64) -> u32 {
        self.shared
            .read(|s| s.ground_truth().get(id).map_or(0, |m| m.dispatches))
    }

    /// Waits until `condition` holds for the counters, re-checking after every change.
    ///
    /// # Errors
    /// [`WaitTimeout`] when it does not hold within `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&SimStats) -> bool,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_until(what, timeout, |sim| {
            let stats = sim.stats();
            condition(&stats).then_some(stats)
        })
        .await
    }

    /// Waits until `condition` holds for the sessions.
    ///
    /// # Errors
    /// [`WaitTimeout`] when it does not hold within `timeout`.
    pub async fn wait_for_sessions(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[SessionInfo]) -> bool,
    ) -> Result<Vec<SessionInfo>, WaitTimeout> {
        self.wait_until(what, timeout, |sim| {
            let sessions = sim.sessions();
            condition(&sessions).then_some(sessions)
        })
        .await
    }

    /// Waits until at least `count` IDENTIFYs have succeeded in total.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_identifies(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} identifies"), timeout, |s| {
            s.identifies >= count
        })
        .await
    }

    /// Waits until at least `count` RESUMEs have succeeded in total.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_resumes(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} resumes"), timeout, |s| s.resumes >= count)
            .await
    }

    /// Waits until exactly `count` sessions have a connection attached.
    ///
    /// # Errors
    /// [`WaitTimeout`].
    pub async fn wait_for_connected_sessions(
        &self,
        count: u64,
        timeout: Duration,
    ) -> Result<SimStats, WaitTimeout> {
        self.wait_for(&format!("{count} connected sessions"), timeout, |s| {
            s.sessions_connected == count
        })
        .await
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Sim) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.changed.subscribe();
        loop {
            // Mark the current version seen before checking, so a change right after the check
            // still wakes us.
            changes.borrow_and_update();
            if let Some(found) = check(self) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self.shared`, so it cannot be gone; treat it as a timeout.
                Ok(Err(_)) | Err(_) => {
                    if let Some(found) = check(self) {
                        return Ok(found);
                    }
                    return Err(WaitTimeout {
                        what: what.to_owned(),
                        waited: started.elapsed(),
                        last: self.stats(),
                    });
                }
            }
        }
    }
}

fn guild_channel(id: u64, guild_id: u64, name: &str) -> ChannelInfo {
    ChannelInfo {
        id,
        guild_id: Some(guild_id),
        name: name.to_owned(),
        kind: ChannelKind::Text,
        parent_id: None,
        recipient: None,
        forbidden: false,
    }
}
