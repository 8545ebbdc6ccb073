//! One cancellation token for SIGTERM and Ctrl-C.
//!
//! Every task of a service watches the same token; `main` waits for the tasks
//! with a deadline after it fires, so in-flight work finishes cleanly.
//!
//! A service stops in steps (close the gateway, finish in-flight writes,
//! drain the queue, flush the buffer...). Each step takes what is left of one
//! [`Deadline`], set when the stop begins, never a timeout of its own: six
//! steps with 10 s each could take a minute, past supervisord's
//! `stopwaitsecs` and systemd's `TimeoutStopSec`, which then kill the service
//! mid-write. The defaults (bot 10 s, worker 20 s) fit inside both (30 s).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The moment by which a stopping service must be done.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// What is left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Runs `step` until it completes or the deadline passes (`None`).
    pub async fn run<F: Future>(&self, step: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.0, step).await.ok()
    }
}

/// Returns a token that is cancelled on the first SIGTERM or SIGINT.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
