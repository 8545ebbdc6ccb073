//! What the pooler and TLS tests share: the service binaries (located by
//! [`common::binaries`]) run as an operator runs them, killed if a test
//! ends before stopping them.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use discord_sim::Sim;
use testkit::child::Captured;

use crate::common;

pub const WAIT: Duration = Duration::from_secs(120);

/// The service binary `name` (`bot`, `worker` or `reconciler`), as
/// [`common::binaries`] finds it.
pub fn binary(name: &str) -> PathBuf {
    let binaries = common::binaries();
    match name {
        "bot" => binaries.bot,
        "worker" => binaries.worker,
        _ => binaries.reconciler,
    }
}

/// A service process, killed if the test ends before stopping it.
pub struct Service(Option<Captured>);

impl Service {
    pub fn start(name: &str, database_url: &str, env: &[(&str, String)]) -> Service {
        let mut command = Command::new(binary(name));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("DATABASE_MAX_CONNECTIONS", "4")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("RUST_LOG", "info")
            .env("BOT_HTTP_LISTEN", "127.0.0.1:0")
            .env("WORKER_HTTP_LISTEN", "127.0.0.1:0")
            .env("RECONCILER_HTTP_LISTEN", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Service(Some(Captured::spawn(command)))
    }

    pub async fn stop(mut self) -> (ExitStatus, String) {
        self.0.take().expect("running").terminate(WAIT).await
    }

    pub async fn exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.0.take().expect("running").wait(timeout).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(captured) = &self.0 {
            // Ours and not yet waited for, so the pid is not reused.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(captured.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub fn bot_env(sim: &Sim, channel: u64) -> Vec<(&'static str, String)> {
    vec![
        ("DISCORD_TOKEN", "test-token".to_owned()),
        ("DISCORD_API_URL", sim.api_url()),
        ("APLUS_CHANNELS", channel.to_string()),
    ]
}

pub fn worker_env() -> Vec<(&'static str, String)> {
    // No fallback poll: only notifications (LISTEN) bring events.
    vec![
        ("WORKER_POLL_INTERVAL", "0".to_owned()),
        ("WORKER_CONCURRENCY", "2".to_owned()),
        ("WORKER_LEASE", "10s".to_owned()),
    ]
}

pub fn reconciler_env() -> Vec<(&'static str, String)> {
    vec![("RECONCILER_SCHEDULE", "* * * * * *".to_owned())]
}
