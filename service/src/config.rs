//! Configuration pieces that every service flattens into its own `clap` parser.
//!
//! Every flag has an environment variable, so the same binary runs from a
//! shell, supervisord, systemd or a Procfile without wrappers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::secret::{SecretError, SecretSource};

/// Where the database is and how many connections a service may hold.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. It may hold a password, so it is kept as a secret and
    /// logged only with the password removed. Empty when it comes from a file.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub database_url: SecretString,

    /// File holding the PostgreSQL URL, readable only by the service. Without
    /// this or `--database-url`, `$CREDENTIALS_DIRECTORY/database-url` is read
    /// (systemd's `LoadCredential=database-url:<file>`).
    #[arg(
        long = "database-url-file",
        env = "DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,

    /// Largest number of pooled connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// How the server finds out that this host is gone.
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
}

/// How soon the server ends a session whose client host died or whose link
/// was cut, set per session (see `service::db::connect_options`).
///
/// Without these, a dead host's sessions stay on the server until the
/// kernel's default keepalive gives up, about two hours later; a dead LISTEN
/// session holds back every notification for that long. With the defaults,
/// a silent peer is found out within 25 s, whether its session is idle (the
/// keepalive probes go unanswered) or the server is sending to it (the data
/// stays unacknowledged for `tcp_user_timeout`). A zero leaves the operating
/// system's default.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct KeepaliveArgs {
    /// Silence after which the server starts probing a session (`tcp_keepalives_idle`).
    #[arg(long = "database-keepalives-idle", env = "DATABASE_KEEPALIVES_IDLE", default_value = "10s", value_parser = parse_duration)]
    pub idle: Duration,

    /// Time between unanswered probes (`tcp_keepalives_interval`).
    #[arg(long = "database-keepalives-interval", env = "DATABASE_KEEPALIVES_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Unanswered probes after which the session ends (`tcp_keepalives_count`).
    #[arg(
        long = "database-keepalives-count",
        env = "DATABASE_KEEPALIVES_COUNT",
        default_value_t = 3
    )]
    pub count: u32,

    /// How long data the server sent may stay unacknowledged, and (on Linux)
    /// the longest silence a probed session survives (`tcp_user_timeout`).
    #[arg(long = "database-tcp-user-timeout", env = "DATABASE_TCP_USER_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub user_timeout: Duration,

    /// How often a running statement checks that its client is still there
    /// (`client_connection_check_interval`), so a dead client's long
    /// statement stops instead of running to its timeout.
    #[arg(long = "database-connection-check-interval", env = "DATABASE_CONNECTION_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub connection_check_interval: Duration,
}

impl Default for KeepaliveArgs {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(5),
            count: 3,
            user_timeout: Duration::from_secs(25),
            connection_check_interval: Duration::from_secs(5),
        }
    }
}

impl DatabaseArgs {
    /// Builds the arguments from a URL, for tests and tools.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            database_url: SecretString::from(url.into()),
            database_url_file: None,
            database_max_connections: 8,
            keepalive: KeepaliveArgs::default(),
        }
    }

    /// The URL: given directly, or read from its file or systemd credential.
    pub fn url(&self) -> Result<SecretString, SecretError> {
        SecretSource {
            value: &self.database_url,
            file: self.database_url_file.as_deref(),
            variable: "DATABASE_URL",
            credential: "database-url",
        }
        .load()
    }

    /// The URL with its password removed (see [`redact_url`]), fit for logs.
    pub fn redacted_url(&self) -> String {
        match self.url() {
            Ok(url) => redact_url(url.expose_secret()),
            Err(_) => "<not set>".to_owned(),
        }
    }
}

/// The text shown instead of a secret.
const REDACTED: &str = "***";

/// A database URL fit for logs: the URL is parsed, its password (`user:pw@`)
/// and every query parameter that names a password, secret or token
/// (`?password=`, `sslpassword=`) are replaced by `***`. Text that does not
/// parse as a URL is not shown at all, since where its secret lies cannot be
/// told.
pub fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return match text.split_once("://") {
            Some((scheme, _))
                if scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://<not shown: not a valid URL>")
            }
            _ => "<not shown: not a valid URL>".to_owned(),
        };
    };
    if url.password().is_some() {
        // Only a URL that cannot have a password (no host) refuses this, and
        // such a URL has none.
        let _ = url.set_password(Some(REDACTED));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_secret_parameter(&key) {
                    REDACTED.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if url.fragment().is_some() {
        url.set_fragment(Some(REDACTED));
    }
    url.into()
}

fn is_secret_parameter(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging flags. The level filter comes from `RUST_LOG` (default `info`).
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

/// Parses durations written as `250ms`, `5s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 5s, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_database_url_is_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/aplus"),
            "postgres://app:***@db:5432/aplus"
        );
        assert_eq!(
            redact_url("postgres://app@db/aplus"),
            "postgres://app@db/aplus"
        );
        // An `@` or `:` in the password, percent-encoded as it must be.
        assert_eq!(
            redact_url("postgresql://app:p%40ss%3Aw%2Fd@db/aplus?sslmode=require"),
            "postgresql://app:***@db/aplus?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/aplus?sslmode=require&password=s3cret&PassWord=x"),
            "postgres://app@db/aplus?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            redact_url("postgres://app@db/aplus?sslpassword=s3cret"),
            "postgres://app@db/aplus?sslpassword=***"
        );
        assert_eq!(
            redact_url("postgres://app@db/aplus?password=a%26b%3Dc"),
            "postgres://app@db/aplus?password=***"
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_not_shown() {
        // Several hosts: valid for libpq, not for a URL parser.
        let shown = redact_url("postgres://app:s3cret@h1:5432,h2:5432/aplus");
        assert!(!shown.contains("s3cret"), "{shown}");
        let shown = redact_url("host=db user=app password=s3cret");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn durations_read_the_usual_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn the_keepalive_flags_default_to_what_default_says() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            database: DatabaseArgs,
        }
        use clap::Parser as _;
        let cli =
            Cli::try_parse_from(["test", "--database-url", "postgres://db/aplus"]).expect("parses");
        assert_eq!(cli.database.keepalive, KeepaliveArgs::default());
        let cli = Cli::try_parse_from([
            "test",
            "--database-url",
            "postgres://db/aplus",
            "--database-keepalives-idle",
            "1s",
            "--database-tcp-user-timeout",
            "0",
        ])
        .expect("parses");
        assert_eq!(cli.database.keepalive.idle, Duration::from_secs(1));
        assert_eq!(cli.database.keepalive.user_timeout, Duration::ZERO);
    }

    #[test]
    fn the_database_url_comes_from_its_flag_or_its_file_not_both() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            database: DatabaseArgs,
        }
        use clap::Parser as _;
        let path = std::env::temp_dir().join(format!("aplus-url-{}", std::process::id()));
        std::fs::write(&path, "postgres://app:s3cret@db/aplus\n").expect("write");
        let file = path.to_str().expect("utf-8 temp path");
        // Built, not parsed: the tests' own DATABASE_URL would conflict.
        let mut args = DatabaseArgs::from_url("");
        args.database_url_file = Some(path.clone());
        assert_eq!(
            args.url().expect("read").expose_secret(),
            "postgres://app:s3cret@db/aplus"
        );
        assert_eq!(args.redacted_url(), "postgres://app:***@db/aplus");
        assert!(
            Cli::try_parse_from([
                "test",
                "--database-url",
                "postgres://db/a",
                "--database-url-file",
                file
            ])
            .is_err()
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_database_url_never_shows_in_debug_output() {
        let args = DatabaseArgs::from_url("postgres://app:canary-password@db/aplus");
        assert!(!format!("{args:?}").contains("canary-password"));
    }
}
