//! Every metric the worker exports, registered at start with its help text
//! and its known label values, so alerts and `rate()` see each series from
//! the first scrape: the consumer's and the LISTEN loop's (from `outbox`),
//! and the worker's own.

use service::metrics::Metric;

/// The worker's own metrics.
pub const METRICS: &[Metric] = &[
    Metric::counter(
        "aplus_worker_parsed_total",
        "Messages handled, by what their parse became: current, superseded, duplicate, not_aplus, retracted.",
    )
    .label(
        "outcome",
        &["current", "superseded", "duplicate", "not_aplus", "retracted"],
    ),
    Metric::gauge(
        "aplus_outbox_watermark",
        "The outbox watermark: the transaction id consumers scan from.",
    ),
    Metric::gauge(
        "aplus_listener_last_heartbeat_age_seconds",
        "Seconds since the LISTEN connection last read its own heartbeat back.",
    ),
    Metric::gauge(
        "aplus_listener_last_notification_age_seconds",
        "Seconds since the LISTEN connection last read an event notification.",
    ),
];

/// Installs the recorder and registers every metric the worker records.
pub fn install() {
    service::metrics::install(
        env!("CARGO_PKG_VERSION"),
        &[
            METRICS,
            outbox::metrics::CONSUMER,
            outbox::metrics::LISTENER,
        ],
    );
}
