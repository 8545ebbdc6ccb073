//! Every metric the reconciler exports, registered at start with its help
//! text and its known label values, so alerts and `rate()` see each series
//! from the first scrape. The pass publishes the values ([`crate::service::pass`]).

use service::metrics::{Metric, PASS_BUCKETS};

/// The reconciler's own metrics.
pub const METRICS: &[Metric] = &[
    Metric::counter(
        "aplus_reconciler_passes_total",
        "Passes by outcome: completed, partial (a step failed), skipped (another instance ran it), failed (could not start).",
    )
    .label("outcome", &["completed", "partial", "skipped", "failed"]),
    Metric::counter(
        "aplus_reconciler_step_errors_total",
        "Pass steps that failed, by step.",
    )
    .label(
        "step",
        &[
            "missing_events",
            "notify",
            "orphans",
            "watermark",
            "counts",
            "prune",
            "listeners",
            "record",
        ],
    ),
    Metric::counter(
        "aplus_reconciler_messages_scanned_total",
        "Messages examined by the missing-event scan.",
    ),
    Metric::counter(
        "aplus_reconciler_missing_events_created_total",
        "message.created events written for messages that had none.",
    ),
    Metric::counter(
        "aplus_reconciler_orphans_refired_total",
        "Never-claimed events re-fired with a NOTIFY.",
    ),
    Metric::counter(
        "aplus_reconciler_retries_nudged_total",
        "Failed events whose retry was due, nudged with a NOTIFY.",
    ),
    Metric::counter(
        "aplus_reconciler_pruned_events_total",
        "Processed events deleted for age.",
    ),
    Metric::counter(
        "aplus_reconciler_pruned_inbox_total",
        "Inbox rows deleted with their events.",
    ),
    Metric::counter(
        "aplus_reconciler_pruned_runs_total",
        "reconciler_runs rows deleted for age.",
    ),
    Metric::counter(
        "aplus_reconciler_recovered_total",
        "Events an operator re-fired or replayed with `reconciler recover`, by target.",
    )
    .label("target", &["orphans", "dead"]),
    Metric::counter(
        "aplus_reconciler_stale_listeners_ended_total",
        "Workers' LISTEN sessions ended because they stopped reading their heartbeat.",
    ),
    Metric::gauge(
        "aplus_reconciler_backlog",
        "Unclaimed events plus failed events awaiting retry, at the last pass.",
    ),
    Metric::gauge(
        "aplus_reconciler_oldest_pending_age_seconds",
        "Age of the oldest event no worker has claimed, at the last pass (0 when none).",
    ),
    Metric::gauge(
        "aplus_reconciler_dead_events",
        "Events that used up their attempts, at the last pass.",
    ),
    Metric::gauge(
        "aplus_reconciler_retries_due",
        "Failed events whose retry is due, at the last pass.",
    ),
    Metric::gauge(
        "aplus_reconciler_notification_queue_usage",
        "pg_notification_queue_usage() at the last pass, 0 to 1; every NOTIFY fails at 1.",
    ),
    Metric::gauge(
        "aplus_reconciler_stale_listeners",
        "Workers' LISTEN sessions silent past the stale bound, at the last pass.",
    ),
    Metric::gauge(
        "aplus_reconciler_watermark",
        "The outbox watermark after the last pass advanced it.",
    ),
    Metric::gauge(
        "aplus_reconciler_event_message_ratio_1h",
        "message.created events per message received in the last hour (1 when both are zero).",
    )
    // Nothing is known to be wrong before the first pass.
    .starting_at(1.0),
    Metric::gauge(
        "aplus_reconciler_processing_rate_1h",
        "Share of the last hour's events processed (1 with no events).",
    )
    .starting_at(1.0),
    Metric::gauge(
        "aplus_reconciler_scan_complete",
        "1 when the last missing-event scan reached the pass's now.",
    ),
    Metric::gauge(
        "aplus_reconciler_last_pass_timestamp_seconds",
        "When the last pass started, in seconds since the Unix epoch (0 before the first).",
    ),
    Metric::histogram(
        "aplus_reconciler_pass_duration_seconds",
        "Seconds a pass took.",
        PASS_BUCKETS,
    ),
];

/// Installs the recorder and registers every metric the reconciler records.
pub fn install() {
    service::metrics::install(
        env!("CARGO_PKG_VERSION"),
        &[METRICS, outbox::metrics::NOTIFY],
    );
}
