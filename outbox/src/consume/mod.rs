//! Claiming events and completing each with its inbox row and effects.
//!
//! One batch is one transaction: claim up to `batch_size` events with
//! `FOR UPDATE SKIP LOCKED` (so any number of workers share the work), write
//! the inbox rows of the whole batch in one statement, and hand the batch to
//! [`Handler::handle_batch`], which applies the effects set-based. An event's
//! inbox row and its effects commit together: a crash anywhere rolls both
//! back, and a second delivery finds the inbox row and applies nothing.
//!
//! The fast path runs inside one savepoint. If it fails, the savepoint rolls
//! back and the batch is handled again one event at a time, each in its own
//! savepoint ([`Handler::handle`]); a failing event then records its failure
//! (attempts, backoff, last error), so one poison event never holds up the
//! rest of its batch.
//!
//! A [`Consumer`] remembers where its last claim ended, so the next claim does
//! not walk again over the events it just completed (see [`Consumer`]).
//!
//! `claim` holds the claim's SQL, `batch` the inbox writes and the handling
//! of one batch; [`Consumer::drain`] is the loop around them.
//!
//! The batch transaction is also the lease: the worker's sessions run with
//! `idle_in_transaction_session_timeout`, so a worker that stalls mid-batch
//! (paused, wedged) loses its session and its locks, and its late commit fails.

mod batch;
mod claim;

use std::future::Future;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Backoff, EventKind, OutboxError};

/// The consumer's defaults, written once: [`ConsumerConfig::new`] and the
/// worker's flags both use them.
pub mod defaults {
    use std::time::Duration;

    use crate::Backoff;

    /// Events claimed per batch transaction. A batch costs about ten
    /// statements whatever its size, so a backlog drains faster in large
    /// batches; at a low rate batches stay small anyway.
    pub const BATCH_SIZE: u32 = 500;
    /// Attempts before an event is `dead`.
    pub const MAX_ATTEMPTS: u32 = 8;
    /// Delay before each retry of a failed event: 1 s, doubling up to 5 min.
    pub const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
}

/// An event claimed by this worker for the length of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedEvent {
    pub id: Uuid,
    pub message_id: i64,
    pub kind: EventKind,
    pub payload: Json,
    pub created_at: DateTime<Utc>,
    /// Attempts before this one.
    pub attempts: i32,
    /// How long the event had waited when it was claimed (database clock).
    pub age_at_claim: Duration,
}

/// The error a handler returns: any error; its whole cause chain is recorded.
pub type HandlerError = anyhow::Error;

/// Applies an event's effects inside the given transaction (a savepoint of
/// the batch). It must not commit, and must be safe to run again after a
/// rollback: everything it writes rolls back with the inbox row.
pub trait Handler: Send + Sync {
    /// Handles one event.
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ClaimedEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;

    /// Handles a whole batch, in claim order. An error (or a panic) rolls the
    /// batch back and each event is then handled alone with
    /// [`Handler::handle`], so a batch implementation may simply fail on the
    /// first problem. The default handles the events one by one.
    fn handle_batch<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        events: &'a [ClaimedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            for event in events {
                self.handle(txn, event).await?;
            }
            Ok(())
        }
    }
}

/// How a consumer claims and retries.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Recorded in `inbox.worker`.
    pub worker: String,
    /// Events claimed per batch transaction.
    pub batch_size: u32,
    /// After this many failed attempts an event is `dead`.
    pub max_attempts: u32,
    /// Delay before each retry.
    pub retry: Backoff,
}

impl ConsumerConfig {
    /// The [`defaults`], recorded as `worker`.
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            batch_size: defaults::BATCH_SIZE,
            max_attempts: defaults::MAX_ATTEMPTS,
            retry: defaults::RETRY,
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// Events claimed.
    pub claimed: usize,
    /// Events whose effects were applied.
    pub processed: usize,
    /// Events that failed and will be retried.
    pub failed: usize,
    /// Events that failed for the last time.
    pub dead: usize,
    /// Events another worker had completed meanwhile: nothing applied.
    pub duplicates: usize,
}

impl AddAssign for BatchReport {
    fn add_assign(&mut self, other: Self) {
        self.claimed += other.claimed;
        self.processed += other.processed;
        self.failed += other.failed;
        self.dead += other.dead;
        self.duplicates += other.duplicates;
    }
}

impl BatchReport {
    /// True when the batch was full, so more work is probably waiting.
    pub fn was_full(&self, config: &ConsumerConfig) -> bool {
        self.claimed >= config.batch_size as usize
    }
}

/// How long a consumer follows its cursor before its next claim starts from
/// the watermark again.
///
/// The cursor skips events that another consumer had locked when the cursor
/// passed them. They are nearly always completed by that consumer; if its
/// batch rolls back instead, they wait below every other cursor until the
/// next claim from the watermark, at most this long.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// A position in the outbox: `(txid, event id)`, in claim order.
type Position = (u64, Uuid);

/// A consumer loop's claims, which resume where the previous one ended.
///
/// Claiming from the watermark alone walks again, at every claim, over every
/// event completed since the watermark last moved (it moves every second or
/// so): at thousands of events a second that walk is most of a claim's cost.
/// The cursor is exact for what it skips: after a claim whose snapshot had
/// `xmin` X, every event of a transaction below X is visible, so each event
/// the claim walked past was completed, or locked by another consumer, or
/// claimed here. The cursor moves to the last event claimed, but never past
/// X: an event of a transaction still running at X may commit later with a
/// smaller position. Events locked by others are covered by
/// [`RESCAN_INTERVAL`]; after a batch of ours fails, the next claim starts
/// from the watermark.
#[derive(Debug)]
pub struct Consumer {
    config: ConsumerConfig,
    cursor: Option<Position>,
    last_rescan: Option<Instant>,
}

impl Consumer {
    /// A consumer whose first claim starts from the watermark.
    pub fn new(config: ConsumerConfig) -> Self {
        Self {
            config,
            cursor: None,
            last_rescan: None,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Claims one batch, handles it and commits; see [`process_batch`].
    pub async fn next_batch<H: Handler>(
        &mut self,
        db: &DatabaseConnection,
        handler: &H,
    ) -> Result<BatchReport, OutboxError> {
        if self
            .last_rescan
            .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL)
        {
            self.cursor = None;
        }
        if self.cursor.is_none() {
            self.last_rescan = Some(Instant::now());
        }
        match batch::run_batch(db, &self.config, handler, self.cursor).await {
            Ok((report, next)) => {
                if next.is_some() {
                    self.cursor = next;
                }
                Ok(report)
            }
            Err(error) => {
                self.cursor = None;
                Err(error)
            }
        }
    }

    /// Claims batches until one is not full (nothing more is waiting) or
    /// `shutdown` fires between two batches, and returns what they did
    /// together. `more_waiting` runs after each full batch (the worker wakes
    /// another consumer loop there). The one drain loop: the worker's
    /// consumer loops and the tests use it rather than writing their own.
    /// An `Err` is the failed batch's; the batches before it committed.
    pub async fn drain<H: Handler>(
        &mut self,
        db: &DatabaseConnection,
        handler: &H,
        shutdown: &CancellationToken,
        mut more_waiting: impl FnMut(),
    ) -> Result<BatchReport, OutboxError> {
        let mut total = BatchReport::default();
        while !shutdown.is_cancelled() {
            let report = self.next_batch(db, handler).await?;
            total += report;
            if !report.was_full(&self.config) {
                break;
            }
            more_waiting();
        }
        Ok(total)
    }
}

/// Claims one batch from the watermark, handles every event in it, and
/// commits. Returns what it did; an `Err` means the whole batch rolled back
/// (a database problem) and its events will be claimed again. A loop that
/// claims again and again should use a [`Consumer`].
pub async fn process_batch<H: Handler>(
    db: &DatabaseConnection,
    config: &ConsumerConfig,
    handler: &H,
) -> Result<BatchReport, OutboxError> {
    batch::run_batch(db, config, handler, None)
        .await
        .map(|(report, _)| report)
}
