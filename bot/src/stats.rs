//! What the bot counts: per-instance counters (for tests and the log) that
//! are mirrored to the process's Prometheus metrics (prefix `aplus_bot_`).

use std::sync::atomic::{AtomicU64, Ordering};

use outbox::payload::Source;
use outbox::record::{Deleted, Edited, Recorded};

use crate::ingest::{Applied, EditResult};

/// Why a message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Posted in a channel that is not on the allowlist (nor a thread of one).
    UnlistedChannel,
    /// Posted by a bot or webhook while `--keep-bot-messages` is off.
    BotAuthor,
    /// A snowflake above `i64::MAX`: it cannot be stored as a `bigint`
    /// without wrapping negative.
    SnowflakeOutOfRange,
    /// A MESSAGE_CREATE (or history entry) that does not decode as a message.
    Undecodable,
    /// The channel could not be looked up to learn whether it is a watched thread.
    ChannelLookupFailed,
    /// PostgreSQL refused the row itself (not a connection problem), so
    /// retrying could never succeed.
    DatabaseRejected,
}

impl Rejection {
    /// All reasons, for reports.
    pub const ALL: [Rejection; 6] = [
        Rejection::UnlistedChannel,
        Rejection::BotAuthor,
        Rejection::SnowflakeOutOfRange,
        Rejection::Undecodable,
        Rejection::ChannelLookupFailed,
        Rejection::DatabaseRejected,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::UnlistedChannel => "unlisted_channel",
            Rejection::BotAuthor => "bot_author",
            Rejection::SnowflakeOutOfRange => "snowflake_out_of_range",
            Rejection::Undecodable => "undecodable",
            Rejection::ChannelLookupFailed => "channel_lookup_failed",
            Rejection::DatabaseRejected => "database_rejected",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one bot instance. Each increment also goes to the global
/// metrics recorder, so `/metrics` shows the same numbers.
#[derive(Debug, Default)]
pub struct Stats {
    received_gateway: AtomicU64,
    received_backfill: AtomicU64,
    stored_gateway: AtomicU64,
    stored_backfill: AtomicU64,
    duplicates_gateway: AtomicU64,
    duplicates_backfill: AtomicU64,
    sanitized: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    edits: [AtomicU64; 4],
    deletes: [AtomicU64; 3],
    notify_failures: AtomicU64,
    buffer_overflow: AtomicU64,
    buffer_high_water: AtomicU64,
    outages: AtomicU64,
    write_groups: AtomicU64,
    write_queue_closed: AtomicU64,
    refetched: AtomicU64,
    refetch_overflow: AtomicU64,
    history_edits: AtomicU64,
    history_deletes: AtomicU64,
    backfill_pages: AtomicU64,
    backfill_runs: AtomicU64,
    rest_rate_limited: AtomicU64,
    rest_rate_limit_wait_ms: AtomicU64,
    rest_server_errors: AtomicU64,
    rest_network_errors: AtomicU64,
    readies: AtomicU64,
    resumes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Message creates seen from the gateway, whatever happened to them.
    pub received_gateway: u64,
    /// Messages read from history pages, whatever happened to them.
    pub received_backfill: u64,
    /// Messages stored (with their event) from a gateway dispatch.
    pub stored_gateway: u64,
    /// Messages stored from history pages.
    pub stored_backfill: u64,
    /// Creates whose id was already stored (nothing written).
    pub duplicates_gateway: u64,
    /// History messages already stored.
    pub duplicates_backfill: u64,
    /// Stored with NUL bytes replaced.
    pub sanitized: u64,
    /// Rejections, by reason (see [`Rejection`]).
    pub unlisted_channel: u64,
    pub bot_author: u64,
    pub snowflake_out_of_range: u64,
    pub undecodable: u64,
    pub channel_lookup_failed: u64,
    pub database_rejected: u64,
    /// Edits, by outcome (see [`EditResult`]).
    pub edits_updated: u64,
    pub edits_unchanged: u64,
    pub edits_unknown: u64,
    pub edits_stored_as_create: u64,
    /// Deletes, by outcome (see [`Deleted`]).
    pub deletes_deleted: u64,
    pub deletes_already_deleted: u64,
    pub deletes_tombstoned: u64,
    /// NOTIFYs after commit that failed (the events are stored).
    pub notify_failures: u64,
    /// Writes dropped from memory because the outage buffer was full.
    pub buffer_overflow: u64,
    /// The deepest the outage buffer has been.
    pub buffer_high_water: u64,
    /// Database outages begun (a write failed for a reason that may pass).
    pub outages: u64,
    /// Groups of queued writes taken by the writer task, each one transaction.
    pub write_groups: u64,
    /// Writes refused because the write queue had closed for shutdown.
    pub write_queue_closed: u64,
    /// Messages read back from history because their edit or delete was
    /// dropped from the full outage buffer.
    pub refetched: u64,
    /// Dropped edits and deletes past the read-back limit: lost.
    pub refetch_overflow: u64,
    /// Edits found in history pages (made while nobody listened).
    pub history_edits: u64,
    /// Stored messages missing from the history range that should list
    /// them: deleted while nobody listened.
    pub history_deletes: u64,
    /// History pages read.
    pub backfill_pages: u64,
    /// Backfill runs of a channel, finished or failed.
    pub backfill_runs: u64,
    /// REST 429 answers waited out.
    pub rest_rate_limited: u64,
    /// Total time spent waiting on 429s, in milliseconds.
    pub rest_rate_limit_wait_ms: u64,
    /// REST 5xx answers retried.
    pub rest_server_errors: u64,
    /// REST calls that failed to connect or read, retried.
    pub rest_network_errors: u64,
    /// READY events (first connection and every new session).
    pub readies: u64,
    /// RESUMED events.
    pub resumes: u64,
}

impl StatsSnapshot {
    /// Creates stored, from any source.
    pub fn stored(&self) -> u64 {
        self.stored_gateway + self.stored_backfill
    }

    /// Duplicates skipped, from any source.
    pub fn duplicates(&self) -> u64 {
        self.duplicates_gateway + self.duplicates_backfill
    }

    /// Messages rejected, for any reason.
    pub fn rejected(&self) -> u64 {
        self.unlisted_channel
            + self.bot_author
            + self.snowflake_out_of_range
            + self.undecodable
            + self.channel_lookup_failed
            + self.database_rejected
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Gateway => "gateway",
        Source::Backfill => "backfill",
        Source::Sweep => "sweep",
        Source::Reconciler => "reconciler",
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Stats {
    /// A message create arrived from `source`.
    pub fn received(&self, source: Source, count: u64) {
        match source {
            Source::Backfill | Source::Sweep => bump(&self.received_backfill, count),
            _ => bump(&self.received_gateway, count),
        }
        metrics::counter!("aplus_bot_messages_received_total", "source" => source_label(source))
            .increment(count);
    }

    /// A message and its event were stored.
    pub fn stored(&self, source: Source, sanitized: bool) {
        match source {
            Source::Backfill => {
                bump(&self.stored_backfill, 1);
                metrics::counter!("aplus_bot_backfilled_total").increment(1);
            }
            Source::Sweep => bump(&self.stored_backfill, 1),
            _ => bump(&self.stored_gateway, 1),
        }
        metrics::counter!("aplus_bot_messages_stored_total", "source" => source_label(source))
            .increment(1);
        if sanitized {
            bump(&self.sanitized, 1);
            metrics::counter!("aplus_bot_messages_sanitized_total").increment(1);
        }
    }

    /// A create for an id already stored was skipped.
    pub fn duplicate(&self, source: Source) {
        match source {
            Source::Backfill | Source::Sweep => bump(&self.duplicates_backfill, 1),
            _ => bump(&self.duplicates_gateway, 1),
        }
        metrics::counter!("aplus_bot_duplicates_total", "source" => source_label(source))
            .increment(1);
    }

    /// A message was not stored, for `reason`.
    pub fn rejected(&self, reason: Rejection) {
        bump(&self.rejected[reason.index()], 1);
        metrics::counter!("aplus_bot_rejected_total", "reason" => reason.as_str()).increment(1);
    }

    /// An edit was applied (or not).
    pub fn edit(&self, result: &EditResult) {
        let (index, label) = match result {
            EditResult::Edit(Edited::Updated { .. }) => (0, "updated"),
            EditResult::Edit(Edited::Unchanged) => (1, "unchanged"),
            EditResult::Edit(Edited::Unknown) => (2, "unknown"),
            EditResult::StoredAsCreate(_) => (3, "stored_as_create"),
        };
        bump(&self.edits[index], 1);
        metrics::counter!("aplus_bot_edits_total", "outcome" => label).increment(1);
    }

    /// A delete was applied (or not).
    pub fn delete(&self, deleted: &Deleted) {
        let (index, label) = match deleted {
            Deleted::Deleted { .. } => (0, "deleted"),
            Deleted::AlreadyDeleted => (1, "already_deleted"),
            Deleted::Tombstoned => (2, "tombstoned"),
        };
        bump(&self.deletes[index], 1);
        metrics::counter!("aplus_bot_deletes_total", "outcome" => label).increment(1);
    }

    /// A NOTIFY after commit failed (the worker's poll finds the event anyway).
    pub fn notify_failed(&self) {
        bump(&self.notify_failures, 1);
        metrics::counter!("aplus_bot_notify_failures_total").increment(1);
    }

    /// A write was dropped from memory because the outage buffer was full.
    pub fn buffer_overflowed(&self) {
        bump(&self.buffer_overflow, 1);
        metrics::counter!("aplus_bot_buffer_overflow_total").increment(1);
    }

    /// The outage buffer now holds `depth` writes.
    pub fn buffer_depth(&self, depth: usize) {
        self.buffer_high_water
            .fetch_max(depth as u64, Ordering::Relaxed);
        metrics::gauge!("aplus_bot_buffer_depth").set(depth as f64);
    }

    /// A database outage began.
    pub fn outage_began(&self) {
        bump(&self.outages, 1);
        metrics::counter!("aplus_bot_database_outages_total").increment(1);
    }

    /// The write queue now holds `depth` writes.
    pub fn write_queue_depth(&self, depth: usize) {
        metrics::gauge!("aplus_bot_write_queue_depth").set(depth as f64);
    }

    /// The writer task took a group of `size` writes (one transaction).
    pub fn write_group(&self, size: usize) {
        bump(&self.write_groups, 1);
        metrics::histogram!("aplus_bot_write_group_size").record(size as f64);
    }

    /// A write arrived after the write queue closed for shutdown.
    pub fn write_queue_closed(&self) {
        bump(&self.write_queue_closed, 1);
        metrics::counter!("aplus_bot_write_queue_closed_total").increment(1);
    }

    /// Messages whose dropped edit or delete waits to be read back.
    pub fn refetch_pending(&self, pending: usize) {
        metrics::gauge!("aplus_bot_refetch_pending").set(pending as f64);
    }

    /// A message was read back from history after its edit or delete was
    /// dropped (`outcome`: `edit` or `delete`).
    pub fn refetched(&self, outcome: &'static str) {
        bump(&self.refetched, 1);
        metrics::counter!("aplus_bot_refetched_total", "outcome" => outcome).increment(1);
    }

    /// A dropped edit or delete could not even be remembered for reading
    /// back (the limit was reached): it is lost.
    pub fn refetch_overflowed(&self) {
        bump(&self.refetch_overflow, 1);
        metrics::counter!("aplus_bot_refetch_overflow_total").increment(1);
    }

    /// A backfill found an edit or a delete (`kind`) that no gateway event
    /// brought, and applied it.
    pub fn history_change(&self, kind: &'static str) {
        bump(
            if kind == "delete" {
                &self.history_deletes
            } else {
                &self.history_edits
            },
            1,
        );
        metrics::counter!("aplus_bot_history_changes_total", "kind" => kind).increment(1);
    }

    /// A history page was read and stored.
    pub fn backfill_page(&self) {
        bump(&self.backfill_pages, 1);
        metrics::counter!("aplus_bot_backfill_pages_total").increment(1);
    }

    /// A channel's backfill finished (`outcome`: `caught_up` or `failed`).
    pub fn backfill_run(&self, outcome: &'static str) {
        bump(&self.backfill_runs, 1);
        metrics::counter!("aplus_bot_backfill_runs_total", "outcome" => outcome).increment(1);
    }

    /// A REST call was answered 429 and waited out for `waited`.
    pub fn rest_rate_limited(&self, waited: std::time::Duration) {
        bump(&self.rest_rate_limited, 1);
        bump(&self.rest_rate_limit_wait_ms, waited.as_millis() as u64);
        metrics::counter!("aplus_bot_rest_retries_total", "reason" => "rate_limited").increment(1);
    }

    /// A REST call failed with a 5xx and will be retried.
    pub fn rest_server_error(&self) {
        bump(&self.rest_server_errors, 1);
        metrics::counter!("aplus_bot_rest_retries_total", "reason" => "server_error").increment(1);
    }

    /// A REST call failed to connect or read and will be retried.
    pub fn rest_network_error(&self) {
        bump(&self.rest_network_errors, 1);
        metrics::counter!("aplus_bot_rest_retries_total", "reason" => "network").increment(1);
    }

    /// A READY arrived.
    pub fn ready(&self) {
        bump(&self.readies, 1);
        metrics::counter!("aplus_bot_gateway_sessions_total", "kind" => "ready").increment(1);
    }

    /// A RESUMED arrived.
    pub fn resumed(&self) {
        bump(&self.resumes, 1);
        metrics::counter!("aplus_bot_gateway_sessions_total", "kind" => "resumed").increment(1);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rejected = |r: Rejection| get(&self.rejected[r.index()]);
        StatsSnapshot {
            received_gateway: get(&self.received_gateway),
            received_backfill: get(&self.received_backfill),
            stored_gateway: get(&self.stored_gateway),
            stored_backfill: get(&self.stored_backfill),
            duplicates_gateway: get(&self.duplicates_gateway),
            duplicates_backfill: get(&self.duplicates_backfill),
            sanitized: get(&self.sanitized),
            unlisted_channel: rejected(Rejection::UnlistedChannel),
            bot_author: rejected(Rejection::BotAuthor),
            snowflake_out_of_range: rejected(Rejection::SnowflakeOutOfRange),
            undecodable: rejected(Rejection::Undecodable),
            channel_lookup_failed: rejected(Rejection::ChannelLookupFailed),
            database_rejected: rejected(Rejection::DatabaseRejected),
            edits_updated: get(&self.edits[0]),
            edits_unchanged: get(&self.edits[1]),
            edits_unknown: get(&self.edits[2]),
            edits_stored_as_create: get(&self.edits[3]),
            deletes_deleted: get(&self.deletes[0]),
            deletes_already_deleted: get(&self.deletes[1]),
            deletes_tombstoned: get(&self.deletes[2]),
            notify_failures: get(&self.notify_failures),
            buffer_overflow: get(&self.buffer_overflow),
            buffer_high_water: get(&self.buffer_high_water),
            outages: get(&self.outages),
            write_groups: get(&self.write_groups),
            write_queue_closed: get(&self.write_queue_closed),
            refetched: get(&self.refetched),
            refetch_overflow: get(&self.refetch_overflow),
            history_edits: get(&self.history_edits),
            history_deletes: get(&self.history_deletes),
            backfill_pages: get(&self.backfill_pages),
            backfill_runs: get(&self.backfill_runs),
            rest_rate_limited: get(&self.rest_rate_limited),
            rest_rate_limit_wait_ms: get(&self.rest_rate_limit_wait_ms),
            rest_server_errors: get(&self.rest_server_errors),
            rest_network_errors: get(&self.rest_network_errors),
            readies: get(&self.readies),
            resumes: get(&self.resumes),
        }
    }

    /// Counts what one committed write did.
    pub fn applied(&self, applied: &Applied) {
        let count_recorded = |recorded: &Recorded, source: Source| match recorded {
            Recorded::Stored {
                sanitized,
                tombstoned,
                ..
            } => {
                self.stored(source, *sanitized);
                if *tombstoned {
                    tracing::debug!("stored a message whose delete came first: kept deleted");
                }
            }
            Recorded::Duplicate => self.duplicate(source),
        };
        match applied {
            Applied::Created { recorded, source } => count_recorded(recorded, *source),
            Applied::Many { recorded, source } => {
                for (_, r) in recorded {
                    count_recorded(r, *source);
                }
            }
            Applied::Edited(result) => self.edit(result),
            Applied::Deleted(deleted) => self.delete(deleted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_reason_has_its_own_counter() {
        let stats = Stats::default();
        for (i, reason) in Rejection::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                stats.rejected(reason);
            }
        }
        let s = stats.snapshot();
        assert_eq!(
            [
                s.unlisted_channel,
                s.bot_author,
                s.snowflake_out_of_range,
                s.undecodable,
                s.channel_lookup_failed,
                s.database_rejected
            ],
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(s.rejected(), 21);
    }
}
