//! A small process supervisor, in the manner of supervisord's `autorestart`:
//! each service runs as a child process, is started again a moment after it
//! exits, and every start, exit and log line is recorded on the scenario's
//! timeline.
//!
//! The faults act on the process the supervisor holds (`kill -9`, `SIGSTOP`,
//! `SIGCONT`); restarting is the supervisor's job, exactly as in production.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::timeline::Timeline;

/// How long a service may take to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A program and how to run it.
#[derive(Debug, Clone)]
pub struct Program {
    /// Name in reports and the log file's name.
    pub name: String,
    /// The executable.
    pub path: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Variables set on top of the suite's environment.
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
}

/// How a run of the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal (9 = SIGKILL, 6 = SIGABRT from a failpoint).
    Signal(i32),
    /// Could not even be started.
    SpawnFailed,
}

impl Ended {
    /// SIGABRT: how the failpoints end a process.
    pub const ABORT: Ended = Ended::Signal(Signal::SIGABRT as i32);

    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Ended::Code(code),
            (None, Some(signal)) => Ended::Signal(signal),
            // Neither a code nor a signal cannot happen on Unix; call it -1.
            (None, None) => Ended::Code(-1),
        }
    }
}

/// One run of the program, start to exit.
#[derive(Debug, Clone, Serialize)]
pub struct Exit {
    /// When it ended, on the scenario's timeline.
    pub at: Duration,
    /// How long it had run.
    pub uptime: Duration,
    /// How it ended.
    pub ended: Ended,
    /// Whether the suite itself sent the fatal signal.
    pub by_chaos: bool,
}

#[derive(Debug, Default)]
struct State {
    pid: Option<u32>,
    started_at: Option<Duration>,
    starts: u32,
    exits: Vec<Exit>,
    /// A kill the suite sent to the current process, not yet seen exiting.
    killing: bool,
    /// Log lines per second of the timeline (stdout and stderr together).
    log_lines: BTreeMap<u64, u32>,
}

/// A supervised service. Cheap to clone; all clones control one process.
#[derive(Debug, Clone)]
pub struct Supervised {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    program: Program,
    timeline: Timeline,
    restart_delay: Duration,
    log_path: PathBuf,
    state: Mutex<State>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Supervised {
    /// Prepares supervision; nothing runs until [`Supervised::launch`].
    pub fn new(
        program: Program,
        timeline: Timeline,
        log_dir: &Path,
        restart_delay: Duration,
    ) -> Self {
        let log_path = log_dir.join(format!("{}.log", program.name));
        Self {
            inner: Arc::new(Inner {
                program,
                timeline,
                restart_delay,
                log_path,
                state: Mutex::new(State::default()),
                stop: CancellationToken::new(),
                task: Mutex::new(None),
            }),
        }
    }

    /// Starts the program and keeps it running until [`Supervised::stop`].
    /// A second call does nothing.
    pub fn launch(&self) {
        let mut task = lock(&self.inner.task);
        if task.is_none() {
            *task = Some(tokio::spawn(supervise(Arc::clone(&self.inner))));
        }
    }

    /// Whether [`Supervised::launch`] was called.
    pub fn launched(&self) -> bool {
        lock(&self.inner.task).is_some()
    }

    /// Process id of the running instance.
    pub fn pid(&self) -> Option<u32> {
        self.state().pid
    }

    /// Starts so far (the first start included).
    pub fn starts(&self) -> u32 {
        self.state().starts
    }

    /// Every exit so far.
    pub fn exits(&self) -> Vec<Exit> {
        self.state().exits.clone()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.inner.log_path
    }

    /// Sends `signal` to the running instance. Returns false when none runs.
    /// A SIGKILL or SIGABRT sent here marks the coming exit as the suite's doing.
    pub fn signal(&self, signal: Signal) -> bool {
        let mut state = self.state();
        let Some(pid) = state.pid else {
            return false;
        };
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        let sent = kill(Pid::from_raw(raw), signal).is_ok();
        if sent && matches!(signal, Signal::SIGKILL | Signal::SIGABRT) {
            state.killing = true;
        }
        sent
    }

    /// Log lines per second over `[from, to)`: the busiest second and the mean.
    pub fn log_rate(&self, from: Duration, to: Duration) -> (u32, f64) {
        let state = self.state();
        let (first, last) = (from.as_secs(), to.as_secs().max(from.as_secs() + 1));
        let mut max = 0;
        let mut total: u64 = 0;
        for (_, lines) in state.log_lines.range(first..last) {
            max = max.max(*lines);
            total += u64::from(*lines);
        }
        (max, total as f64 / (last - first) as f64)
    }

    /// Stops supervising: SIGTERM (and SIGCONT, in case it is paused), then
    /// SIGKILL after a grace period. Waits for the supervision task.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            // The task itself never panics; a join error would only mean the
            // runtime is shutting down, when nothing is left to do anyway.
            let _ = tokio::time::timeout(STOP_GRACE + Duration::from_secs(5), task).await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked:
/// every critical section here is a plain field update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the program again and again until stopped.
async fn supervise(inner: Arc<Inner>) {
    let log = match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&inner.log_path)
        .await
    {
        Ok(file) => Some(Arc::new(tokio::sync::Mutex::new(file))),
        Err(error) => {
            tracing::warn!(path = %inner.log_path.display(), %error, "cannot write the service log; counting lines only");
            None
        }
    };
    while !inner.stop.is_cancelled() {
        let mut command = Command::new(&inner.program.path);
        command
            .args(&inner.program.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the suite itself dies, its children go with it.
            .kill_on_drop(true);
        for key in &inner.program.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &inner.program.env {
            command.env(key, value);
        }
        let started_at = inner.timeline.now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(service = %inner.program.name, %error, "cannot start the service");
                lock(&inner.state).exits.push(Exit {
                    at: started_at,
                    uptime: Duration::ZERO,
                    ended: Ended::SpawnFailed,
                    by_chaos: false,
                });
                if pause(&inner).await {
                    continue;
                }
                break;
            }
        };
        {
            let mut state = lock(&inner.state);
            state.pid = child.id();
            state.started_at = Some(started_at);
            state.starts += 1;
            state.killing = false;
        }
        let readers = [
            child.stdout.take().map(|out| {
                tokio::spawn(pump(
                    out,
                    Arc::clone(&inner),
                    log.clone(),
                    inner.program.name.clone(),
                ))
            }),
            child.stderr.take().map(|err| {
                tokio::spawn(pump(
                    err,
                    Arc::clone(&inner),
                    log.clone(),
                    inner.program.name.clone(),
                ))
            }),
        ];
        let status = tokio::select! {
            status = child.wait() => status,
            _ = inner.stop.cancelled() => terminate(&mut child).await,
        };
        let ended = match status {
            Ok(status) => Ended::from_status(status),
            Err(_) => Ended::Code(-1),
        };
        {
            let mut state = lock(&inner.state);
            let at = inner.timeline.now();
            let by_chaos = state.killing;
            state.pid = None;
            state.killing = false;
            state.exits.push(Exit {
                at,
                uptime: at.saturating_sub(started_at),
                ended,
                by_chaos,
            });
        }
        for reader in readers.into_iter().flatten() {
            // Output ends with the process; a reader that fails only loses lines.
            let _ = reader.await;
        }
        if !pause(&inner).await {
            break;
        }
    }
}

/// Waits the restart delay; false when stopping instead.
async fn pause(inner: &Inner) -> bool {
    tokio::select! {
        _ = inner.stop.cancelled() => false,
        _ = tokio::time::sleep(inner.restart_delay) => true,
    }
}

/// SIGTERM, SIGCONT in case the process is paused, then SIGKILL after the grace.
async fn terminate(child: &mut tokio::process::Child) -> std::io::Result<ExitStatus> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let pid = Pid::from_raw(pid);
        let _ = kill(pid, Signal::SIGTERM);
        let _ = kill(pid, Signal::SIGCONT);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// Copies one output stream to the log file, counting lines per second.
async fn pump(
    stream: impl AsyncRead + Unpin,
    inner: Arc<Inner>,
    log: Option<Arc<tokio::sync::Mutex<tokio::fs::File>>>,
    name: String,
) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            // End of output, or output that is not text: stop reading.
            Ok(None) | Err(_) => break,
        };
        let second = inner.timeline.second();
        *lock(&inner.state).log_lines.entry(second).or_default() += 1;
        if let Some(log) = &log {
            let stamped = format!("[{:>8.3}] {line}\n", inner.timeline.now().as_secs_f64());
            if let Err(error) = log.lock().await.write_all(stamped.as_bytes()).await {
                tracing::debug!(service = %name, %error, "cannot write a log line");
            }
        }
    }
}
