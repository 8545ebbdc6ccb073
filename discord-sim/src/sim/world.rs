//! Scripting the world: guilds, channels, threads and DMs.

use super::Sim;
use crate::error::SimError;
use crate::message::Author;
use crate::state::State;
use crate::world::{ChannelInfo, ChannelKind, GuildInfo};

impl Sim {
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
