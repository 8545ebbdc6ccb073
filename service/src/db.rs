//! Database connections with the session settings the pipeline relies on.
//!
//! Pools are created lazily: a service starts, serves `/healthz`, and keeps
//! running while PostgreSQL is down; each use then fails fast (acquire
//! timeout) and the caller retries with backoff.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use secrecy::ExposeSecret;

use crate::config::{DatabaseArgs, KeepaliveArgs};

/// Session settings of one pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `application_name`, visible in `pg_stat_activity`.
    pub application_name: String,
    /// Largest number of connections.
    pub max_connections: u32,
    /// How long a caller waits for a connection before it gets an error.
    pub acquire_timeout: Duration,
    /// `statement_timeout`: no statement of this service runs longer.
    pub statement_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: a session that stalls inside a
    /// transaction (a paused or wedged process) is ended by the server, which
    /// releases its row locks. This is the worker's lease.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// `plan_cache_mode = force_custom_plan`: every execution of a prepared
    /// statement is planned for the tables as they are now. A pooled
    /// connection lives for minutes and caches a generic plan after five
    /// executions; one made while a table was nearly empty (a fresh
    /// database, a backlog that just started draining) goes on scanning the
    /// whole table once it has grown: the worker's drain ran four times
    /// slower with the inbox seq-scanned per claimed event. Planning the
    /// pipeline's short statements costs tens of microseconds.
    pub custom_plans: bool,
    /// A connection idle longer than this is pinged before it is handed out
    /// (default [`PING_IF_IDLE_FOR`]). Zero pings before every use: for a
    /// pool that only observes, in tests that restart the server.
    pub ping_if_idle_for: Duration,
}

impl PoolSettings {
    /// Defaults for a service: short acquire timeout, 30 s statements.
    pub fn new(application_name: impl Into<String>, max_connections: u32) -> Self {
        Self {
            application_name: application_name.into(),
            max_connections,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            idle_in_transaction_timeout: Some(Duration::from_secs(30)),
            custom_plans: true,
            ping_if_idle_for: PING_IF_IDLE_FOR,
        }
    }
}

/// Connection options for the URL with the settings applied.
pub fn connect_options(
    args: &DatabaseArgs,
    settings: &PoolSettings,
) -> Result<PgConnectOptions, sea_orm::sqlx::Error> {
    let url = args
        .url()
        .map_err(|e| sea_orm::sqlx::Error::Configuration(Box::new(e)))?;
    let mut options: PgConnectOptions = url
        .expose_secret()
        .parse::<PgConnectOptions>()?
        .application_name(&settings.application_name);
    let session = session_settings(args, settings);
    if !session.is_empty() {
        options = options.options(session);
    }
    // Statements are logged by our own spans; sqlx's per-statement log lines
    // would flood the output at the pipeline's rates.
    use sea_orm::sqlx::ConnectOptions as _;
    Ok(options.disable_statement_logging())
}

/// The session settings of a pool: sent in the startup packet's `options`
/// and set again by a statement once connected (see [`lazy_pool`]).
pub fn session_settings(
    args: &DatabaseArgs,
    settings: &PoolSettings,
) -> Vec<(&'static str, String)> {
    let mut session: Vec<(&str, String)> = Vec::new();
    if let Some(timeout) = settings.statement_timeout {
        session.push(("statement_timeout", timeout.as_millis().to_string()));
    }
    if let Some(timeout) = settings.idle_in_transaction_timeout {
        session.push((
            "idle_in_transaction_session_timeout",
            timeout.as_millis().to_string(),
        ));
    }
    if settings.custom_plans {
        session.push(("plan_cache_mode", "force_custom_plan".to_owned()));
    }
    session.extend(keepalive_settings(&args.keepalive));
    session
}

/// One statement that sets `session` for the rest of the session. A
/// connection pooler (PgBouncer) does not pass the startup packet's
/// `options` on (it refuses them, or drops them when told to ignore them);
/// a statement reaches the server whatever is in between. Names and values
/// come from this module, never from input.
pub fn set_session_sql(session: &[(&'static str, String)]) -> Option<String> {
    if session.is_empty() {
        return None;
    }
    let calls: Vec<String> = session
        .iter()
        .map(|(name, value)| format!("set_config('{name}', '{value}', false)"))
        .collect();
    Some(format!("SELECT {}", calls.join(", ")))
}

/// The session settings that make the server notice a dead peer.
///
/// They are server settings, sent with every connection: sqlx's
/// `PgConnectOptions` has no way to set socket options on the client's side
/// (no keepalive, no `TCP_USER_TIMEOUT`), so the client host's death is
/// noticed by the server, and a client notices a dead server by other means
/// (the listener's heartbeat, the pool's ping of an idle connection).
/// Keepalive probes cover a session that is idle; `tcp_user_timeout` covers
/// one where the server is sending (a LISTEN session being handed
/// notifications, a result being returned), which keepalive never probes
/// while data is unacknowledged, and on Linux it also caps how long a probed
/// session survives. A zero leaves the system's default. All are user
/// settings (PostgreSQL 14 or newer for `client_connection_check_interval`),
/// and the TCP ones are ignored on a Unix socket.
pub fn keepalive_settings(keepalive: &KeepaliveArgs) -> Vec<(&'static str, String)> {
    // The keepalive settings count whole seconds; round up, so that 500ms
    // does not become 0 (the system's default).
    let seconds = |d: Duration| d.as_millis().div_ceil(1000).to_string();
    let mut settings = Vec::new();
    if !keepalive.idle.is_zero() {
        settings.push(("tcp_keepalives_idle", seconds(keepalive.idle)));
    }
    if !keepalive.interval.is_zero() {
        settings.push(("tcp_keepalives_interval", seconds(keepalive.interval)));
    }
    if keepalive.count > 0 {
        settings.push(("tcp_keepalives_count", keepalive.count.to_string()));
    }
    if !keepalive.user_timeout.is_zero() {
        settings.push((
            "tcp_user_timeout",
            keepalive.user_timeout.as_millis().to_string(),
        ));
    }
    if !keepalive.connection_check_interval.is_zero() {
        settings.push((
            "client_connection_check_interval",
            keepalive.connection_check_interval.as_millis().to_string(),
        ));
    }
    settings
}

/// A lazily connecting pool.
pub fn lazy_pool(
    args: &DatabaseArgs,
    settings: &PoolSettings,
) -> Result<PgPool, sea_orm::sqlx::Error> {
    let options = connect_options(args, settings)?;
    let ping_if_idle_for = settings.ping_if_idle_for;
    let set_session: Option<std::sync::Arc<str>> =
        set_session_sql(&session_settings(args, settings)).map(Into::into);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        // A connection that died while idle (a server restart, an idle
        // timeout) is found out before it is handed to a caller, but only a
        // connection that sat idle is pinged: sqlx's own test pings before
        // every acquire, a round trip per use that a busy pool pays for
        // nothing (the bot paid two of its seven round trips per message).
        // A connection in steady use fails on its statement instead, which
        // every caller already treats as a failure that may pass.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let set_session = set_session.clone();
            Box::pin(async move {
                if let Some(sql) = set_session {
                    use sea_orm::sqlx::Executor as _;
                    conn.execute(sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(
                        sql.to_string(),
                    )))
                    .await?;
                }
                Ok(())
            })
        })
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if !needs_ping(meta.idle_for, ping_if_idle_for) {
                    return Ok(true);
                }
                use sea_orm::sqlx::Connection as _;
                match conn.ping().await {
                    Ok(()) => Ok(true),
                    // Expected after a server restart or an ended session,
                    // so not a warning: the pool closes this connection and
                    // hands out another or opens a new one.
                    Err(error) => {
                        tracing::info!(%error, idle_ms = meta.idle_for.as_millis() as u64, "a pooled connection died while idle; replacing it");
                        Ok(false)
                    }
                }
            })
        })
        .connect_lazy_with(options))
}

/// Idle longer than this, a connection is pinged before it is handed out.
/// Long enough that a pool in steady use never pings; short enough that a
/// connection left from before a server restart is found out before use.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Whether a connection idle for `idle_for` is pinged before it is handed
/// out, by a pool that pings connections idle longer than `limit`.
pub fn needs_ping(idle_for: Duration, limit: Duration) -> bool {
    limit.is_zero() || idle_for > limit
}

/// A sea-orm connection over a lazily connecting pool.
pub fn connect(
    args: &DatabaseArgs,
    settings: &PoolSettings,
) -> Result<DatabaseConnection, sea_orm::sqlx::Error> {
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(lazy_pool(
        args, settings,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_asks_the_server_to_probe_a_silent_peer() {
        let args = DatabaseArgs::from_url("postgres://app@db/aplus");
        let options = connect_options(&args, &PoolSettings::new("aplus-test", 1)).expect("parses");
        let text = options.get_options().unwrap_or_default();
        for setting in [
            "tcp_keepalives_idle=10",
            "tcp_keepalives_interval=5",
            "tcp_keepalives_count=3",
            "tcp_user_timeout=25000",
            "client_connection_check_interval=5000",
        ] {
            assert!(text.contains(setting), "{setting} missing from {text}");
        }
    }

    #[test]
    fn the_session_settings_are_also_set_by_a_statement_a_pooler_passes_on() {
        let args = DatabaseArgs::from_url("postgres://app@db/aplus");
        let sql = set_session_sql(&session_settings(
            &args,
            &PoolSettings::new("aplus-test", 1),
        ))
        .expect("settings to set");
        for call in [
            "set_config('idle_in_transaction_session_timeout', '30000', false)",
            "set_config('statement_timeout', '30000', false)",
            "set_config('tcp_user_timeout', '25000', false)",
        ] {
            assert!(sql.contains(call), "{call} missing from {sql}");
        }
        assert_eq!(set_session_sql(&[]), None);
    }

    #[test]
    fn a_zero_keepalive_setting_leaves_the_system_default_and_parts_of_a_second_round_up() {
        let keepalive = KeepaliveArgs {
            idle: Duration::from_millis(500),
            interval: Duration::ZERO,
            count: 0,
            user_timeout: Duration::ZERO,
            connection_check_interval: Duration::ZERO,
        };
        assert_eq!(
            keepalive_settings(&keepalive),
            vec![("tcp_keepalives_idle", "1".to_owned())]
        );
    }

    #[test]
    fn only_a_connection_that_sat_idle_is_pinged_before_use() {
        let limit = PING_IF_IDLE_FOR;
        assert!(!needs_ping(Duration::ZERO, limit));
        assert!(!needs_ping(Duration::from_millis(300), limit));
        assert!(!needs_ping(PING_IF_IDLE_FOR, limit));
        assert!(needs_ping(Duration::from_millis(1_001), limit));
        assert!(needs_ping(Duration::from_secs(300), limit));
        assert!(
            needs_ping(Duration::ZERO, Duration::ZERO),
            "zero pings before every use"
        );
    }
}
