//! Tracing set-up: human-readable or JSON lines, filtered by `RUST_LOG`,
//! with the crates that log secrets capped whatever `RUST_LOG` says.

use std::io::IsTerminal as _;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Crates whose records below these levels carry secrets, with the most
/// verbose level they are ever logged at. At `debug` and `trace`,
/// tungstenite logs every WebSocket frame it sends (the gateway's IDENTIFY
/// and RESUME hold the Discord token) as hex and as a list of byte values;
/// the HTTP and TLS stacks log request headers (`Authorization: Bot ...`)
/// and connection details. Their remaining records (errors, warnings, and
/// tungstenite's and hyper's info) are still logged. README ("Security")
/// lists them beside `RUST_LOG`.
pub const CAPPED: &[(&str, Level)] = &[
    ("tungstenite", Level::INFO),
    ("tokio_tungstenite", Level::INFO),
    ("hyper", Level::INFO),
    ("hyper_util", Level::INFO),
    ("h2", Level::INFO),
    ("reqwest", Level::INFO),
    ("rustls", Level::INFO),
    ("tokio_rustls", Level::INFO),
];

/// The filter that applies [`CAPPED`] on top of any other: everything else
/// passes at every level.
pub fn caps() -> Targets {
    Targets::new()
        .with_default(Level::TRACE)
        .with_targets(CAPPED.iter().copied())
}

/// Installs the global subscriber. Calling it twice (as tests may) keeps the first.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,serenity=warn,tracing::span=warn")
    });
    // Two global filters: a record is logged only if both let it through, so
    // no `RUST_LOG` directive can lift a cap.
    let registry = tracing_subscriber::registry().with(filter).with(caps());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_hold_whatever_the_other_filter_allows() {
        let caps = caps();
        assert!(!caps.would_enable("tungstenite::protocol", &Level::TRACE));
        assert!(!caps.would_enable("tungstenite::protocol", &Level::DEBUG));
        assert!(caps.would_enable("tungstenite::protocol", &Level::INFO));
        assert!(!caps.would_enable("h2::codec", &Level::DEBUG));
        assert!(caps.would_enable("serenity::gateway::shard", &Level::TRACE));
        assert!(caps.would_enable("bot::writer", &Level::TRACE));
        assert!(caps.would_enable("sqlx::query", &Level::TRACE));
    }
}
