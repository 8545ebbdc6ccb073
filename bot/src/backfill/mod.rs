//! Gap backfill from Discord's history.
//!
//! For a channel: read the largest stored message id, then page
//! `GET /channels/{id}/messages?after=<id>&limit=100` until a page comes back
//! short. Discord returns each page newest first; it is stored in ascending
//! order as one transaction (`record_messages`, source `backfill`), NOTIFYed
//! after commit, and the next page starts after the largest id of this one.
//! Live messages racing a backfill are harmless: both sides insert by id and
//! the second is a duplicate.
//!
//! Where a run starts: the largest stored id, but lower when the writer
//! dropped a message of the channel from its full outage buffer (it may lie
//! below that id), and, at the first run of each channel after start, a few
//! minutes lower still (`--backfill-overlap`), for writes that were in
//! flight when a previous process died. The same holds after every new
//! gateway session (a re-identify), whose gap can hide edits and deletes of
//! messages already stored. Reading a little more than needed
//! costs duplicates, which are skipped by id.
//!
//! A run that caught up then reads back, one by one, the messages whose edit
//! or delete the writer dropped from its full outage buffer: the message as
//! it is now is applied as an edit (an unchanged one writes nothing), and
//! Discord's "unknown message" as a delete.
//!
//! Every channel has one worker task, so a channel is never backfilled twice
//! at once; requests made while it runs coalesce into one more run, which
//! picks up whatever arrived meanwhile.
//!
//! The scheduled sweep ([`crate::sweep`]) reads a trailing window through the
//! same pages and the same diff (`Backfiller::sweep_channel`), with source
//! `sweep`; it waits before every page while any backfill run is in
//! progress, so it never holds up the recovery of a live gap.
//!
//! Here: the per-channel scheduler (one worker each) and a run's start.
//! `pages` reads history pages and stores them; [`changes`] decides, without
//! a database, which edits and deletes a page reveals; `readback` reads
//! back the messages whose edit or delete an outage dropped.

pub mod changes;
mod pages;
mod readback;

pub use pages::PAGE_SIZE;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outbox::payload::Source;
use outbox::{Backoff, OutboxError};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::Channels;
use crate::convert;
use crate::error::error_chain;
use crate::ledger::Ledger;
use crate::reads;
use crate::rest::{Rest, RestError};
use crate::stats::Stats;
use crate::writer::Writer;

/// What one backfill run (or sweep) of a channel did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Pages read.
    pub pages: u64,
    /// Messages in those pages.
    pub seen: u64,
    /// Messages newly stored.
    pub stored: u64,
    /// The id the run started after.
    pub started_after: u64,
    /// The largest id seen (the new high-water mark).
    pub caught_up_to: u64,
    /// Messages read back because their edit or delete was dropped.
    pub refetched: u64,
    /// Edits and deletes found in the pages read (made while nobody
    /// listened) and applied.
    pub changes: u64,
    /// Of `stored`, the messages older than the run's settle bound
    /// (`Pass::settled_before`): ones the gateway had time to deliver.
    pub missing: u64,
    /// Of `changes`, the edits.
    pub edits: u64,
    /// Of `changes`, the deletes.
    pub deletes: u64,
    /// Messages listed per hour of their snowflake time (Unix seconds of
    /// the hour's start).
    pub listed_by_hour: BTreeMap<i64, u64>,
}

/// How a run reads history: where from, which source its stores carry, and
/// whether it gives way to backfills.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    /// Page after this id.
    pub start: u64,
    /// `Backfill`, or `Sweep` for a scheduled sweep.
    pub source: Source,
    /// Stored messages up to this id existed in Discord before the first
    /// page was asked for: once history is read to its end, one of them
    /// Discord no longer lists was deleted, even above the last page's
    /// largest id (where a page alone cannot tell). 0: only page ranges.
    pub known_up_to: u64,
    /// A message stored by the run with a smaller id counts as `missing`:
    /// the gateway had time to deliver it and did not.
    pub settled_before: u64,
    /// Wait before each page while a backfill is running (a sweep must
    /// never hold up the recovery of a live gap).
    pub yield_to_backfill: bool,
}

/// Why a backfill run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Reading history failed.
    #[error("reading history")]
    Rest(#[from] RestError),
    /// Reading the high-water mark or storing a page failed.
    #[error("storing history")]
    Database(#[from] OutboxError),
}

/// Runs backfills, one worker per channel.
#[derive(Debug)]
pub struct Backfiller {
    writer: Arc<Writer>,
    /// The backfill's reads of `messages` (the shared pool).
    db: DatabaseConnection,
    /// Where a run starts below a loss, and what it reads back.
    ledger: Arc<Ledger>,
    rest: Rest,
    channels: Arc<Channels>,
    stats: Arc<Stats>,
    settings: BackfillSettings,
    workers: Mutex<HashMap<u64, Arc<Notify>>>,
    /// Gateway sessions begun (each `ready`): a new session heard none of
    /// the edits and deletes made before it.
    session: AtomicU64,
    /// Per channel, the session of its last complete run.
    caught_up: Mutex<HashMap<u64, u64>>,
    /// Per channel, the id its last complete run started after and when it
    /// finished: a run that started low enough already swept the window.
    last_run: Mutex<HashMap<u64, (u64, std::time::Instant)>>,
    /// Backfill runs in progress, and a wake-up for each end of one.
    running: AtomicU64,
    idle: Notify,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// How backfills read history.
#[derive(Debug, Clone, Copy)]
pub struct BackfillSettings {
    /// Store messages of bots and webhooks.
    pub keep_bot_messages: bool,
    /// At the first run of a channel in a gateway session, read again from
    /// this long before its last stored message.
    pub overlap: Duration,
}

impl Backfiller {
    /// A backfiller whose workers stop when `shutdown` fires. It writes
    /// through `writer`, reads `messages` on `db` and takes its gaps from
    /// `ledger`.
    // Each argument is a separate part of the bot handed over at
    // construction; bundling them would only rename the list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        writer: Arc<Writer>,
        db: DatabaseConnection,
        ledger: Arc<Ledger>,
        rest: Rest,
        channels: Arc<Channels>,
        stats: Arc<Stats>,
        settings: BackfillSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            writer,
            db,
            ledger,
            rest,
            channels,
            stats,
            settings,
            workers: Mutex::new(HashMap::new()),
            session: AtomicU64::new(0),
            caught_up: Mutex::new(HashMap::new()),
            last_run: Mutex::new(HashMap::new()),
            running: AtomicU64::new(0),
            idle: Notify::new(),
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// Asks for a backfill of every watched channel (listed and known threads).
    pub fn request_all(self: &Arc<Self>, reason: &'static str) {
        let channels = self.channels.watched();
        tracing::debug!(reason, channels = channels.len(), "backfill requested");
        for channel_id in channels {
            self.request(channel_id);
        }
    }

    /// Asks for a backfill of the watched channels whose guild is on `shard`
    /// (a shard's session began or resumed: only its guilds' events may
    /// have been missed). Looking the channels up may take a REST call, so
    /// it runs on its own task.
    pub fn request_shard(self: &Arc<Self>, shard: u32, reason: &'static str) {
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let channels = tokio::select! {
                _ = this.shutdown.cancelled() => return,
                channels = this.channels.watched_on(shard) => channels,
            };
            tracing::debug!(
                reason,
                shard,
                channels = channels.len(),
                "backfill requested"
            );
            for channel_id in channels {
                this.request(channel_id);
            }
        });
    }

    /// A new gateway session began (`ready`: the first, or a re-identify after
    /// INVALID_SESSION). It heard nothing from the old one's end, so the
    /// next run of every channel re-reads the overlap window again, where
    /// the edits and deletes made in between show.
    pub fn new_session(&self) {
        self.session.fetch_add(1, Ordering::AcqRel);
    }

    /// Asks for a backfill of one channel: starts its worker, or queues one
    /// more run if it is busy.
    pub fn request(self: &Arc<Self>, channel_id: u64) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        let wake = workers.entry(channel_id).or_insert_with(|| {
            let wake = Arc::new(Notify::new());
            self.tracker
                .spawn(Arc::clone(self).worker(channel_id, Arc::clone(&wake)));
            wake
        });
        wake.notify_one();
    }

    /// Waits (up to `deadline`) for the workers after shutdown.
    pub async fn stopped(&self, deadline: Duration) {
        self.tracker.close();
        let _ = tokio::time::timeout(deadline, self.tracker.wait()).await;
    }

    async fn worker(self: Arc<Self>, channel_id: u64, wake: Arc<Notify>) {
        let retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return,
                _ = wake.notified() => {}
            }
            let mut attempt = 0;
            loop {
                let result = {
                    let _running = Running::start(&self);
                    tokio::select! {
                        biased;
                        _ = self.shutdown.cancelled() => return,
                        result = self.backfill_channel(channel_id) => result,
                    }
                };
                match result {
                    Ok(report) => {
                        self.stats.backfill_run("caught_up");
                        self.channels.mark_readable(channel_id);
                        if report.stored > 0 {
                            tracing::info!(
                                channel_id,
                                pages = report.pages,
                                stored = report.stored,
                                after = report.started_after,
                                up_to = report.caught_up_to,
                                "backfilled a gap"
                            );
                        } else {
                            tracing::debug!(
                                channel_id,
                                pages = report.pages,
                                "backfill: nothing missing"
                            );
                        }
                        break;
                    }
                    Err(error) => {
                        self.stats.backfill_run("failed");
                        match &error {
                            // The writer has begun an outage; its recovery asks again.
                            BackfillError::Database(_) => {
                                tracing::debug!(channel_id, error = %error_chain(&error), "backfill stopped: database unavailable; it runs again when the database is back");
                                break;
                            }
                            BackfillError::Rest(RestError::Cancelled) => return,
                            BackfillError::Rest(rest) if rest.is_transient() => {
                                attempt += 1;
                                let delay = retry.delay(attempt);
                                tracing::warn!(channel_id, attempt, retry_in_ms = delay.as_millis() as u64, error = %error_chain(&error), "backfill failed; retrying");
                                tokio::select! {
                                    _ = self.shutdown.cancelled() => return,
                                    _ = tokio::time::sleep(delay) => {}
                                }
                            }
                            BackfillError::Rest(rest) => {
                                self.channels.mark_refused(channel_id, rest);
                                tracing::error!(channel_id, error = %error_chain(&error), "backfill refused by Discord; retried at the next reconnect");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One backfill run of a channel, until caught up: the iteration the
    /// channel's worker repeats, callable directly by tests and tools (a
    /// direct call does not take the worker's turn, so avoid running one
    /// while the worker may).
    #[tracing::instrument(level = "debug", skip(self), err)]
    pub async fn backfill_channel(&self, channel_id: u64) -> Result<BackfillReport, BackfillError> {
        // Another process's shard owns the channel's guild: it backfills it.
        if !self.channels.owned(channel_id).await? {
            return Ok(BackfillReport::default());
        }
        // History messages come without `guild_id`; the channel has it.
        let guild_id = match self.channels.info(channel_id).await {
            Ok(info) => info.and_then(|i| i.guild_id),
            Err(RestError::Cancelled) => return Err(RestError::Cancelled.into()),
            Err(_) => None,
        };
        let stored_max = self.high_water_mark(channel_id).await?;
        let session = self.session.load(Ordering::Acquire);
        let first_run = self
            .caught_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&channel_id)
            != Some(&session);
        let mut start = if first_run && stored_max > 0 {
            convert::snowflake_before(stored_max, self.settings.overlap)
        } else {
            stored_max
        };
        let channel_key = i64::try_from(channel_id).unwrap_or(i64::MAX);
        let loss = self.ledger.take_loss(channel_key);
        if let Some(lost) = loss {
            start = start.min(u64::try_from(lost).unwrap_or(0).saturating_sub(1));
        }
        let pass = Pass {
            start,
            source: Source::Backfill,
            known_up_to: 0,
            settled_before: 0,
            yield_to_backfill: false,
        };
        let mut result = self.pages_after(channel_id, pass, guild_id).await;
        if let Ok(report) = &mut result {
            match self.refetch(channel_id, guild_id).await {
                Ok(refetched) => report.refetched = refetched,
                Err(error) => result = Err(error),
            }
        }
        match (&result, loss) {
            (Ok(report), _) => {
                self.caught_up
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(channel_id, session);
                self.last_run
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        channel_id,
                        (report.started_after, std::time::Instant::now()),
                    );
                if let Some(lost) = loss {
                    self.ledger.settle_loss(channel_key, lost).await;
                }
            }
            (Err(_), Some(lost)) => self.ledger.note_loss(channel_key, lost),
            (Err(_), None) => {}
        }
        result
    }

    /// A sweep of one channel: reads history from `start` to its end like a
    /// backfill (storing what is missing with source `sweep`, applying newer
    /// edits and deletes), giving way to backfills before every page.
    pub(crate) async fn sweep_channel(
        &self,
        channel_id: u64,
        start: u64,
        settled_before: u64,
    ) -> Result<BackfillReport, BackfillError> {
        let guild_id = match self.channels.info(channel_id).await {
            Ok(info) => info.and_then(|i| i.guild_id),
            Err(RestError::Cancelled) => return Err(RestError::Cancelled.into()),
            Err(_) => None,
        };
        let known_up_to = self.high_water_mark(channel_id).await?;
        let pass = Pass {
            start,
            source: Source::Sweep,
            known_up_to,
            settled_before,
            yield_to_backfill: true,
        };
        self.pages_after(channel_id, pass, guild_id).await
    }

    /// Whether a backfill of the channel that finished within `within`
    /// started at or below `start`: it read (at least) what a sweep from
    /// `start` would.
    pub(crate) fn covered_since(&self, channel_id: u64, start: u64, within: Duration) -> bool {
        self.last_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&channel_id)
            .is_some_and(|(after, at)| *after <= start && at.elapsed() <= within)
    }

    /// Waits until no backfill run is in progress.
    async fn backfills_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = idle => {}
            }
        }
    }

    /// A failed read of `messages`: the writer's outage begins (its recovery
    /// asks for the backfill again).
    fn database_failed(&self, error: sea_orm::DbErr) -> OutboxError {
        let error = OutboxError::from(error);
        self.writer.begin_outage(&error);
        error
    }

    /// The largest stored message id of a channel (0 when none).
    async fn high_water_mark(&self, channel_id: u64) -> Result<u64, OutboxError> {
        reads::messages_max_id(&self.db, channel_id)
            .await
            .map_err(|e| self.database_failed(e))
    }
}

/// Counts a backfill run as in progress while it lives.
struct Running<'a>(&'a Backfiller);

impl<'a> Running<'a> {
    fn start(backfiller: &'a Backfiller) -> Self {
        backfiller.running.fetch_add(1, Ordering::AcqRel);
        Self(backfiller)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.idle.notify_waiters();
    }
}
