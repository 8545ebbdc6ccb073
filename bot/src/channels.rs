//! Which channels are watched: the allowlist, the threads under it, and the
//! start-up check that the token can read each listed channel.
//!
//! A message carries its channel id but not the channel's parent, and the
//! bot does not ask for the GUILDS intent that would announce threads, so a
//! channel seen for the first time is looked up once (`GET /channels/{id}`)
//! and remembered: a thread whose `parent_id` is listed is watched.
//!
//! A process running some of the gateway shards (`--shard`, `--shard-range`)
//! owns only the guilds whose events Discord sends to those shards
//! (`(guild_id >> 22) % shards`). It verifies, backfills and reads back only
//! the listed channels of those guilds and their threads; the other listed
//! channels belong to the process running their shard, so two processes
//! never read the same history.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sea_orm::DatabaseConnection;
use service::Health;
use tokio::sync::OnceCell;

use crate::config::Shards;
use crate::error::error_chain;
use crate::rest::{ChannelInfo, Rest, RestError};

/// How a channel relates to the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// On the allowlist.
    Listed,
    /// A thread of a listed channel. `new` is true the first time it is seen.
    Thread { parent: u64, new: bool },
    /// Neither: its messages are ignored.
    Unlisted,
}

impl Membership {
    /// Whether messages of the channel are captured.
    pub fn is_watched(&self) -> bool {
        !matches!(self, Membership::Unlisted)
    }
}

/// What the start-up check found for a listed channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelState {
    /// The token sees the channel and can read its history.
    Readable { name: Option<String> },
    /// Discord refused (`status` 401, 403 or 404); the detail says what to fix.
    Refused { status: u16, detail: String },
    /// The check could not finish (network, 5xx); retried by every backfill.
    Unverified { detail: String },
    /// Its guild is on `shard`, which another bot process runs.
    OtherShard { shard: u32, total: u32 },
}

impl ChannelState {
    fn ready(&self) -> bool {
        matches!(
            self,
            ChannelState::Readable { .. } | ChannelState::OtherShard { .. }
        )
    }

    fn detail(&self) -> String {
        match self {
            ChannelState::Readable { name: Some(name) } => {
                format!("readable: #{name}, history can be read")
            }
            ChannelState::Readable { name: None } => "readable: history can be read".to_owned(),
            ChannelState::Refused { detail, .. } | ChannelState::Unverified { detail } => {
                detail.clone()
            }
            ChannelState::OtherShard { shard, total } => {
                format!("served by another bot process: its guild is on shard {shard} of {total}")
            }
        }
    }
}

/// The watched channels.
#[derive(Debug)]
pub struct Channels {
    listed: BTreeSet<u64>,
    /// The gateway shards this process runs: which guilds it owns.
    shards: Shards,
    /// Listed channels whose guild another process's shard owns.
    elsewhere: RwLock<BTreeSet<u64>>,
    rest: Rest,
    health: Health,
    /// Channel lookups, once each; `None` when Discord refused the lookup.
    lookups: Mutex<HashMap<u64, Arc<OnceCell<Option<ChannelInfo>>>>>,
    /// Known threads of listed channels, with their parent.
    threads: RwLock<BTreeMap<u64, u64>>,
}

/// The health check name of a listed channel.
pub fn check_name(channel_id: u64) -> String {
    format!("channel:{channel_id}")
}

impl Channels {
    /// The allowlist, of which this process serves the channels its
    /// `shards` own; each listed channel gets a `channel:<id>` readiness
    /// check, not ready until verified.
    pub fn new(
        listed: impl IntoIterator<Item = u64>,
        shards: Shards,
        rest: Rest,
        health: Health,
    ) -> Self {
        let listed: BTreeSet<u64> = listed.into_iter().collect();
        for id in &listed {
            health.set(&check_name(*id), false, "not verified yet");
        }
        Self {
            listed,
            shards,
            elsewhere: RwLock::new(BTreeSet::new()),
            rest,
            health,
            lookups: Mutex::new(HashMap::new()),
            threads: RwLock::new(BTreeMap::new()),
        }
    }

    /// The allowlist, ascending.
    pub fn listed(&self) -> Vec<u64> {
        self.listed.iter().copied().collect()
    }

    /// Threads of listed channels seen so far, ascending.
    pub fn threads(&self) -> Vec<u64> {
        self.threads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Every watched channel: the allowlist (but for the channels found to
    /// belong to another process's shards) and the known threads.
    pub fn watched(&self) -> Vec<u64> {
        let elsewhere = self
            .elsewhere
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<u64> = self
            .listed
            .iter()
            .filter(|id| !elsewhere.contains(id))
            .copied()
            .collect();
        drop(elsewhere);
        all.extend(self.threads());
        all
    }

    /// The watched channels whose guild is on `shard` (a shard's READY
    /// backfills these). A channel whose guild cannot be looked up now is
    /// included: its backfill retries the lookup and reports a refusal.
    pub async fn watched_on(&self, shard: u32) -> Vec<u64> {
        if matches!(self.shards, Shards::Single) {
            return self.watched();
        }
        let mut on_shard = Vec::new();
        for channel_id in self.watched() {
            match self.info(channel_id).await {
                Ok(Some(info)) if self.shards.shard_of(info.guild_id) != shard => {}
                _ => on_shard.push(channel_id),
            }
        }
        on_shard
    }

    /// The gateway shards this process runs.
    pub fn shards(&self) -> Shards {
        self.shards
    }

    /// Whether this process serves the channel: its guild is on one of its
    /// shards. Always true when it runs every shard; otherwise the channel
    /// is looked up (once). A channel Discord refuses to show counts as
    /// served, so its backfill reports the refusal.
    pub async fn owned(&self, channel_id: u64) -> Result<bool, RestError> {
        if matches!(self.shards, Shards::Single | Shards::All { .. }) {
            return Ok(true);
        }
        let Some(info) = self.info(channel_id).await? else {
            return Ok(true);
        };
        let owned = self.shards.owns_guild(info.guild_id);
        if !owned && self.listed.contains(&channel_id) {
            self.elsewhere
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(channel_id);
        }
        Ok(owned)
    }

    /// The channel object, looked up once. `Ok(None)` when Discord refuses
    /// the lookup (no access, unknown channel); transient failures are not
    /// remembered, so the next call tries again.
    pub async fn info(&self, channel_id: u64) -> Result<Option<ChannelInfo>, RestError> {
        let cell = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(lookups.entry(channel_id).or_default())
        };
        cell.get_or_try_init(|| async {
            match self.rest.channel(channel_id).await {
                Ok(info) => Ok(Some(info)),
                Err(RestError::Refused { .. }) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await
        .cloned()
    }

    /// Whether a channel's messages are captured.
    pub async fn membership(&self, channel_id: u64) -> Result<Membership, RestError> {
        if self.listed.contains(&channel_id) {
            return Ok(Membership::Listed);
        }
        let known = self
            .threads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&channel_id)
            .copied();
        if let Some(parent) = known {
            return Ok(Membership::Thread { parent, new: false });
        }
        let Some(info) = self.info(channel_id).await? else {
            return Ok(Membership::Unlisted);
        };
        match info.parent_id {
            Some(parent)
                if info.is_thread()
                    && self.listed.contains(&parent)
                    && self.shards.owns_guild(info.guild_id) =>
            {
                let new = self
                    .threads
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(channel_id, parent)
                    .is_none();
                if new {
                    tracing::info!(
                        thread_id = channel_id,
                        parent_id = parent,
                        "watching a thread of a listed channel"
                    );
                }
                Ok(Membership::Thread { parent, new })
            }
            _ => Ok(Membership::Unlisted),
        }
    }

    /// Checks that the token can see each listed channel and read its
    /// history; logs and reports each channel's state as its readiness check.
    pub async fn verify(&self) -> Vec<(u64, ChannelState)> {
        let mut states = Vec::with_capacity(self.listed.len());
        for &channel_id in &self.listed {
            let state = self.verify_one(channel_id).await;
            self.report(channel_id, &state);
            states.push((channel_id, state));
        }
        states
    }

    async fn verify_one(&self, channel_id: u64) -> ChannelState {
        let info = match self.rest.channel(channel_id).await {
            Ok(info) => info,
            Err(error) => return refused_or_unverified(&error, "see"),
        };
        if !self.shards.owns_guild(info.guild_id) {
            self.elsewhere
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(channel_id);
            return ChannelState::OtherShard {
                shard: self.shards.shard_of(info.guild_id),
                total: self.shards.total(),
            };
        }
        match self.rest.latest_message(channel_id).await {
            Ok(_) => ChannelState::Readable { name: info.name },
            Err(error) => refused_or_unverified(&error, "read the history of"),
        }
    }

    fn report(&self, channel_id: u64, state: &ChannelState) {
        self.health
            .set(&check_name(channel_id), state.ready(), state.detail());
        match state {
            ChannelState::Readable { name } => {
                tracing::info!(
                    channel_id,
                    name = name.as_deref().unwrap_or(""),
                    "channel verified: readable"
                )
            }
            ChannelState::Refused { status, detail } => {
                tracing::error!(channel_id, status, "channel not readable: {detail}")
            }
            ChannelState::Unverified { detail } => {
                tracing::warn!(channel_id, "channel not verified: {detail}")
            }
            ChannelState::OtherShard { shard, total } => {
                tracing::info!(
                    channel_id,
                    shard,
                    total,
                    "channel served by the bot process running its guild's shard"
                )
            }
        }
    }

    /// A history read of a listed channel succeeded: it is readable.
    pub fn mark_readable(&self, channel_id: u64) {
        let elsewhere = self
            .elsewhere
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&channel_id);
        if self.listed.contains(&channel_id) && !elsewhere {
            let check = check_name(channel_id);
            if !self.health.get(&check).is_some_and(|c| c.ready) {
                let name = self
                    .lookups
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&channel_id)
                    .and_then(|cell| cell.get().cloned().flatten())
                    .and_then(|info| info.name);
                self.health
                    .set(&check, true, ChannelState::Readable { name }.detail());
            }
        }
    }

    /// A history read of a listed channel was refused.
    pub fn mark_refused(&self, channel_id: u64, error: &RestError) {
        if self.listed.contains(&channel_id) {
            let state = refused_or_unverified(error, "read the history of");
            self.health
                .set(&check_name(channel_id), false, state.detail());
        }
    }

    /// Learns the threads of listed channels that already have stored
    /// messages, so the backfill after a restart covers them too. Returns how
    /// many were found.
    pub async fn load_known_threads(
        &self,
        db: &DatabaseConnection,
    ) -> Result<usize, sea_orm::DbErr> {
        let rows = crate::reads::messages_channels(db).await?;
        let mut found = 0;
        for id in rows {
            let Ok(id) = u64::try_from(id) else { continue };
            if self.listed.contains(&id) {
                continue;
            }
            match self.membership(id).await {
                Ok(Membership::Thread { .. }) => found += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(channel_id = id, error = %error_chain(&error), "could not look up a stored channel; its backfill waits for its next message")
                }
            }
        }
        Ok(found)
    }
}

fn refused_or_unverified(error: &RestError, what: &str) -> ChannelState {
    match error.status() {
        Some(401) => ChannelState::Refused {
            status: 401,
            detail: "the bot token was rejected (401): set DISCORD_TOKEN to the token shown in the Developer Portal".to_owned(),
        },
        Some(403) => ChannelState::Refused {
            status: 403,
            detail: format!(
                "the bot cannot {what} this channel (403 Missing Access): invite it to the server and grant View Channel and Read Message History"
            ),
        },
        Some(404) => ChannelState::Refused {
            status: 404,
            detail: "unknown channel (404): check the id in APLUS_CHANNELS".to_owned(),
        },
        Some(status) => ChannelState::Refused {
            status,
            detail: format!("Discord refused: {}", error_chain(error)),
        },
        None => ChannelState::Unverified {
            detail: format!("not verified yet: {}", error_chain(error)),
        },
    }
}
