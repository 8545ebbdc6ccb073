//! What the simulator emitted, so a test can check a consumer's store against it.
//!
//! Every message the simulator ever created (posted live, written into history only, or sent
//! raw with a numeric id) is recorded with its channel and how often it went out. A test reads
//! the ids a consumer stored, then asks [`GroundTruth::compare`] which ones are lost,
//! duplicated or unexpected.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// One message the simulator emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedMessage {
    /// Message snowflake.
    pub id: u64,
    /// Channel (or thread, or DM channel) it was posted in.
    pub channel_id: u64,
    /// For a message in a thread: the thread's parent channel.
    pub parent_channel_id: Option<u64>,
    /// Guild, if any.
    pub guild_id: Option<u64>,
    /// True when it was posted live (dispatched to whichever sessions its shard had at that
    /// moment, possibly none); false for history-only posts.
    pub live: bool,
    /// True for messages sent with [`crate::Sim::dispatch_raw`] (not stored in history).
    pub raw: bool,
    /// True once deleted.
    pub deleted: bool,
    /// Number of content edits.
    pub edits: u32,
    /// MESSAGE_CREATE dispatches of this id: once per session it was routed to, plus each
    /// deliberate duplicate. A replay after RESUME is the same dispatch and does not count.
    pub dispatches: u32,
    /// MESSAGE_CREATE frames of this id written to sockets, replays included. A frame written
    /// just before a connection died counts although the client may never have read it.
    pub writes: u32,
    /// Wall-clock time of its first MESSAGE_CREATE dispatch, taken just before the frame was
    /// queued for the session(s); `None` when it never went to a session. Wall-clock rather than
    /// monotonic, so that a load run can subtract it from PostgreSQL's commit timestamps (same
    /// host, same clock).
    pub dispatched_at: Option<SystemTime>,
}

impl EmittedMessage {
    /// Whether the message lives in `channel_id` or in a thread under it.
    #[must_use]
    pub fn is_in_or_under(&self, channel_id: u64) -> bool {
        self.channel_id == channel_id || self.parent_channel_id == Some(channel_id)
    }
}

/// The outcome of comparing stored ids with the ground truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Expected ids that the consumer does not have, ascending.
    pub lost: Vec<u64>,
    /// Ids the consumer has more than once, with how many times, ascending.
    pub duplicated: Vec<(u64, usize)>,
    /// Ids the consumer has that were not expected (never emitted, or filtered out), ascending.
    pub unexpected: Vec<u64>,
}

impl Comparison {
    /// True when nothing is lost, duplicated or unexpected.
    #[must_use]
    pub fn is_exact(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

/// A snapshot of every message the simulator emitted, by id.
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    messages: BTreeMap<u64, EmittedMessage>,
}

impl GroundTruth {
    /// All emitted messages, ascending by id.
    pub fn messages(&self) -> impl Iterator<Item = &EmittedMessage> {
        self.messages.values()
    }

    /// One message by id.
    #[must_use]
    pub fn get(&self, id: u64) -> Option<&EmittedMessage> {
        self.messages.get(&id)
    }

    /// Number of messages recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing was emitted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Ids of the messages that match `expect`, ascending.
    pub fn ids_where(&self, expect: impl Fn(&EmittedMessage) -> bool) -> Vec<u64> {
        self.messages
            .values()
            .filter(|m| expect(m))
            .map(|m| m.id)
            .collect()
    }

    /// Compares the ids a consumer stored (each occurrence once, so duplicates show) with the
    /// messages that match `expect`.
    pub fn compare(
        &self,
        observed: impl IntoIterator<Item = u64>,
        expect: impl Fn(&EmittedMessage) -> bool,
    ) -> Comparison {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for id in observed {
            *seen.entry(id).or_default() += 1;
        }
        let expected: Vec<u64> = self.ids_where(expect);
        let lost = expected
            .iter()
            .copied()
            .filter(|id| !seen.contains_key(id))
            .collect();
        let mut duplicated: Vec<(u64, usize)> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (*id, *n))
            .collect();
        duplicated.sort_unstable();
        let mut unexpected: Vec<u64> = seen
            .keys()
            .copied()
            .filter(|id| expected.binary_search(id).is_err())
            .collect();
        unexpected.sort_unstable();
        Comparison {
            lost,
            duplicated,
            unexpected,
        }
    }

    /// Shorthand for [`GroundTruth::compare`] expecting every non-deleted, non-raw message in
    /// the given channels or in threads under them.
    pub fn compare_channels(
        &self,
        observed: impl IntoIterator<Item = u64>,
        channels: &[u64],
    ) -> Comparison {
        self.compare(observed, |m| {
            !m.deleted && !m.raw && channels.iter().any(|c| m.is_in_or_under(*c))
        })
    }

    pub(crate) fn record(&mut self, message: EmittedMessage) {
        self.messages.insert(message.id, message);
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut EmittedMessage> {
        self.messages.get_mut(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(id: u64, channel_id: u64) -> EmittedMessage {
        EmittedMessage {
            id,
            channel_id,
            parent_channel_id: None,
            guild_id: Some(1),
            live: true,
            raw: false,
            deleted: false,
            edits: 0,
            dispatches: 1,
            writes: 1,
            dispatched_at: None,
        }
    }

    #[test]
    fn comparison_reports_lost_duplicated_and_unexpected_ids() {
        let mut truth = GroundTruth::default();
        for id in 1..=5 {
            truth.record(emitted(id, 10));
        }
        truth.record(emitted(6, 99));
        let mut deleted = emitted(7, 10);
        deleted.deleted = true;
        truth.record(deleted);

        let result = truth.compare_channels([1, 2, 2, 4, 5, 6, 42], &[10]);
        assert_eq!(result.lost, vec![3]);
        assert_eq!(result.duplicated, vec![(2, 2)]);
        assert_eq!(result.unexpected, vec![6, 42]);
        assert!(!result.is_exact());
        assert!(truth.compare_channels([1, 2, 3, 4, 5], &[10]).is_exact());
    }

    #[test]
    fn thread_messages_count_under_their_parent_channel() {
        let mut truth = GroundTruth::default();
        let mut in_thread = emitted(1, 20);
        in_thread.parent_channel_id = Some(10);
        truth.record(in_thread);
        assert!(truth.compare_channels([1], &[10]).is_exact());
    }
}
