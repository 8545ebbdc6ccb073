//! The gap ledger: what a database outage dropped from memory, kept for the
//! backfills that recover it. The writer records into it; the backfill takes
//! from it and settles what it recovered.
//!
//! A dropped message is still in Discord's history: per channel, the
//! smallest dropped id is remembered, so the next backfill starts below it
//! (writes finish out of order, so it may lie below the channel's largest
//! stored id). A dropped edit or delete is not in history as an event, so
//! its message id is remembered instead (up to [`REFETCH_LIMIT`] ids) and
//! the next backfill of its channel reads the message back.
//!
//! Memory is the working copy, and it survives a restart. Entries are made
//! while the database is down, so they cannot go to PostgreSQL at once: each
//! one is appended to a local [`file`](mod@file) first; when the database answers
//! again the whole ledger is written to `gap_losses` and `gap_refetch` in
//! one transaction and the file is emptied. A backfill that finished with an
//! entry deletes its row. At start, the file (and a save a crash left
//! halfway) is replayed into memory, and the rows in PostgreSQL are read
//! back once it answers: a bot killed during a long outage forgets nothing
//! it had written down.

pub mod file;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use outbox::sql::stmt;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbErr, TransactionTrait as _};

pub use file::{FILE_LIMIT, LedgerFile};

use crate::stats::Stats;

/// Message ids of dropped edits and deletes remembered for reading back
/// (8 bytes each, so at most about a megabyte). Past it, a dropped edit or
/// delete is lost and counted (`aplus_bot_refetch_overflow_total`).
pub const REFETCH_LIMIT: usize = 100_000;

/// One ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A message of `channel` with this id was dropped from memory.
    Loss { channel: i64, id: i64 },
    /// The edit or delete of message `id` of `channel` was dropped.
    Refetch { channel: i64, id: i64 },
}

/// The ledger of what was dropped, by channel.
#[derive(Debug)]
pub struct Ledger {
    /// Where the ledger is saved and settled; the shared pool.
    db: DatabaseConnection,
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

impl Ledger {
    /// An empty ledger saved to `db`, reporting its refetch counts to `stats`.
    pub fn new(db: DatabaseConnection, stats: Arc<Stats>) -> Self {
        Self {
            db,
            stats,
            losses: Mutex::new(HashMap::new()),
            refetch: Mutex::new(Refetch::default()),
            file: None,
        }
    }

    /// Keeps the ledger in the file at `path` while the database is down.
    /// What an earlier process left there is taken in by the first
    /// [`Ledger::save`] (`load_first`), so that no backfill takes an entry
    /// before it is safe in PostgreSQL.
    #[must_use]
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
    pub async fn save(&self, load_first: bool) -> Result<usize, DbErr> {
        // Set aside before the entries are read: what arrives meanwhile goes
        // to a fresh file and is saved next time.
        let set_aside = self.file.as_ref().is_some_and(LedgerFile::begin_save);
        if load_first {
            if let Some(file) = &self.file {
                let replayed = file.replay();
                if !replayed.is_empty() {
                    tracing::info!(path = %file.path().display(), entries = replayed.len(), "gap ledger file of an earlier process replayed");
                }
                self.remember(&replayed);
            }
            let stored = load(&self.db).await?;
            self.remember(&stored);
        }
        let entries = self.entries();
        save(&self.db, &entries).await?;
        if set_aside && let Some(file) = &self.file {
            file.end_save();
        }
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
    pub async fn settle_loss(&self, channel_id: i64, id: i64) {
        let statement = stmt(
            "DELETE FROM gap_losses WHERE channel_id = $1 AND floor_id >= $2",
            [channel_id.into(), id.into()],
        );
        if let Err(error) = self.db.execute_raw(statement).await {
            tracing::debug!(channel_id, %error, "could not clear a settled loss from the gap ledger");
        }
    }

    /// A backfill read these messages back: their stored rows go.
    pub async fn settle_refetch(&self, channel_id: i64, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let statement = stmt(
            "DELETE FROM gap_refetch WHERE channel_id = $1 AND message_id = ANY($2)",
            [channel_id.into(), ids.to_vec().into()],
        );
        if let Err(error) = self.db.execute_raw(statement).await {
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

    /// Takes the smallest dropped message id of a channel, for a backfill to
    /// start below it. Give it back with [`Ledger::note_loss`] if the
    /// backfill fails.
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

    /// Takes the messages of a channel to read back, oldest first. Give back
    /// what was not done with [`Ledger::restore_refetch`].
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

/// Writes `entries` to PostgreSQL in one transaction (the smallest loss per
/// channel wins; a message to read back is kept once).
async fn save(db: &DatabaseConnection, entries: &[Entry]) -> Result<(), DbErr> {
    let (mut loss_channels, mut loss_ids, mut channels, mut ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        match *entry {
            Entry::Loss { channel, id } => {
                loss_channels.push(channel);
                loss_ids.push(id);
            }
            Entry::Refetch { channel, id } => {
                channels.push(channel);
                ids.push(id);
            }
        }
    }
    let txn = db.begin().await?;
    if !loss_ids.is_empty() {
        txn.execute_raw(stmt(
            "INSERT INTO gap_losses (channel_id, floor_id) \
             SELECT channel_id, min(floor_id) FROM unnest($1::bigint[], $2::bigint[]) AS t(channel_id, floor_id) \
             GROUP BY channel_id \
             ON CONFLICT (channel_id) DO UPDATE SET floor_id = least(gap_losses.floor_id, excluded.floor_id)",
            [loss_channels.into(), loss_ids.into()],
        ))
        .await?;
    }
    if !ids.is_empty() {
        txn.execute_raw(stmt(
            "INSERT INTO gap_refetch (channel_id, message_id) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            [channels.into(), ids.into()],
        ))
        .await?;
    }
    txn.commit().await
}

/// Every entry stored in PostgreSQL.
async fn load(db: &DatabaseConnection) -> Result<Vec<Entry>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT 'L' AS kind, channel_id, floor_id AS id FROM gap_losses \
             UNION ALL SELECT 'R', channel_id, message_id FROM gap_refetch",
            [],
        ))
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get_by("kind")?;
        let channel: i64 = row.try_get_by("channel_id")?;
        let id: i64 = row.try_get_by("id")?;
        entries.push(if kind == "L" {
            Entry::Loss { channel, id }
        } else {
            Entry::Refetch { channel, id }
        });
    }
    Ok(entries)
}
