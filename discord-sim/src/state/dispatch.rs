//! Routing events to sessions: which sessions get an event (shard, explicit target, intents),
//! with which sequence number, and how message dispatches are counted in the ground truth.

use std::time::SystemTime;

use serde_json::Value;

use super::sessions::deliver;
use super::{Gate, MESSAGE_CREATE, Route, State, raw_snowflake};
use crate::error::SimError;
use crate::faults::Target;
use crate::ground_truth::EmittedMessage;
use crate::payload;

impl State {
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
    pub(super) fn dispatch_message_event(
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
}
