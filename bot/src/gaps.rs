//! What a database outage dropped from memory, kept for the backfills that
//! recover it.
//!
//! A dropped message is still in Discord's history: per channel, the
//! smallest dropped id is remembered, so the next backfill starts below it
//! (writes finish out of order, so it may lie below the channel's largest
//! stored id). A dropped edit or delete is not in history as an event, so
//! its message id is remembered instead (up to [`REFETCH_LIMIT`] ids) and
//! the next backfill of its channel reads the message back.
//!
//! Memory is the working copy; [`crate::ledger`] keeps the ledger across a
//! restart (a local file while the database is down, then PostgreSQL).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::{DatabaseConnection, DbErr};

use crate::ledger::{self, Entry, LedgerFile};
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
    /// Where entries go while the database is down.
    file: Option<LedgerFile>,
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
            file: None,
        }
    }

    /// Keeps the ledger in the file at `path` while the database is down.
    /// What an earlier process left there is taken in by the first
    /// [`Gaps::save`] (`load_first`), so that no backfill takes an entry
    /// before it is safe in PostgreSQL.
    pub fn with_file(mut self, path: PathBuf) -> Self {
        self.file = Some(LedgerFile::new(path));
        self
    }

    /// Writes entries to the file only: what the outage buffer holds, which
    /// a process killed before the buffer drains would otherwise forget.
    pub fn write_down(&self, entries: &[Entry]) {
        for entry in entries {
            self.append(*entry);
        }
    }

    /// Remembers entries in memory (already written down).
    pub fn remember(&self, entries: &[Entry]) {
        self.take_in(entries);
    }

    fn take_in(&self, entries: &[Entry]) {
        for entry in entries {
            match *entry {
                Entry::Loss { channel, id } => self.remember_loss(channel, id),
                Entry::Refetch { channel, id } => {
                    self.remember_refetch(channel, id);
                }
            }
        }
    }

    fn append(&self, entry: Entry) {
        if let Some(file) = &self.file {
            file.append(entry);
        }
    }

    /// Writes the whole ledger to PostgreSQL (after reading back what is
    /// stored there, when `load_first`: at start) and empties the file.
    /// Returns how many entries the ledger holds.
    pub async fn save(&self, db: &DatabaseConnection, load_first: bool) -> Result<usize, DbErr> {
        let set_aside = ledger::begin_save(self.file.as_ref());
        if load_first {
            if let Some(file) = &self.file {
                let replayed = file.replay();
                if !replayed.is_empty() {
                    tracing::info!(path = %file.path().display(), entries = replayed.len(), "gap ledger file of an earlier process replayed");
                }
                self.take_in(&replayed);
            }
            let stored = ledger::load(db).await?;
            self.take_in(&stored);
        }
        let entries = self.entries();
        ledger::save(db, self.file.as_ref(), set_aside, &entries).await?;
        Ok(entries.len())
    }

    /// Every entry in memory now.
    fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .losses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(&channel, &id)| Entry::Loss { channel, id })
            .collect();
        let refetch = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        for (&channel, ids) in &refetch.by_channel {
            entries.extend(ids.iter().map(|&id| Entry::Refetch { channel, id }));
        }
        entries
    }

    /// A backfill recovered a channel's loss: its stored row goes (if the
    /// database does not answer, the row stays and costs one more backfill).
    pub async fn settle_loss(&self, db: &DatabaseConnection, channel_id: i64, id: i64) {
        if let Err(error) = ledger::settle_loss(db, channel_id, id).await {
            tracing::debug!(channel_id, %error, "could not clear a settled loss from the gap ledger");
        }
    }

    /// A backfill read these messages back: their stored rows go.
    pub async fn settle_refetch(&self, db: &DatabaseConnection, channel_id: i64, ids: &[i64]) {
        if let Err(error) = ledger::settle_refetch(db, channel_id, ids).await {
            tracing::debug!(channel_id, %error, "could not clear read-back messages from the gap ledger");
        }
    }

    /// Remembers a message dropped from memory (or gives back a loss taken
    /// by a backfill that did not finish): the channel's next backfill
    /// starts below the smallest such id.
    pub fn note_loss(&self, channel_id: i64, id: i64) {
        self.remember_loss(channel_id, id);
        self.append(Entry::Loss {
            channel: channel_id,
            id,
        });
    }

    fn remember_loss(&self, channel_id: i64, id: i64) {
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
        if self.remember_refetch(channel_id, id) {
            self.append(Entry::Refetch {
                channel: channel_id,
                id,
            });
        }
    }

    /// Returns whether the id is remembered now.
    fn remember_refetch(&self, channel_id: i64, id: i64) -> bool {
        let mut refetch = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        if refetch.len >= REFETCH_LIMIT {
            self.stats.refetch_overflowed();
            tracing::debug!(
                message_id = id,
                limit = REFETCH_LIMIT,
                "edit or delete dropped and too many already remembered: lost"
            );
            return false;
        }
        if refetch.by_channel.entry(channel_id).or_default().insert(id) {
            refetch.len += 1;
            self.stats.refetch_pending(refetch.len);
        }
        true
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
