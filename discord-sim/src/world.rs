//! The simulated Discord's guilds and channels, as tests and the REST API see them.

use crate::message::Author;

/// A guild (server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildInfo {
    /// Guild snowflake; its shard is `(id >> 22) % shard_count`.
    pub id: u64,
    /// Guild name.
    pub name: String,
    /// Owner's user id.
    pub owner_id: u64,
}

/// What kind of channel a [`ChannelInfo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A guild text channel (type 0).
    Text,
    /// A guild announcement channel (type 5).
    Announcement,
    /// A public thread (type 11) under `parent_id`.
    PublicThread,
    /// A private thread (type 12) under `parent_id`.
    PrivateThread,
    /// A direct-message channel (type 1) outside any guild.
    Dm,
}

impl ChannelKind {
    /// Discord's numeric channel `type`.
    #[must_use]
    pub fn discord_type(self) -> u8 {
        match self {
            Self::Text => 0,
            Self::Dm => 1,
            Self::Announcement => 5,
            Self::PublicThread => 11,
            Self::PrivateThread => 12,
        }
    }

    /// Whether this is a thread.
    #[must_use]
    pub fn is_thread(self) -> bool {
        matches!(self, Self::PublicThread | Self::PrivateThread)
    }
}

/// A channel, thread or DM channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Channel snowflake.
    pub id: u64,
    /// Owning guild; `None` for DM channels.
    pub guild_id: Option<u64>,
    /// Channel name (empty for DMs).
    pub name: String,
    /// Kind of channel.
    pub kind: ChannelKind,
    /// For threads: the channel the thread hangs off.
    pub parent_id: Option<u64>,
    /// For DMs: the other user.
    pub recipient: Option<Author>,
    /// When true, REST reads of this channel answer 403 Missing Access.
    pub forbidden: bool,
}
