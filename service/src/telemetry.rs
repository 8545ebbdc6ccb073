//! Tracing set-up: human-readable or JSON lines, filtered by `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. Calling it twice (as tests may) keeps the first.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,serenity=warn,tracing::span=warn")
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_target(true)
                    // Colours only on a terminal: a process manager's log
                    // file should not fill with escape codes.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second initialisation only happens in tests that share a process; the
    // first subscriber stays, which is what they want.
    let _ = result;
}

/// An error and all its causes on one line, for logs: `outbox operation
/// failed: database error: connection refused`. A wrapper that repeats its
/// cause verbatim adds nothing and is skipped.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
