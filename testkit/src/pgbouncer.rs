//! A private PgBouncer in front of the test server, for the tests that show
//! what a connection pooler keeps and what it breaks.
//!
//! Debian's `pgbouncer` is installed when it is missing and the tests run as
//! root (as `cargo xtask` installs PostgreSQL); otherwise the test fails
//! with what to install. PgBouncer refuses to run as root, so it then runs
//! as `postgres`. It listens on 127.0.0.1 on a free port, with its
//! configuration and log in a temporary directory, and is killed and the
//! directory removed when the handle is dropped.

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::free_port;

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A client keeps one server session until it disconnects.
    Session,
    /// A client holds a server session only for the length of a transaction.
    Transaction,
}

impl PoolMode {
    fn name(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer; killed when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

/// Where `pgbouncer` is, installing Debian's package when it is missing and
/// the process may.
pub fn pgbouncer_binary() -> Result<PathBuf, String> {
    crate::packages::ensure("pgbouncer", "pgbouncer")
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The user PgBouncer runs as when the tests run as root.
fn postgres_user() -> Result<nix::unistd::User, String> {
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| {
            "PgBouncer refuses to run as root and there is no `postgres` user to run it as"
                .to_owned()
        })
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of the server of `server_url`
    /// (any database name is passed through; authentication is left to the
    /// server). Panics, failing the test, when it cannot.
    pub fn start(mode: PoolMode, server_url: &str) -> PgBouncer {
        Self::try_start(mode, server_url)
            .unwrap_or_else(|error| panic!("cannot start PgBouncer: {error}"))
    }

    fn try_start(mode: PoolMode, server_url: &str) -> Result<PgBouncer, String> {
        let binary = pgbouncer_binary()?;
        let server = url::Url::parse(server_url).map_err(|e| format!("server url: {e}"))?;
        let host = server.host_str().unwrap_or("127.0.0.1").to_owned();
        let server_port = server.port().unwrap_or(5432);
        let user = match server.username() {
            "" => "postgres".to_owned(),
            user => user.to_owned(),
        };
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let dir =
            std::env::temp_dir().join(format!("aplus-pgbouncer-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let log = dir.join("pgbouncer.log");
        // `trust` still wants the user listed; the server checks passwords.
        fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n"))
            .map_err(|e| e.to_string())?;
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = {mode}\n\
             max_client_conn = 500\n\
             default_pool_size = 40\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\n\
             admin_users = {user}\n",
            users = dir.join("users.txt").display(),
            mode = mode.name(),
            log = log.display(),
        );
        let config = dir.join("pgbouncer.ini");
        fs::write(&config, ini).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            let postgres = postgres_user()?;
            for path in [&dir, &config, &dir.join("users.txt")] {
                std::os::unix::fs::chown(path, Some(postgres.uid.as_raw()), None)
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
            command
                .uid(postgres.uid.as_raw())
                .gid(postgres.gid.as_raw());
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run pgbouncer: {e}"))?;
        let bouncer = PgBouncer { child, dir, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(format!(
                    "PgBouncer did not listen on port {port} within 15 s; its log:\n{}",
                    bouncer.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    /// `url` (a database on the server PgBouncer fronts) through PgBouncer.
    pub fn url(&self, url: &str) -> String {
        let mut through = url::Url::parse(url).expect("a database url");
        through.set_host(Some("127.0.0.1")).expect("a host");
        through.set_port(Some(self.port)).expect("a port");
        through.to_string()
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
