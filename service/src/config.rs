//! Configuration pieces that every service flattens into its own `clap` parser.
//!
//! Every flag has an environment variable, so the same binary runs from a
//! shell, supervisord, systemd or a Procfile without wrappers.

use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// Where the database is and how many connections a service may hold.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. It may hold a password, so it is kept as a secret and
    /// logged only with the password removed.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Largest number of pooled connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

impl DatabaseArgs {
    /// Builds the arguments from a URL, for tests and tools.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            database_url: SecretString::from(url.into()),
            database_max_connections: 8,
        }
    }

    /// The URL with any password replaced by `***`, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }
}

/// Replaces the password of a `postgres://user:password@host/db` URL by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
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
    fn the_database_url_never_shows_in_debug_output() {
        let args = DatabaseArgs::from_url("postgres://app:canary-password@db/aplus");
        assert!(!format!("{args:?}").contains("canary-password"));
    }
}
