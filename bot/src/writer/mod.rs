//! Writes: a bounded queue, group commit, and the database outage policy.
//!
//! The gateway handler converts each message to its compact row and
//! [`Writer::submit`]s it to a bounded queue. serenity runs every dispatch
//! as its own task and cannot be made to wait, so a burst piles up tasks;
//! a full queue makes them wait for a slot (backpressure) instead of each
//! taking a database connection. One writer task ([`Writer::write_loop`])
//! takes whatever is queued, up to [`GROUP_MAX`] writes (there is no timer:
//! an idle bot writes each message at once), and writes the group as one
//! transaction on a connection of its own: one lock statement, one insert
//! for the creates, edits and deletes in queue order, COMMIT, then one
//! NOTIFY for every event of the group. A burst therefore costs a handful
//! of round trips per group instead of seven per message, and a busy queue
//! is never mistaken for a database outage.
//!
//! When a group fails on its data, it is split in halves until the write
//! PostgreSQL refuses stands alone; only that one is rejected and counted.
//! When it fails for a reason that may pass (the connection, not the data),
//! an outage begins (`outage`): the group's writes and every later one
//! wait in the bounded [`Buffer`] and are retried; what does not fit is
//! dropped from memory and recorded in the gap [`Ledger`], from which the
//! next backfills recover it.

mod outage;

pub use outage::SUMMARY_INTERVAL;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outbox::{Backoff, OutboxError};
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffer;
use crate::error::error_chain;
use crate::ingest::{self, Applied, Outcome, Write};
use crate::ledger::Ledger;
use crate::stats::{Rejection, Stats};

/// The most queued writes committed as one transaction. Large enough that a
/// burst costs a few round trips per hundreds of messages; small enough that
/// one group's statement and its parameters stay a few megabytes.
pub const GROUP_MAX: usize = 500;

/// Applies writes, holding them through database outages.
#[derive(Debug)]
pub struct Writer {
    /// The shared pool: writes made now (backfill pages) and the outage drain.
    db: DatabaseConnection,
    /// The writer task's own one-connection pool (see [`Writer::new`]).
    write_db: DatabaseConnection,
    /// Submitted writes, waiting for the writer task.
    queue: mpsc::Sender<Write>,
    /// The queue's other end, until [`Writer::write_loop`] takes it.
    queued: Mutex<Option<mpsc::Receiver<Write>>>,
    /// Writes submitted and not yet written, buffered or rejected (those
    /// still waiting for a queue slot included).
    unfinished: AtomicUsize,
    /// Fires when `unfinished` drops to zero.
    settled: Notify,
    buffer: Buffer,
    stats: Arc<Stats>,
    retry: Backoff,
    down: AtomicBool,
    outage: Mutex<Option<outage::Outage>>,
    wake: Notify,
    recovered: Arc<Notify>,
    /// What was dropped from memory, for the next backfills.
    ledger: Arc<Ledger>,
    notify_failures: AtomicU64,
}

impl Writer {
    /// A writer whose queue holds `queue` writes and whose outage buffer
    /// holds `capacity`; retries back off up to `retry_max`; what an outage
    /// drops from memory goes to `ledger`.
    ///
    /// `db` is the shared pool (backfill pages, the outage drain); `write_db`
    /// is the writer task's alone, with one connection. sea-orm runs a
    /// transaction on a pool, not on a pinned connection, so a pool of one
    /// is how the group's COMMIT and its NOTIFY go out on the same connection
    /// without a second acquire from a busy pool; the pool also replaces the
    /// connection when it dies, and an acquire timeout on it can only mean
    /// that the database cannot be reached, never that others hold every
    /// connection. Pass the same pool twice in tests that need no such
    /// separation.
    pub fn new(
        db: DatabaseConnection,
        write_db: DatabaseConnection,
        ledger: Arc<Ledger>,
        capacity: usize,
        queue: usize,
        retry_max: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        stats.buffer_depth(0);
        stats.write_queue_depth(0);
        metrics::gauge!("aplus_bot_buffer_capacity").set(capacity as f64);
        metrics::gauge!("aplus_bot_write_queue_capacity").set(queue.max(1) as f64);
        let (sender, receiver) = mpsc::channel(queue.max(1));
        Self {
            db,
            write_db,
            queue: sender,
            queued: Mutex::new(Some(receiver)),
            unfinished: AtomicUsize::new(0),
            settled: Notify::new(),
            buffer: Buffer::new(capacity),
            stats,
            retry: Backoff::new(
                Duration::from_millis(200).min(retry_max),
                retry_max.max(Duration::from_millis(1)),
            ),
            down: AtomicBool::new(false),
            outage: Mutex::new(None),
            wake: Notify::new(),
            recovered: Arc::new(Notify::new()),
            ledger,
            notify_failures: AtomicU64::new(0),
        }
    }

    /// Fires each time an outage ends (the buffer is drained and the database answers).
    pub fn recovered(&self) -> Arc<Notify> {
        Arc::clone(&self.recovered)
    }

    /// Whether an outage is in progress.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Writes held in memory now.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Writes waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queues a live write for the writer task, waiting for a slot while the
    /// queue is full: that is backpressure on the gateway's tasks, never an
    /// outage. Never fails: every outcome is counted (and logged when it
    /// matters). The caller converts first, so that only the compact row
    /// waits here, not the gateway's message.
    pub async fn submit(&self, write: Write) {
        self.unfinished.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(write)) = self.queue.send(write).await {
            // The queue closes only at shutdown, once the writer task has
            // stopped taking writes.
            self.stats.write_queue_closed();
            tracing::debug!(
                message_id = write.message_id(),
                "write arrived after the write queue closed for shutdown: not stored"
            );
            self.finished(1);
        }
    }

    /// Waits until every write submitted so far is written, buffered or
    /// rejected (for tests and tools).
    pub async fn settled(&self) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.unfinished.load(Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }

    fn finished(&self, count: usize) {
        if self.unfinished.fetch_sub(count, Ordering::AcqRel) == count {
            self.settled.notify_waiters();
        }
    }

    /// The writer task: takes what is queued, up to [`GROUP_MAX`] writes,
    /// and writes it as one group, until `stop` fires; then it closes the
    /// queue, writes (or buffers) what is still in it, and returns. Runs
    /// once per writer; a second call returns at once.
    pub async fn write_loop(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut queue) = self
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            tracing::error!("the write loop is already running; not starting another");
            return;
        };
        let mut closed = false;
        let mut group = Vec::with_capacity(GROUP_MAX);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled(), if !closed => {
                    // No new writes; what is queued is still received.
                    queue.close();
                    closed = true;
                    let left = queue.len();
                    if left > 0 {
                        tracing::info!(left, "stopping: writing what is still queued");
                    }
                    continue;
                }
                write = queue.recv() => match write {
                    Some(write) => group.push(write),
                    None => break,
                },
            }
            while group.len() < GROUP_MAX {
                match queue.try_recv() {
                    Ok(write) => group.push(write),
                    Err(_) => break,
                }
            }
            self.stats.write_queue_depth(queue.len());
            self.stats.write_group(group.len());
            let count = group.len();
            self.write_group(std::mem::take(&mut group)).await;
            self.finished(count);
        }
    }

    /// Writes a group in one transaction, or buffers it during an outage.
    /// A group refused on its data is split in halves, in order, until the
    /// refused write stands alone; it alone is rejected. A failure that may
    /// pass begins an outage, and the writes not yet committed go to the
    /// buffer in order.
    pub async fn write_group(&self, group: Vec<Write>) {
        if group.is_empty() {
            return;
        }
        if self.is_down() || !self.buffer.is_empty() {
            for write in group {
                self.enqueue(write);
            }
            return;
        }
        // Ranges still to write, in queue order: committing them front to
        // back keeps the group's order.
        let mut todo = VecDeque::new();
        todo.push_back(0..group.len());
        let mut unwritten_from = None;
        while let Some(range) = todo.pop_front() {
            let writes = &group[range.clone()];
            match ingest::apply(&self.write_db, writes).await {
                Ok(outcome) => self.account(&outcome),
                Err(error) if ingest::is_permanent(&error) => {
                    if let [write] = writes {
                        self.reject(write, &error);
                    } else {
                        let middle = range.start + writes.len() / 2;
                        todo.push_front(middle..range.end);
                        todo.push_front(range.start..middle);
                    }
                }
                Err(error) => {
                    self.begin_outage(&error);
                    unwritten_from = Some(range.start);
                    break;
                }
            }
        }
        if let Some(from) = unwritten_from {
            for write in group.into_iter().skip(from) {
                self.enqueue(write);
            }
        }
    }

    /// Applies a write now, without buffering (backfill pages: what fails is
    /// read again from history later). A failure that may pass begins an
    /// outage, so the recovery backfills again.
    pub async fn write_now(&self, write: &Write) -> Result<Applied, OutboxError> {
        match ingest::apply(&self.db, std::slice::from_ref(write)).await {
            Ok(mut outcome) => {
                self.account(&outcome);
                // One write in, one result out.
                Ok(outcome.applied.remove(0))
            }
            Err(error) => {
                if !ingest::is_permanent(&error) {
                    self.begin_outage(&error);
                }
                Err(error)
            }
        }
    }

    fn reject(&self, write: &Write, error: &OutboxError) {
        let count = match write {
            Write::Many { messages, .. } => messages.len(),
            _ => 1,
        };
        for _ in 0..count {
            self.stats.rejected(Rejection::DatabaseRejected);
        }
        tracing::error!(
            message_id = write.message_id(),
            error = %error_chain(error),
            "the database refused this write; it is skipped, not retried"
        );
    }

    /// Counts what a committed group did.
    fn account(&self, outcome: &Outcome) {
        for applied in &outcome.applied {
            self.stats.applied(applied);
        }
        if let Some(error) = &outcome.notify_error {
            self.stats.notify_failed();
            // Usually the first sign of an outage, when many writes fail at
            // once: the first failure and then every hundredth are logged.
            let failures = self.notify_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures == 1 || failures.is_multiple_of(100) {
                tracing::warn!(
                    events = outcome.event_ids().len(),
                    failures,
                    error = %error_chain(error),
                    "NOTIFY after commit failed; the events are stored and the worker's poll picks them up"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::testing::create;
    use service::DatabaseArgs;
    use service::db::{PoolSettings, connect};

    /// A writer with a buffer of one whose database is unreachable: nothing
    /// listens on port 1, so every write fails at once, like an outage.
    fn writer_in_an_outage() -> (Arc<Writer>, Arc<Ledger>, Arc<Stats>) {
        let mut settings = PoolSettings::new("aplus-bot-test", 1);
        settings.acquire_timeout = Duration::from_millis(200);
        let db = connect(
            &DatabaseArgs::from_url("postgres://nobody@127.0.0.1:1/none"),
            &settings,
        )
        .expect("the url parses");
        let stats = Arc::new(Stats::default());
        let ledger = Arc::new(Ledger::new(db.clone(), Arc::clone(&stats)));
        let writer = Arc::new(Writer::new(
            db.clone(),
            db,
            Arc::clone(&ledger),
            1,
            4,
            Duration::from_millis(100),
            Arc::clone(&stats),
        ));
        tokio::spawn(Arc::clone(&writer).write_loop(CancellationToken::new()));
        (writer, ledger, stats)
    }

    /// Submits a write and waits until the writer task has handled it.
    async fn written(writer: &Writer, write: Write) {
        writer.submit(write).await;
        writer.settled().await;
    }

    #[tokio::test]
    async fn a_message_dropped_from_the_full_buffer_is_remembered_for_the_next_backfill() {
        let (writer, ledger, stats) = writer_in_an_outage();

        written(&writer, create(20, 1000)).await;
        assert!(writer.is_down());
        assert_eq!(writer.buffered(), 1);
        // Out of order, as writes finish: the smaller id must win.
        written(&writer, create(20, 1100)).await;
        written(&writer, create(20, 900)).await;
        written(&writer, create(30, 5)).await;
        assert_eq!(writer.buffered(), 1, "the buffer keeps its bound");
        assert_eq!(stats.snapshot().buffer_overflow, 3);
        assert_eq!(ledger.take_loss(20), Some(900));
        assert_eq!(ledger.take_loss(20), None, "taken once");
        ledger.note_loss(20, 950);
        assert_eq!(ledger.take_loss(20), Some(950));
        assert_eq!(ledger.take_loss(30), Some(5));
    }

    #[tokio::test]
    async fn an_edit_or_delete_dropped_from_the_full_buffer_is_remembered_for_reading_back() {
        let (writer, ledger, stats) = writer_in_an_outage();

        written(&writer, create(20, 1000)).await;
        assert!(writer.is_down());
        written(
            &writer,
            Write::Delete {
                id: 700,
                channel_id: 20,
            },
        )
        .await;
        written(
            &writer,
            Write::Delete {
                id: 600,
                channel_id: 20,
            },
        )
        .await;
        // Twice the same message: read back once.
        written(
            &writer,
            Write::Delete {
                id: 600,
                channel_id: 20,
            },
        )
        .await;
        written(
            &writer,
            Write::Delete {
                id: 5,
                channel_id: 30,
            },
        )
        .await;
        assert_eq!(stats.snapshot().buffer_overflow, 4);
        assert_eq!(ledger.take_loss(20), None, "deletes move no backfill start");
        assert_eq!(ledger.take_refetch(20), vec![600, 700], "oldest first");
        assert!(ledger.take_refetch(20).is_empty(), "taken once");
        ledger.restore_refetch(20, &[700]);
        assert_eq!(ledger.take_refetch(20), vec![700]);
        assert_eq!(ledger.take_refetch(30), vec![5]);
    }
}
