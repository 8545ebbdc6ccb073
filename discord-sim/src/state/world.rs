//! Guilds and channels: the world the bot sees, announced to connected sessions as it grows.

use chrono::Utc;
use serde_json::Value;

use super::{Access, Gate, Route, State};
use crate::error::SimError;
use crate::payload;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

impl State {
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

    pub(super) fn guild_create_payload(&self, guild_id: u64) -> Value {
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
}
