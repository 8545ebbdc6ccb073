//! A service binary run as an operator runs it, with everything it writes
//! to stdout and stderr kept for the test to search.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child whose stdout and stderr are read on threads, so its
/// pipes never fill however much it logs.
#[derive(Debug)]
pub struct Captured {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Captured {
    /// Spawns `command` with stdout and stderr piped.
    pub fn spawn(mut command: Command) -> Captured {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = read_all(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        Captured {
            child,
            stdout,
            stderr,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, waits up to `timeout` for the exit (then kills it and
    /// panics), and returns the exit status with stdout and stderr together.
    pub async fn terminate(self, timeout: Duration) -> (ExitStatus, String) {
        // The child is ours and still running or a zombie, so its pid is not reused.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.wait(timeout).await
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub async fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let logs = join(self.stdout, self.stderr);
                panic!("the child did not exit within {timeout:?}; its output:\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (status, join(self.stdout, self.stderr))
    }
}

fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join(stdout: JoinHandle<String>, stderr: JoinHandle<String>) -> String {
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    format!("{stdout}{stderr}")
}
