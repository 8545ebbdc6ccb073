//! Private PostgreSQL clusters, run with the machine's server binaries.
//!
//! Used by `cargo xtask up`/`test` when no `DATABASE_URL` is given, by tests
//! without one, and by fault tests that stop and restart a server of their
//! own. Needs only the standard library, so `xtask` can use it cheaply.

use std::fs::{self, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fs4::fs_std::FileExt;

/// What went wrong while managing a cluster, in words that say what to do.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

fn err(text: impl Into<String>) -> ClusterError {
    ClusterError(text.into())
}

/// How `pg_ctl stop` shuts the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnects clients, checkpoints, stops.
    Fast,
    /// Kills the server without a checkpoint: a crash, recovered at next start.
    Immediate,
}

/// A PostgreSQL cluster in a directory of its own, listening on 127.0.0.1 only.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub data_dir: PathBuf,
    pub port: u16,
    bin_dir: PathBuf,
    /// Set when running as root: the server runs as this user (initdb refuses root).
    run_as: Option<String>,
    /// `fsync=off` for throwaway test clusters; commits stay synchronous, so
    /// a server crash (not an OS crash) loses nothing committed.
    fast: bool,
    /// Server settings passed as `-c name=value` at every start, after the
    /// defaults (so they win).
    settings: Vec<(String, String)>,
}

/// The project's data folder: `APLUS_DATA_DIR`, or `.data` at the workspace root.
pub fn data_root() -> PathBuf {
    std::env::var_os("APLUS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            // The workspace root is the parent of this crate's directory.
            root.parent().unwrap_or(root).join(".data")
        })
}

/// Directory of `initdb`, `pg_ctl` and `postgres`: from `PATH`, else the
/// newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = fs::canonicalize(&initdb).unwrap_or(initdb);
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    /// Describes a cluster at `data_dir`; nothing is created until [`Cluster::ensure_running`].
    pub fn new(data_dir: impl Into<PathBuf>, port: u16) -> Result<Self, ClusterError> {
        let bin_dir = find_bin_dir().ok_or_else(|| {
            err(
                "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under \
                 /usr/lib/postgresql. Install them (Debian: `apt-get install postgresql`), \
                 or set DATABASE_URL to a server you have.",
            )
        })?;
        Ok(Self {
            data_dir: data_dir.into(),
            port,
            bin_dir,
            run_as: running_as_root().then(|| "postgres".to_owned()),
            fast: false,
            settings: Vec::new(),
        })
    }

    /// Adds a server setting for every start (`shared_preload_libraries`,
    /// `track_commit_timestamp`, ...). Names and values come from the
    /// caller's code, never from input: `pg_ctl` passes them through a shell,
    /// quoted here with single quotes.
    pub fn with_setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Trades durability against an OS crash for speed (`fsync=off`).
    pub fn fast(mut self) -> Self {
        self.fast = true;
        self
    }

    /// URL of database `db` on this cluster (trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, mut command: Command, what: &str) -> Result<Output, ClusterError> {
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("{what}: cannot run: {e}")))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(err(format!(
                "{what} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }

    fn is_initialised(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    fn init(&self) -> Result<(), ClusterError> {
        fs::create_dir_all(&self.data_dir)
            .map_err(|e| err(format!("creating {}: {e}", self.data_dir.display())))?;
        if let Some(user) = &self.run_as {
            self.run(
                {
                    let mut c = Command::new("chown");
                    c.arg("-R").arg(format!("{user}:")).arg(&self.data_dir);
                    c
                },
                "chown of the data directory",
            )?;
            // The server user must be able to reach the directory.
            let reachable = Command::new("runuser")
                .args(["-u", user, "--", "test", "-w"])
                .arg(&self.data_dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !reachable {
                return Err(err(format!(
                    "user `{user}` cannot write {}: a parent directory is not searchable by it. \
                     Set APLUS_DATA_DIR to a directory it can reach (for example under /var/tmp).",
                    self.data_dir.display()
                )));
            }
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run(initdb, "initdb")?;
        Ok(())
    }

    /// Makes the server ask every client for a password (scram), with
    /// `password` for the superuser `postgres`, if it does not already:
    /// from then on, no local user gets in without the password. Returns
    /// true when it changed the cluster. The password goes to `psql` on its
    /// standard input, never on a command line.
    pub fn require_password(&self, password: &str) -> Result<bool, ClusterError> {
        let hba = self.data_dir.join("pg_hba.conf");
        let current =
            fs::read_to_string(&hba).map_err(|e| err(format!("reading {}: {e}", hba.display())))?;
        let trusts = current
            .lines()
            .map(str::trim)
            .any(|l| !l.starts_with('#') && l.split_whitespace().any(|w| w == "trust"));
        if !trusts {
            return Ok(false);
        }
        let mut psql = Command::new(self.bin_dir.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &self.port.to_string(), "-d", "postgres", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = psql
            .spawn()
            .map_err(|e| err(format!("psql: cannot run: {e}")))?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("piped stdin");
            writeln!(
                stdin,
                "SET password_encryption = 'scram-sha-256';\nALTER ROLE postgres PASSWORD '{}';",
                password.replace('\'', "''")
            )
            .map_err(|e| err(format!("psql: writing its input: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| err(format!("psql: {e}")))?;
        if !output.status.success() {
            return Err(err(format!(
                "setting the superuser's password failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        fs::write(
            &hba,
            "# Every client gives a password (scram-sha-256): no local user gets in\n\
             # as the superuser without it. Written by the project's tooling.\n\
             local all all scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
        )
        .map_err(|e| err(format!("writing {}: {e}", hba.display())))?;
        let mut reload = self.command("pg_ctl");
        reload.arg("reload").arg("-D").arg(&self.data_dir);
        self.run(reload, "pg_ctl reload")?;
        Ok(true)
    }

    /// True when the server of this data directory is up.
    pub fn is_running(&self) -> bool {
        let mut status = self.command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.data_dir);
        status
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts the server (waiting until it accepts connections).
    pub fn start(&self) -> Result<(), ClusterError> {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c max_connections=400 -c shared_buffers=128MB",
            self.port
        );
        if self.fast {
            options.push_str(" -c fsync=off -c full_page_writes=off");
        }
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}='{value}'"));
        }
        let mut start = self.command("pg_ctl");
        start
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.data_dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options]);
        self.run(start, "pg_ctl start").map(|_| ())
    }

    /// Stops the server.
    pub fn stop(&self, mode: StopMode) -> Result<(), ClusterError> {
        let mut stop = self.command("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m"])
            .arg(match mode {
                StopMode::Fast => "fast",
                StopMode::Immediate => "immediate",
            });
        self.run(stop, "pg_ctl stop").map(|_| ())
    }

    /// Creates the cluster if needed and starts it if it is not running.
    pub fn ensure_running(&self) -> Result<(), ClusterError> {
        if !self.is_initialised() {
            self.init()?;
        }
        if !self.is_running() {
            self.start()?;
        }
        Ok(())
    }
}

/// The cluster shared by every test run without `DATABASE_URL`: created once
/// in `<data root>/pg-test`, started if stopped, reused by every test binary.
/// A file lock makes concurrent test processes agree on one start.
pub fn shared_test_cluster() -> Result<Cluster, ClusterError> {
    shared_cluster("pg-test", true)
}

/// The cluster `cargo xtask up` runs the pipeline on: `<data root>/pg`.
pub fn pipeline_cluster() -> Result<Cluster, ClusterError> {
    shared_cluster("pg", false)
}

/// Where the server of the shared cluster `name` keeps its data:
/// `<data root>/<name>`, unless the server would run as `postgres` (we are
/// root) and cannot traverse the data root's parents (a clone under root's
/// home, mode 0700). Then a private directory of its own that it can reach:
/// `/var/tmp/aplus-<uid>-<hash of the data root>/<name>`, mode 0711 and owned
/// by root (the data directory in it is the server's, mode 0700).
pub fn server_dir(name: &str) -> Result<PathBuf, ClusterError> {
    let root = data_root();
    fs::create_dir_all(&root).map_err(|e| err(format!("creating {}: {e}", root.display())))?;
    if !running_as_root() || reachable_by("postgres", &root) {
        return Ok(root.join(name));
    }
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut hasher);
    let dir = PathBuf::from(format!("/var/tmp/aplus-0-{:016x}", hasher.finish()));
    fs::create_dir_all(&dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))
        .map_err(|e| err(format!("setting the mode of {}: {e}", dir.display())))?;
    Ok(dir.join(name))
}

/// True when `user` can search `dir` (and so every parent of it).
fn reachable_by(user: &str, dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "test", "-x"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn shared_cluster(name: &str, fast: bool) -> Result<Cluster, ClusterError> {
    let root = data_root();
    let server_dir = server_dir(name)?;
    let lock_path = root.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(format!("opening {}: {e}", lock_path.display())))?;
    lock.lock_exclusive()
        .map_err(|e| err(format!("locking {}: {e}", lock_path.display())))?;
    let result = (|| {
        let port_file = root.join(format!("{name}.port"));
        let port = match fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
        {
            Some(port) => port,
            None => {
                let port = free_port().map_err(|e| err(format!("finding a free port: {e}")))?;
                fs::write(&port_file, port.to_string())
                    .map_err(|e| err(format!("writing {}: {e}", port_file.display())))?;
                port
            }
        };
        let mut cluster = Cluster::new(server_dir, port)?;
        if fast {
            cluster = cluster.fast();
        }
        cluster.ensure_running()?;
        Ok(cluster)
    })();
    // Unlocking happens on drop as well; an error here changes nothing.
    let _ = FileExt::unlock(&lock);
    result
}

/// A throwaway cluster for a test that stops, crashes or restarts its server.
/// Removed (after an immediate stop) when dropped.
#[derive(Debug)]
pub struct TempCluster {
    pub cluster: Cluster,
}

impl TempCluster {
    /// Creates and starts a new cluster on a free port.
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(&[])
    }

    /// Creates and starts a new cluster on a free port with these server
    /// settings on top of the defaults (see [`Cluster::with_setting`]).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Self, ClusterError> {
        let dir =
            data_root()
                .join("tmp")
                .join(format!("pg-{}-{}", std::process::id(), unique_suffix()));
        let port = free_port().map_err(|e| err(format!("finding a free port: {e}")))?;
        let mut cluster = Cluster::new(dir, port)?;
        for (name, value) in settings {
            cluster = cluster.with_setting(name, value);
        }
        // Owned before it runs, so a failed start still removes the directory.
        let temp = Self { cluster };
        temp.cluster.ensure_running()?;
        Ok(temp)
    }

    /// Process id of the postmaster (the first line of `postmaster.pid`),
    /// while the server runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        fs::read_to_string(self.cluster.data_dir.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.cluster.is_running() {
            let _ = self.cluster.stop(StopMode::Immediate);
        }
        let _ = fs::remove_dir_all(&self.cluster.data_dir);
    }
}

fn unique_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
