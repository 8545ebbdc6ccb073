//! Stored messages: posting, editing and deleting them (dispatching the matching event), and
//! the REST history pages read from them.

use chrono::Utc;
use serde_json::Value;

use super::{Gate, MESSAGE_CREATE, Page, Route, State};
use crate::error::SimError;
use crate::ground_truth::EmittedMessage;
use crate::message::NewMessage;
use crate::payload;
use crate::snowflake;

impl State {
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
}
