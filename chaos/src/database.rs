//! The scenario's own PostgreSQL: a throwaway cluster that the suite may
//! stop, crash and restart, one migrated database on it, the effect
//! recorder, and the administrative queries the faults and checks use.

use std::time::Duration;

use anyhow::{Context as _, Result};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, Connection as _, Executor as _};
use service::DatabaseArgs;
use service::db::{PoolSettings, connect};
use testkit::cluster::{StopMode, TempCluster};

/// Name of the database the services use.
const DATABASE: &str = "aplus_chaos";

/// The services log in as their own roles (`migration roles`), with the
/// rights and connection limits of production: not superusers, so the
/// server's reserved slots stay the suite's (F13 relies on it), and a
/// service that needed a right it was not granted would show.
pub use migration::roles::Role as DbRole;

/// How long a connection attempt of the suite's own may take: the server
/// may be down on purpose, and a sample must not hang for it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Records every effect the worker commits, with whether the event's inbox
/// row was there in the same transaction.
///
/// The worker's effect for an event is the upsert of the message's
/// `message_parses` row (its `parsed_at` and `event_id` change on every
/// application). Deciding a trading day also updates other messages' rows,
/// but changes neither column, so those writes are not effects of a new
/// event and are not recorded. The trigger's row commits or rolls back with
/// the effect, so `chaos_effects` is the history of committed effects: an
/// event id in it twice is an effect applied twice, whatever the final
/// state looks like. It only observes; it never changes what the worker does.
///
/// A worker batch may hold several events of one message; it re-derives the
/// message once, under the last of them, and that one write is the effect of
/// all of them. The writing (sub)transaction, the `xmin` of both rows, ties
/// such an effect to every inbox row written with it. The trigger runs as
/// its owner (`SECURITY DEFINER`), so the worker's role needs no right on
/// `chaos_effects`.
pub const EFFECT_RECORDER: &str = r#"
CREATE TABLE chaos_effects (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    message_id bigint NOT NULL,
    inbox_processed boolean NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX chaos_effects_event_id ON chaos_effects (event_id);
CREATE FUNCTION chaos_record_effect() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.parsed_at IS DISTINCT FROM OLD.parsed_at
       OR NEW.event_id IS DISTINCT FROM OLD.event_id THEN
        INSERT INTO chaos_effects (event_id, message_id, inbox_processed)
        VALUES (NEW.event_id, NEW.message_id,
                EXISTS (SELECT 1 FROM inbox
                        WHERE event_id = NEW.event_id AND status = 'processed'));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chaos_record_effect AFTER INSERT OR UPDATE ON message_parses
    FOR EACH ROW EXECUTE FUNCTION chaos_record_effect();
COMMENT ON TABLE chaos_effects IS
    'Chaos suite only: one row per committed worker effect (message_parses write), to prove no effect is applied twice.';
"#;

/// A private PostgreSQL server with the pipeline's database on it.
#[derive(Debug)]
pub struct ChaosDb {
    server: TempCluster,
    /// The suite's own URL (superuser).
    admin_url: String,
}

impl ChaosDb {
    /// Creates the cluster, the database, the schema and the effect recorder.
    ///
    /// # Errors
    /// When PostgreSQL cannot be started (its binaries are missing, say) or
    /// the migrations fail.
    pub async fn start() -> Result<Self> {
        let server = tokio::task::spawn_blocking(TempCluster::start)
            .await
            .context("joining the cluster start")?
            .context("starting a private PostgreSQL server")?;
        let admin_url = server.cluster.url("postgres");
        let mut admin = connect_url(&admin_url, "aplus-chaos-admin").await?;
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                r#"CREATE DATABASE "{DATABASE}""#
            ))))
            .await
            .context("creating the database")?;
        let _ = admin.close().await;
        let url = server.cluster.url(DATABASE);
        // As an installation does: the administrator creates the roles and
        // hands the database over; the owner migrates (and grants).
        let db = connect(
            &DatabaseArgs::from_url(url.clone()),
            &PoolSettings::new("aplus-chaos-admin", 1),
        )
        .context("connecting to create the roles")?;
        migration::roles::ensure_roles(&db, &migration::roles::RoleOptions::default())
            .await
            .context("creating the roles")?;
        migration::roles::hand_over(&db)
            .await
            .context("handing the database to its owner")?;
        let _ = db.close().await;
        let db = connect(
            &DatabaseArgs::from_url(role_url(server.cluster.port, DbRole::Owner)),
            &PoolSettings::new("aplus-chaos-migrate", 2),
        )
        .context("connecting to migrate")?;
        migration::migrate(&db)
            .await
            .context("applying the migrations as the owner")?;
        let _ = db.close().await;
        let mut conn = connect_url(&url, "aplus-chaos-admin").await?;
        conn.execute(sqlx::raw_sql(EFFECT_RECORDER))
            .await
            .context("installing the effect recorder")?;
        let _ = conn.close().await;
        Ok(Self {
            server,
            admin_url: url,
        })
    }

    /// URL of the pipeline's database for a service logging in as `role`.
    pub fn url(&self, role: DbRole) -> String {
        self.url_through(self.server.cluster.port, role)
    }

    /// URL of the pipeline's database for the suite's own observers
    /// (superuser: they must see every session, and reach the server when
    /// only reserved slots are left).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.server.cluster.port))
    }

    /// A service's URL through something listening on `port` of the
    /// loopback (a proxy).
    pub fn url_through(&self, port: u16, role: DbRole) -> String {
        role_url(port, role)
    }

    /// A connection of the suite's own, named `application_name`.
    ///
    /// # Errors
    /// When the server does not answer within a few seconds.
    pub async fn connect(&self, application_name: &str) -> Result<PgConnection> {
        connect_url(&self.admin_url, application_name).await
    }

    /// Stops the server (`pg_ctl stop -m fast|immediate`).
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub async fn stop(&self, mode: StopMode) -> Result<()> {
        let cluster = self.server.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.stop(mode))
            .await
            .context("joining pg_ctl stop")?
            .context("stopping PostgreSQL")
    }

    /// Starts the server again and waits until it accepts connections.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub async fn start_again(&self) -> Result<()> {
        let cluster = self.server.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.start())
            .await
            .context("joining pg_ctl start")?
            .context("starting PostgreSQL again")
    }

    /// Sets a server setting for every future session of the services'
    /// roles (`ALTER ROLE ... SET`), before the services start.
    ///
    /// # Errors
    /// When the server refuses the setting.
    pub async fn set_for_services(&self, setting: &str, value: &str) -> Result<()> {
        let mut conn = self.connect("aplus-chaos-admin").await?;
        for role in DbRole::SERVICES {
            // Names and values come from the scenarios' constants, never from input.
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                r#"ALTER ROLE "{}" SET {setting} = '{value}'"#,
                role.name()
            ))))
            .await
            .with_context(|| format!("setting {setting} for {}", role.name()))?;
        }
        Ok(())
    }

    /// The server's log so far (what it said about terminated sessions,
    /// timeouts and clients that vanished mid-transaction).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.server.cluster.data_dir.join("server.log")).unwrap_or_default()
    }

    /// How many lines of the server log contain `needle`.
    pub fn count_in_server_log(&self, needle: &str) -> usize {
        self.server_log()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }
}

/// The pipeline database's URL on the loopback `port` for `role` (the
/// private cluster trusts its loopback).
fn role_url(port: u16, role: DbRole) -> String {
    format!("postgres://{}@127.0.0.1:{port}/{DATABASE}", role.name())
}

/// Connects once, giving up after [`CONNECT_TIMEOUT`].
pub(crate) async fn connect_url(url: &str, application_name: &str) -> Result<PgConnection> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .context("parsing the database url")?
        .application_name(application_name)
        // The checks' queries are small; one that hangs means trouble.
        .options([("statement_timeout", "10000")]);
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .context("connecting to PostgreSQL timed out")?
        .context("connecting to PostgreSQL")
}

/// What the server log says when the faults took effect.
pub mod server_log {
    /// A client died (kill -9, abort) inside a transaction.
    pub const EOF_IN_TRANSACTION: &str =
        "unexpected EOF on client connection with an open transaction";
    /// The lease ran out: a paused worker's session was ended.
    pub const IDLE_IN_TRANSACTION_TIMEOUT: &str =
        "terminating connection due to idle-in-transaction timeout";
    /// `pg_terminate_backend` ended a session.
    pub const ADMINISTRATOR_COMMAND: &str = "terminating connection due to administrator command";
    /// `idle_session_timeout` ended a session.
    pub const IDLE_SESSION_TIMEOUT: &str = "terminating connection due to idle-session timeout";
}
