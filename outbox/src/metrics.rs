//! The metrics this crate records, for the services that use it to
//! register at start (`service::metrics::install`): the LISTEN loop and the
//! consumer in the worker, NOTIFY wherever events are written.

use service::metrics::{LATENCY_BUCKETS, Metric, SIZE_BUCKETS};

/// The LISTEN loop ([`crate::listener`]).
pub const LISTENER: &[Metric] = &[
    Metric::gauge(
        "aplus_listener_connected",
        "1 while the LISTEN \"events\" connection is established, else 0.",
    ),
    Metric::counter(
        "aplus_listener_deaf_total",
        "LISTEN connections replaced because the heartbeat did not come back.",
    ),
    Metric::counter(
        "aplus_listener_reconnects_total",
        "LISTEN connections that ended and were re-established (lost, deaf or relisten).",
    ),
    Metric::counter(
        "aplus_listener_notifications_total",
        "Notifications read: an event id, or ignored (not ours, malformed).",
    )
    .label("kind", &["event", "ignored"]),
];

/// The consumer ([`crate::consume`]).
pub const CONSUMER: &[Metric] = &[
    Metric::counter(
        "aplus_worker_events_total",
        "Events handled, by outcome: processed, failed (retry scheduled), dead, duplicate.",
    )
    .label("outcome", &["processed", "failed", "dead", "duplicate"]),
    Metric::counter(
        "aplus_worker_batch_fallbacks_total",
        "Batches whose set-based handling failed and were handled one event at a time.",
    ),
    Metric::histogram(
        "aplus_worker_batch_size",
        "Events claimed per batch.",
        SIZE_BUCKETS,
    ),
    Metric::histogram(
        "aplus_worker_event_latency_seconds",
        "Seconds from an event's commit to its processing.",
        LATENCY_BUCKETS,
    ),
];

/// NOTIFY after commit ([`crate::notify`]).
pub const NOTIFY: &[Metric] = &[Metric::counter(
    "aplus_notify_sent_total",
    "Event ids sent with NOTIFY \"events\".",
)];
