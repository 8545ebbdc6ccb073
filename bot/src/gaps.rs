//! What a database outage dropped from memory, kept for the backfills that
//! recover it.
//!
//! A dropped message is still in Discord's history: per channel, the
//! smallest dropped id is remembered, so the next backfill starts below it
//! (writes finish out of order, so it may lie below the channel's largest
//! stored id). A dropped edit or delete is not in history as an event, so
//! its message id is remembered instead (up to [`REFETCH_LIMIT`] ids) and
//! the next backfill of its channel reads the message back.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::stats::Stats;

/// Message ids of dropped edits and deletes remembered for reading back
/// (8 bytes each, so at most about a megabyte). Past it, a dropped edit or
/// delete is lost and counted (`aplus_bot_refetch_overflow_total`).
pub const REFETCH_LIMIT: usize = 100_000;

/// The ledger of what was dropped, by channel.
#[derive(Debug)]
pub struct Gaps {
    stats: Arc<Stats>,
    /// Per channel, the smallest id of a message dropped from memory and not
    /// yet covered by a backfill.
    losses: Mutex<HashMap<i64, i64>>,
    /// Per channel, message ids whose dropped edit or delete must be read
    /// back from Discord.
    refetch: Mutex<Refetch>,
}

/// Message ids to read back, by channel, with their total.
#[derive(Debug, Default)]
struct Refetch {
    by_channel: HashMap<i64, BTreeSet<i64>>,
    len: usize,
}

impl Gaps {
    /// An empty ledger that reports its refetch counts to `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            stats,
            losses: Mutex::new(HashMap::new()),
            refetch: Mutex::new(Refetch::default()),
        }
    }

    /// Remembers a message dropped from memory (or gives back a loss taken
    /// by a backfill that did not finish): the channel's next backfill
    /// starts below the smallest such id.
    pub fn note_loss(&self, channel_id: i64, id: i64) {
        let mut losses = self.losses.lock().unwrap_or_else(PoisonError::into_inner);
        let floor = losses.entry(channel_id).or_insert(id);
        *floor = (*floor).min(id);
    }

    /// Takes the smallest dropped message id of a channel.
    pub fn take_loss(&self, channel_id: i64) -> Option<i64> {
        self.losses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&channel_id)
    }

    /// Remembers a message whose edit or delete was dropped, so the next
    /// backfill of its channel reads it back.
    pub fn note_refetch(&self, channel_id: i64, id: i64) {
        let mut refetch = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        if refetch.len >= REFETCH_LIMIT {
            self.stats.refetch_overflowed();
            tracing::debug!(
                message_id = id,
                limit = REFETCH_LIMIT,
                "edit or delete dropped and too many already remembered: lost"
            );
            return;
        }
        if refetch.by_channel.entry(channel_id).or_default().insert(id) {
            refetch.len += 1;
            self.stats.refetch_pending(refetch.len);
        }
    }

    /// Takes the messages of a channel to read back, oldest first.
    pub fn take_refetch(&self, channel_id: i64) -> Vec<i64> {
        let mut refetch = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        let ids: Vec<i64> = refetch
            .by_channel
            .remove(&channel_id)
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        refetch.len -= ids.len();
        self.stats.refetch_pending(refetch.len);
        ids
    }

    /// Puts back messages taken by a backfill that did not finish.
    pub fn restore_refetch(&self, channel_id: i64, ids: &[i64]) {
        for &id in ids {
            self.note_refetch(channel_id, id);
        }
    }
}
