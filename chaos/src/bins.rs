//! Where the service binaries are.
//!
//! The suite runs the real `bot`, `worker` and `reconciler` executables as
//! child processes, because the faults it injects (kill -9, SIGSTOP, abort
//! between commit and NOTIFY) only mean something to a whole process. This
//! package builds them from their own sources as `chaos-bot`,
//! `chaos-worker` and `chaos-reconciler`, so they sit beside the `chaos`
//! binary and tests get their paths from `CARGO_BIN_EXE_*`. `APLUS_BIN_DIR`
//! points the suite at other builds instead (say, release binaries named
//! `bot`, `worker`, `reconciler`).

use std::path::{Path, PathBuf};

/// The variable that names a directory of service binaries.
pub const BIN_DIR_VAR: &str = "APLUS_BIN_DIR";

/// Paths of the three service executables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The capture bot.
    pub bot: PathBuf,
    /// The event consumer.
    pub worker: PathBuf,
    /// The repair service (run as `reconciler run`).
    pub reconciler: PathBuf,
}

impl Binaries {
    /// `APLUS_BIN_DIR` when set (binaries named `bot`, `worker`,
    /// `reconciler`, or the `chaos-` ones), otherwise the `chaos-*` binaries
    /// beside the running executable.
    ///
    /// # Errors
    /// A message that says which file is missing and how to build it.
    pub fn locate() -> Result<Self, String> {
        match std::env::var_os(BIN_DIR_VAR) {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                Self::in_dir(&dir, ["bot", "worker", "reconciler"])
                    .or_else(|_| Self::in_dir(&dir, CHAOS_NAMES))
                    .map_err(|missing| format!("{BIN_DIR_VAR}={}: {missing}", dir.display()))
            }
            _ => {
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot tell where this program is: {e}"))?;
                let dir = exe.parent().unwrap_or(Path::new("."));
                Self::in_dir(dir, CHAOS_NAMES).map_err(|missing| {
                    format!(
                        "{missing}. Build the services with `cargo build -p chaos --features failpoints` \
                         (or run `cargo xtask chaos`), or set {BIN_DIR_VAR} to a directory holding \
                         `bot`, `worker` and `reconciler`."
                    )
                })
            }
        }
    }

    /// The binaries named `names` (bot, worker, reconciler) in `dir`.
    ///
    /// # Errors
    /// Names the first one that is not a file.
    pub fn in_dir(dir: &Path, names: [&str; 3]) -> Result<Self, String> {
        let [bot, worker, reconciler] = names.map(|name| dir.join(name));
        for path in [&bot, &worker, &reconciler] {
            if !path.is_file() {
                return Err(format!("no service binary at {}", path.display()));
            }
        }
        Ok(Self {
            bot,
            worker,
            reconciler,
        })
    }
}

/// The names this package gives the services it builds.
pub const CHAOS_NAMES: [&str; 3] = ["chaos-bot", "chaos-worker", "chaos-reconciler"];

/// Whether the `chaos-*` binaries of this build obey `FAILPOINTS`. Binaries
/// from `APLUS_BIN_DIR` may or may not; scenarios that need a failpoint
/// check that it fired instead of trusting this.
pub const FAILPOINTS_BUILT: bool = cfg!(feature = "failpoints");
