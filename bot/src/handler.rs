//! The gateway side: serenity's raw events turned into writes.
//!
//! A [`RawEventHandler`] sees every dispatch, including the ones serenity
//! could not decode (`Event::Unknown`), which a typed event handler never
//! hears of; so an undecodable MESSAGE_CREATE is counted instead of vanishing.
//! serenity runs each call as its own task, so nothing here depends on the
//! order of events: the outbox decides a create racing its delete or its edit
//! under a per-message lock. Each call converts its event to a compact write
//! and hands it to the writer's bounded queue; when the queue is full the
//! call waits there, holding only that write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use outbox::payload::Source;
use serde_json::Value;
use serenity::all::{ChannelId, Context, Event, Message, MessageId, MessageUpdateEvent};
use serenity::async_trait;
use serenity::client::RawEventHandler;
use tokio_util::task::TaskTracker;

use crate::backfill::Backfiller;
use crate::channels::{Channels, Membership};
use crate::convert;
use crate::error::error_chain;
use crate::ingest::Write;
use crate::stats::{Rejection, Stats};
use crate::writer::Writer;

/// Handles the gateway's events.
#[derive(Debug, Clone)]
pub struct Handler {
    writer: Arc<Writer>,
    channels: Arc<Channels>,
    backfiller: Arc<Backfiller>,
    stats: Arc<Stats>,
    keep_bot_messages: bool,
    /// In-flight handler calls, so shutdown can let them finish.
    in_flight: TaskTracker,
    /// Rejected gateway messages so far, to keep their log lines few.
    rejections_seen: Arc<AtomicU64>,
}

/// Whether the `n`th (from 1) of a run of similar log lines is written: the
/// first ten, then every thousandth, so a flood of bad input cannot flood
/// the log.
fn worth_logging(n: u64) -> bool {
    n <= 10 || n.is_multiple_of(1000)
}

impl Handler {
    /// A handler writing through `writer`.
    pub fn new(
        writer: Arc<Writer>,
        channels: Arc<Channels>,
        backfiller: Arc<Backfiller>,
        stats: Arc<Stats>,
        keep_bot_messages: bool,
        in_flight: TaskTracker,
    ) -> Self {
        Self {
            writer,
            channels,
            backfiller,
            stats,
            keep_bot_messages,
            in_flight,
            rejections_seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether a channel is watched; unlisted and unknown channels are not.
    /// A thread seen for the first time is backfilled, in case it started
    /// while the bot was away.
    async fn watched(&self, channel_id: ChannelId) -> Result<bool, Rejection> {
        match self.channels.membership(channel_id.get()).await {
            Ok(Membership::Thread { new: true, .. }) => {
                self.backfiller.request(channel_id.get());
                Ok(true)
            }
            Ok(membership) => Ok(membership.is_watched()),
            Err(error) => {
                tracing::warn!(channel_id = channel_id.get(), error = %error_chain(&error), "cannot tell whether this channel is a watched thread; its event is not stored");
                Err(Rejection::ChannelLookupFailed)
            }
        }
    }

    /// A MESSAGE_CREATE.
    pub async fn on_message(&self, message: Message) {
        self.stats.received(Source::Gateway, 1);
        let message_id = message.id.get();
        let channel_id = message.channel_id.get();
        let verdict = match self.watched(message.channel_id).await {
            Ok(true) => convert::check_author(&message, self.keep_bot_messages).and_then(|()| {
                convert::new_message(&message, convert::raw_payload(&message), None)
            }),
            Ok(false) => Err(Rejection::UnlistedChannel),
            Err(reason) => Err(reason),
        };
        // Only the compact row waits for a slot in the write queue, not the
        // gateway's message: a burst parks thousands of these calls.
        drop(message);
        match verdict {
            Ok(row) => {
                self.writer
                    .submit(Write::Create {
                        message: row,
                        source: Source::Gateway,
                    })
                    .await
            }
            Err(reason) => {
                self.stats.rejected(reason);
                match reason {
                    Rejection::UnlistedChannel | Rejection::BotAuthor => {
                        tracing::trace!(message_id, channel_id, %reason, "message ignored")
                    }
                    _ => {
                        let seen = self.rejections_seen.fetch_add(1, Ordering::Relaxed) + 1;
                        if worth_logging(seen) {
                            tracing::warn!(message_id, channel_id, %reason, total = seen, "message rejected");
                        }
                    }
                }
            }
        }
    }

    /// A MESSAGE_UPDATE.
    pub async fn on_update(&self, event: MessageUpdateEvent) {
        if !matches!(self.watched(event.channel_id).await, Ok(true)) {
            return;
        }
        let update = convert::update(&event);
        let message_id = event.id.get();
        // As for creates: only the converted update waits for a queue slot.
        drop(event);
        match update {
            Ok(mut update) => {
                if !self.keep_bot_messages && update.full.as_ref().is_some_and(|m| m.author_is_bot)
                {
                    update.full = None;
                }
                self.writer.submit(Write::Edit(update)).await;
            }
            Err(reason) => {
                self.stats.rejected(reason);
                tracing::warn!(message_id, %reason, "update rejected");
            }
        }
    }

    /// A MESSAGE_DELETE (or one id of a bulk delete).
    pub async fn on_delete(&self, channel_id: ChannelId, message_id: MessageId) {
        if !matches!(self.watched(channel_id).await, Ok(true)) {
            return;
        }
        match (
            convert::snowflake(message_id.get()),
            convert::snowflake(channel_id.get()),
        ) {
            (Ok(id), Ok(channel_id)) => self.writer.submit(Write::Delete { id, channel_id }).await,
            _ => {
                self.stats.rejected(Rejection::SnowflakeOutOfRange);
                tracing::warn!(
                    message_id = message_id.get(),
                    "delete rejected: snowflake out of range"
                );
            }
        }
    }

    fn on_undecodable(&self, kind: &str, value: &Value) {
        if kind != "MESSAGE_CREATE" {
            tracing::debug!(kind, "undecodable or unknown dispatch ignored");
            return;
        }
        self.stats.rejected(Rejection::Undecodable);
        let seen = self.rejections_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if worth_logging(seen) {
            let id = value.get("id").map(|v| v.to_string());
            let channel_id = value.get("channel_id").map(|v| v.to_string());
            tracing::warn!(
                message_id = id.as_deref().unwrap_or("?"),
                channel_id = channel_id.as_deref().unwrap_or("?"),
                total = seen,
                "a MESSAGE_CREATE did not decode as a message; skipped"
            );
        }
    }
}

#[async_trait]
impl RawEventHandler for Handler {
    async fn raw_event(&self, ctx: Context, event: Event) {
        // Held until the call returns, so shutdown waits for in-flight writes.
        let _in_flight = self.in_flight.token();
        match event {
            Event::MessageCreate(event) => self.on_message(event.message).await,
            Event::MessageUpdate(event) => self.on_update(event).await,
            Event::MessageDelete(event) => self.on_delete(event.channel_id, event.message_id).await,
            Event::MessageDeleteBulk(event) => {
                for id in event.ids {
                    self.on_delete(event.channel_id, id).await;
                }
            }
            Event::Ready(event) => {
                self.stats.ready();
                tracing::info!(shard = ctx.shard_id.0, user = %event.ready.user.name, guilds = event.ready.guilds.len(), "gateway session ready; backfilling the watched channels of its guilds");
                self.backfiller.new_session();
                self.backfiller.request_shard(ctx.shard_id.0, "ready");
            }
            Event::Resumed(_) => {
                self.stats.resumed();
                tracing::info!(
                    shard = ctx.shard_id.0,
                    "gateway session resumed; backfilling the watched channels of its guilds"
                );
                self.backfiller.request_shard(ctx.shard_id.0, "resumed");
            }
            Event::Unknown(event) => self.on_undecodable(&event.kind, &event.value),
            _ => {}
        }
    }
}
