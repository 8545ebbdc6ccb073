//! What a test asks the simulator to post: [`NewMessage`] and its [`Author`].
//!
//! These are plain descriptions. The JSON that Discord would send for them is made in
//! [`crate::payload`], so every message, whatever its shape, gets every field serenity needs.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The user (or bot, or webhook) a message is shown as posted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Snowflake of the user.
    pub id: u64,
    /// `username` field.
    pub username: String,
    /// `global_name` (display name), if any.
    pub global_name: Option<String>,
    /// Whether the account is a bot (`bot: true`); webhooks are shown as bots too.
    pub bot: bool,
}

impl Author {
    /// A human user.
    #[must_use]
    pub fn user(id: u64, username: impl Into<String>) -> Self {
        Self {
            id,
            username: username.into(),
            global_name: None,
            bot: false,
        }
    }

    /// A bot account.
    #[must_use]
    pub fn bot(id: u64, username: impl Into<String>) -> Self {
        Self {
            id,
            username: username.into(),
            global_name: None,
            bot: true,
        }
    }
}

impl Default for Author {
    /// The human who posts the A+ setups in the demo, with the id of the real fixture author.
    fn default() -> Self {
        Self::user(808_743_496_341_127_200, "rbotj")
    }
}

/// Where a forwarded message came from, and what it said.
///
/// Discord shows a forward as a message with an empty top-level `content`, a
/// `message_reference` of type 1 pointing at the original, flag `HAS_SNAPSHOT` (16384), and the
/// original's text in `message_snapshots[0].message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// Text of the original message.
    pub content: String,
    /// Embeds of the original message.
    pub embeds: Vec<Value>,
    /// Attachments of the original message.
    pub attachments: Vec<Value>,
    /// Guild of the original message (`None` for a DM origin).
    pub origin_guild_id: Option<u64>,
    /// Channel of the original message.
    pub origin_channel_id: u64,
    /// Id of the original message; `None` lets the simulator pick one a minute older than the
    /// forward.
    pub origin_message_id: Option<u64>,
}

/// A message to post, built with the constructors and `with_*`/setter methods below.
///
/// ```
/// use discord_sim::{Author, NewMessage};
/// let msg = NewMessage::text(42, "A+ Trade Setups — Thursday May 15")
///     .author(Author::user(7, "trader"))
///     .embed(discord_sim::payload::embed("Chart", "SPY levels"));
/// assert_eq!(msg.channel_id, 42);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Channel (or thread, or DM channel) it is posted in.
    pub channel_id: u64,
    /// Explicit id; `None` makes a fresh snowflake (from [`NewMessage::at`] or now).
    pub id: Option<u64>,
    /// Explicit creation time; `None` derives it from the id.
    pub at: Option<DateTime<Utc>>,
    /// Top-level `content`.
    pub content: String,
    /// Who posted it.
    pub author: Author,
    /// `embeds` (raw Discord embed objects; see [`crate::payload::embed`]).
    pub embeds: Vec<Value>,
    /// `attachments` (raw Discord attachment objects; see [`crate::payload::attachment`]).
    pub attachments: Vec<Value>,
    /// Users in `mentions`.
    pub mentions: Vec<Author>,
    /// `mention_everyone`.
    pub mention_everyone: bool,
    /// `webhook_id`: set for messages posted by a webhook.
    pub webhook_id: Option<u64>,
    /// Makes this a forward of another message.
    pub forward: Option<Forward>,
    /// Extra `flags` bits (forwards get `HAS_SNAPSHOT` added automatically).
    pub flags: u64,
    /// Message `type` (0 = default, 19 = reply, ...).
    pub kind: u8,
    /// Fields merged over the finished message object last, to shape odd payloads.
    pub extra: Map<String, Value>,
}

impl NewMessage {
    /// A plain text message by the default author.
    #[must_use]
    pub fn text(channel_id: u64, content: impl Into<String>) -> Self {
        Self {
            channel_id,
            id: None,
            at: None,
            content: content.into(),
            author: Author::default(),
            embeds: Vec::new(),
            attachments: Vec::new(),
            mentions: Vec::new(),
            mention_everyone: false,
            webhook_id: None,
            forward: None,
            flags: 0,
            kind: 0,
            extra: Map::new(),
        }
    }

    /// A forward: empty top-level content, `text` only in `message_snapshots[0].message`.
    #[must_use]
    pub fn forward(channel_id: u64, text: impl Into<String>) -> Self {
        let mut msg = Self::text(channel_id, "");
        msg.forward = Some(Forward {
            content: text.into(),
            embeds: Vec::new(),
            attachments: Vec::new(),
            origin_guild_id: None,
            origin_channel_id: channel_id,
            origin_message_id: None,
        });
        msg
    }

    /// A message with no text, only embeds (how many alert bots post).
    #[must_use]
    pub fn embed_only(channel_id: u64, embeds: Vec<Value>) -> Self {
        let mut msg = Self::text(channel_id, "");
        msg.embeds = embeds;
        msg
    }

    /// Uses an explicit message id.
    #[must_use]
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// Posts "at" a given time (the id is made from it unless set explicitly).
    #[must_use]
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// Sets the author.
    #[must_use]
    pub fn author(mut self, author: Author) -> Self {
        self.author = author;
        self
    }

    /// Shows the message as posted by a bot account.
    #[must_use]
    pub fn from_bot(mut self, id: u64, username: impl Into<String>) -> Self {
        self.author = Author::bot(id, username);
        self
    }

    /// Shows the message as posted by a webhook: `webhook_id` set and an author whose id is
    /// the webhook's, with `bot: true`, as Discord does.
    #[must_use]
    pub fn from_webhook(mut self, webhook_id: u64, name: impl Into<String>) -> Self {
        self.author = Author::bot(webhook_id, name);
        self.webhook_id = Some(webhook_id);
        self
    }

    /// Adds an embed.
    #[must_use]
    pub fn embed(mut self, embed: Value) -> Self {
        self.embeds.push(embed);
        self
    }

    /// Adds an attachment.
    #[must_use]
    pub fn attachment(mut self, attachment: Value) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Adds a user mention.
    #[must_use]
    pub fn mention(mut self, user: Author) -> Self {
        self.mentions.push(user);
        self
    }

    /// Sets `mention_everyone`.
    #[must_use]
    pub fn mention_everyone(mut self) -> Self {
        self.mention_everyone = true;
        self
    }

    /// For a forward: says where the original came from.
    #[must_use]
    pub fn forwarded_from(
        mut self,
        guild_id: Option<u64>,
        channel_id: u64,
        message_id: Option<u64>,
    ) -> Self {
        if let Some(forward) = self.forward.as_mut() {
            forward.origin_guild_id = guild_id;
            forward.origin_channel_id = channel_id;
            forward.origin_message_id = message_id;
        }
        self
    }

    /// For a forward: adds an embed to the snapshot of the original.
    #[must_use]
    pub fn snapshot_embed(mut self, embed: Value) -> Self {
        if let Some(forward) = self.forward.as_mut() {
            forward.embeds.push(embed);
        }
        self
    }

    /// Merges a raw field over the finished payload (for deliberately odd messages).
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The text a reader sees: top-level content, or the snapshot's for a forward.
    #[must_use]
    pub fn visible_text(&self) -> &str {
        match &self.forward {
            Some(forward) if self.content.is_empty() => &forward.content,
            _ => &self.content,
        }
    }
}
