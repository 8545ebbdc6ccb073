//! The outage: while the database cannot be reached, writes wait in the
//! bounded [`Buffer`](crate::buffer::Buffer) in arrival order and
//! [`Writer::drain_loop`] retries them with exponential backoff and jitter,
//! merging runs of creates into one transaction. What does not fit is
//! dropped from memory and recorded in the gap ledger for the backfills.
//! Once the buffer is empty and the database answers, the outage ends and
//! [`Writer::recovered`] fires.
//!
//! Logging stays under one line a second however long the outage: the first
//! failure, the first overflow, a summary every [`SUMMARY_INTERVAL`], and one
//! line at recovery.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use outbox::OutboxError;
use sea_orm::ConnectionTrait as _;
use tokio_util::sync::CancellationToken;

use super::Writer;
use crate::error::error_chain;
use crate::ingest::{self, Write};
use crate::ledger::Entry;

/// How often a continuing outage is summarised in the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// The state of an outage, for its log lines.
#[derive(Debug)]
pub(super) struct Outage {
    since: Instant,
    last_summary: Instant,
    overflowed: u64,
    buffered: u64,
}

impl Writer {
    /// Records that the database failed; the first failure of an outage is logged.
    pub fn begin_outage(&self, error: &OutboxError) {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if outage.is_none() {
            let now = Instant::now();
            *outage = Some(Outage {
                since: now,
                last_summary: now,
                overflowed: 0,
                buffered: 0,
            });
            self.down.store(true, Ordering::Release);
            self.stats.outage_began();
            metrics::gauge!("aplus_bot_database_up").set(0.0);
            tracing::warn!(
                error = %error_chain(error),
                buffer_capacity = self.buffer.capacity(),
                "database unreachable: holding writes in memory and retrying; \
                 what does not fit is recovered from Discord history afterwards"
            );
        }
        drop(outage);
        self.wake.notify_one();
    }

    /// Holds a write in the outage buffer, or drops it from memory (into
    /// the gap ledger) when the buffer is full.
    pub(super) fn enqueue(&self, write: Write) {
        // Written down before it is held: a process killed during the
        // outage loses its buffer, and the next one must know what was in it.
        let entries = ledger_entries(&write);
        self.ledger.write_down(&entries);
        match self.buffer.push(write) {
            Ok(depth) => {
                self.stats.buffer_depth(depth);
                if let Some(outage) = self
                    .outage
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    outage.buffered += 1;
                }
            }
            Err(write) => {
                self.stats.buffer_overflowed();
                self.ledger.remember(&entries);
                let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
                let first = match outage.as_mut() {
                    Some(o) => {
                        o.overflowed += 1;
                        o.overflowed == 1
                    }
                    None => true,
                };
                if first {
                    tracing::warn!(
                        capacity = self.buffer.capacity(),
                        message_id = write.message_id(),
                        "outage buffer full: dropping new writes from memory; \
                         backfill recovers the messages after the outage"
                    );
                }
            }
        }
        self.wake.notify_one();
    }

    /// Retries buffered writes and probes the database during an outage,
    /// until `shutdown`.
    pub async fn drain_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            self.drain(&shutdown).await;
        }
    }

    /// Drains the buffer and ends the outage once the database answers.
    /// Returns early (leaving the rest buffered) when `stop` fires.
    async fn drain(&self, stop: &CancellationToken) {
        let mut attempt: u32 = 0;
        let mut one_at_a_time = false;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let next = if one_at_a_time {
                // A merged batch failed on its data: isolate the culprit.
                self.buffer.peek_single()
            } else {
                self.buffer.peek_batch()
            };
            let result = match &next {
                Some((write, _)) => ingest::apply(&self.db, std::slice::from_ref(write))
                    .await
                    .map(Some),
                None if self.is_down() => self
                    .db
                    .execute_unprepared("SELECT 1")
                    .await
                    .map(|_| None)
                    .map_err(OutboxError::from),
                None => return,
            };
            match (result, next) {
                (Ok(Some(outcome)), Some((_, count))) => {
                    self.account(&outcome);
                    let depth = self.buffer.pop(count);
                    self.stats.buffer_depth(depth);
                    attempt = 0;
                    one_at_a_time = false;
                }
                (Ok(_), _) => {
                    self.end_outage();
                    attempt = 0;
                }
                (Err(error), Some((write, count))) if ingest::is_permanent(&error) => {
                    if count > 1 {
                        one_at_a_time = true;
                    } else {
                        self.reject(&write, &error);
                        let depth = self.buffer.pop(1);
                        self.stats.buffer_depth(depth);
                        one_at_a_time = false;
                    }
                }
                (Err(error), _) => {
                    self.begin_outage(&error);
                    attempt = attempt.saturating_add(1);
                    self.summarise(&error);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(self.retry.delay(attempt)) => {}
                    }
                }
            }
        }
    }

    /// Logs where a continuing outage stands, at most every [`SUMMARY_INTERVAL`].
    fn summarise(&self, error: &OutboxError) {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outage) = outage.as_mut()
            && outage.last_summary.elapsed() >= SUMMARY_INTERVAL
        {
            outage.last_summary = Instant::now();
            tracing::warn!(
                down_for_s = outage.since.elapsed().as_secs(),
                buffered = self.buffer.len(),
                overflowed = outage.overflowed,
                error = %error_chain(error),
                "database still unreachable; retrying"
            );
        }
    }

    fn end_outage(&self) {
        let outage = self
            .outage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.down.store(false, Ordering::Release);
        metrics::gauge!("aplus_bot_database_up").set(1.0);
        if let Some(outage) = outage {
            tracing::info!(
                down_for_ms = outage.since.elapsed().as_millis() as u64,
                buffered = outage.buffered,
                overflowed = outage.overflowed,
                "database reachable again: buffer drained; backfilling every channel"
            );
            self.recovered.notify_one();
        }
    }

    /// On shutdown: tries to store what is buffered until `deadline`, then
    /// reports what is left (messages come back through backfill at the
    /// next start; buffered edits and deletes do not).
    pub async fn flush(&self, deadline: Duration) {
        if self.buffer.is_empty() {
            return;
        }
        let stop = CancellationToken::new();
        let timer = stop.clone();
        let guard = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            timer.cancel();
        });
        self.drain(&stop).await;
        guard.abort();
        let left = self.buffer.len();
        if left > 0 {
            tracing::warn!(
                left,
                "stopping with writes still buffered; their messages are backfilled at the next start"
            );
        }
    }
}

/// What the gap ledger must know should `write` be dropped from memory: per
/// channel, the id of each message (writes finish out of order, one may wait
/// on the pool while a later one is buffered, so a dropped message can lie
/// below the channel's largest stored id and the next backfill must start
/// below it); for an edit or a delete, which is not in history as an event,
/// the message to read back.
fn ledger_entries(write: &Write) -> Vec<Entry> {
    match write {
        Write::Create { message, .. } => vec![Entry::Loss {
            channel: message.channel_id,
            id: message.id,
        }],
        Write::Many { messages, .. } => messages
            .iter()
            .map(|m| Entry::Loss {
                channel: m.channel_id,
                id: m.id,
            })
            .collect(),
        Write::Edit(update) => vec![Entry::Refetch {
            channel: update.channel_id,
            id: update.edit.id,
        }],
        Write::Delete { id, channel_id } => vec![Entry::Refetch {
            channel: *channel_id,
            id: *id,
        }],
    }
}
