//! [`Shared`]: what the server tasks (REST, gateway) share with the [`crate::Sim`] handles.
//!
//! In a file of its own so that `sim` (which starts the server), `rest` and `gateway` (which
//! serve it) all depend on it and not on each other.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::state::State;

/// What the server tasks share with the [`crate::Sim`] handles: the state behind its one lock,
/// the change counter waiters watch, and the fixed settings the server hands out.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped after every change to the state, for [`crate::Sim::wait_for`].
    changed: watch::Sender<u64>,
    pub cancel: CancellationToken,
    pub heartbeat_interval: Duration,
    pub recommended_shards: u32,
    pub max_concurrency: u32,
    pub gateway_url: String,
    pub api_url: String,
    pub local_addr: SocketAddr,
    server: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Shared {
    /// Puts `state` behind the lock, with the settings of `config` the server needs.
    pub fn new(
        config: &SimConfig,
        state: State,
        cancel: CancellationToken,
        local_addr: SocketAddr,
        api_url: String,
        gateway_url: String,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
            cancel,
            heartbeat_interval: config.heartbeat_interval,
            recommended_shards: config.recommended_shards.max(1),
            max_concurrency: config.max_concurrency.max(1),
            gateway_url,
            api_url,
            local_addr,
            server: Mutex::new(None),
        }
    }

    /// Keeps the server task, for [`Shared::take_server`].
    pub fn set_server(&self, server: JoinHandle<io::Result<()>>) {
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
    }

    /// The server task, once: the first caller waits for it to stop.
    pub fn take_server(&self) -> Option<JoinHandle<io::Result<()>>> {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// A receiver that wakes after every change made through [`Shared::with`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as any single step
        // leaves it; a test that caused the panic fails anyway, so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and then wakes waiters.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        result
    }

    /// Runs `f` on the state without counting it as a change.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    pub fn heartbeat_interval_ms(&self) -> u64 {
        u64::try_from(self.heartbeat_interval.as_millis()).unwrap_or(u64::MAX)
    }
}
