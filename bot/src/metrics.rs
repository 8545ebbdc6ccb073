//! Every metric the bot exports, registered at start with its help text and
//! its known label values (by `Bot::build`), so alerts
//! and `rate()` see each series from the first scrape. The values are
//! recorded by [`crate::stats`] and the writer.

use service::metrics::{Metric, SIZE_BUCKETS};

/// The bot's own metrics; with [`outbox::metrics::NOTIFY`] they are all it
/// exports besides the common ones.
pub const METRICS: &[Metric] = &[
    Metric::counter(
        "aplus_bot_messages_received_total",
        "Message creates received, by source (gateway, backfill or sweep).",
    )
    .label("source", &["gateway", "backfill", "sweep"]),
    Metric::counter(
        "aplus_bot_messages_stored_total",
        "Messages stored with their event, by source (gateway, backfill or sweep).",
    )
    .label("source", &["gateway", "backfill", "sweep"]),
    Metric::counter(
        "aplus_bot_backfilled_total",
        "Messages stored from channel history (backfill).",
    ),
    Metric::counter(
        "aplus_bot_messages_sanitized_total",
        "Messages stored after removing NUL bytes.",
    ),
    Metric::counter(
        "aplus_bot_duplicates_total",
        "Message creates skipped because the id was already stored, by source.",
    )
    .label("source", &["gateway", "backfill", "sweep"]),
    Metric::counter(
        "aplus_bot_rejected_total",
        "Messages not stored, by reason.",
    )
    .label(
        "reason",
        &[
            "unlisted_channel",
            "bot_author",
            "snowflake_out_of_range",
            "undecodable",
            "channel_lookup_failed",
            "database_rejected",
        ],
    ),
    Metric::counter("aplus_bot_edits_total", "Message edits, by outcome.").label(
        "outcome",
        &["updated", "unchanged", "unknown", "stored_as_create"],
    ),
    Metric::counter("aplus_bot_deletes_total", "Message deletes, by outcome.")
        .label("outcome", &["deleted", "already_deleted", "tombstoned"]),
    Metric::counter(
        "aplus_bot_notify_failures_total",
        "NOTIFYs that failed after commit (the worker's poll finds the events).",
    ),
    Metric::counter(
        "aplus_bot_buffer_overflow_total",
        "Writes dropped from the full outage buffer (recovered by backfill).",
    ),
    Metric::gauge(
        "aplus_bot_buffer_depth",
        "Writes held in memory during a database outage.",
    ),
    Metric::gauge(
        "aplus_bot_buffer_capacity",
        "Writes the outage buffer holds at most (BOT_BUFFER).",
    ),
    Metric::counter(
        "aplus_bot_database_outages_total",
        "Database outages begun: a write failed for a reason that may pass.",
    ),
    Metric::gauge(
        "aplus_bot_database_up",
        "1 while the bot's writes reach the database, 0 during an outage.",
    )
    // The writer assumes the database is up until a write fails.
    .starting_at(1.0),
    Metric::gauge(
        "aplus_bot_write_queue_depth",
        "Writes waiting between the gateway and the writer task.",
    ),
    Metric::gauge(
        "aplus_bot_write_queue_capacity",
        "Writes the write queue holds at most (BOT_WRITE_QUEUE).",
    ),
    Metric::histogram(
        "aplus_bot_write_group_size",
        "Writes per transaction of the writer task.",
        SIZE_BUCKETS,
    ),
    Metric::counter(
        "aplus_bot_write_queue_closed_total",
        "Writes that arrived after the write queue closed for shutdown.",
    ),
    Metric::gauge(
        "aplus_bot_refetch_pending",
        "Messages whose dropped edit or delete waits to be read back.",
    ),
    Metric::counter(
        "aplus_bot_refetched_total",
        "Messages read back after their edit or delete was dropped, by outcome.",
    )
    .label("outcome", &["edit", "delete"]),
    Metric::counter(
        "aplus_bot_refetch_overflow_total",
        "Dropped edits or deletes that could not be remembered for reading back (lost).",
    ),
    Metric::counter(
        "aplus_bot_history_changes_total",
        "Edits and deletes found in channel history that no gateway event brought.",
    )
    .label("kind", &["edit", "delete"]),
    Metric::counter(
        "aplus_bot_backfill_pages_total",
        "History pages read and stored.",
    ),
    Metric::counter(
        "aplus_bot_backfill_runs_total",
        "Channel backfills finished, by outcome (caught_up or failed).",
    )
    .label("outcome", &["caught_up", "failed"]),
    Metric::counter(
        "aplus_bot_rest_retries_total",
        "Discord REST calls retried, by reason.",
    )
    .label("reason", &["rate_limited", "server_error", "network"]),
    Metric::counter(
        "aplus_bot_gateway_sessions_total",
        "Gateway sessions begun (ready) or resumed.",
    )
    .label("kind", &["ready", "resumed"]),
    Metric::gauge(
        "aplus_bot_gateway_connected",
        "1 while every gateway shard is connected, else 0.",
    ),
    Metric::gauge(
        "aplus_bot_gateway_shards_connected",
        "Gateway shards connected.",
    ),
    Metric::counter(
        "aplus_bot_sweeps_total",
        "History sweeps of a channel, by outcome (swept, skipped after a recent backfill, failed).",
    )
    .label("outcome", &["swept", "skipped", "failed"]),
    Metric::counter(
        "aplus_bot_sweep_listed_total",
        "Messages Discord listed in swept history windows.",
    ),
    Metric::counter(
        "aplus_bot_sweep_missing_total",
        "Messages a sweep found in history but not stored: the gateway never delivered them.",
    ),
    Metric::counter(
        "aplus_bot_sweep_edits_total",
        "Newer edits a sweep found in history and applied.",
    ),
    Metric::counter(
        "aplus_bot_sweep_deletes_total",
        "Stored messages a sweep found deleted (no longer listed in their page's id range).",
    ),
    Metric::histogram(
        "aplus_bot_sweep_duration_seconds",
        "Time one channel's sweep took.",
        service::metrics::PASS_BUCKETS,
    ),
    Metric::gauge(
        "aplus_bot_sweep_last_timestamp_seconds",
        "Unix time up to which the last sweep read history (0 before the first).",
    ),
    Metric::counter(
        "aplus_bot_gap_ledger_loaded_total",
        "Gap ledger entries taken over at start from an earlier process (file or database).",
    ),
];

/// Installs the recorder and registers the bot's metrics.
pub fn install() {
    service::metrics::install(
        env!("CARGO_PKG_VERSION"),
        &[METRICS, outbox::metrics::NOTIFY],
    );
}
