//! Scripting messages: posting (live or history only), editing, deleting and dispatching them.

use serde_json::Value;

use super::Sim;
use crate::error::SimError;
use crate::faults::Target;
use crate::message::NewMessage;

impl Sim {
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
}
