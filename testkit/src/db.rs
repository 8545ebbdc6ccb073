//! A fresh, migrated database per test.
//!
//! The schema is migrated once into a template database named after the
//! migrations' source hash; each test's database is a copy of it, which takes
//! a fraction of the time of migrating from scratch.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::{AssertSqlSafe, Executor as _};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use service::DatabaseArgs;
use service::db::{PoolSettings, connect};

use migration::roles::{self, Role, RoleOptions};

use crate::cluster;

const TEMPLATE: &str = concat!("aplus_tmpl_", env!("APLUS_SCHEMA_HASH"));

/// URL of the server tests use, pointing at its `postgres` database:
/// `DATABASE_URL` if set, else the shared private test cluster (started on
/// demand). Panics with instructions when neither is possible.
pub fn server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => with_database(&url, "postgres"),
        _ => match cluster::shared_test_cluster() {
            Ok(cluster) => cluster.url("postgres"),
            Err(error) => panic!(
                "this test needs PostgreSQL and none is available.\n\
                 DATABASE_URL is not set, and a private cluster could not be started: {error}\n\
                 Either set DATABASE_URL (a role that may CREATE DATABASE), or install the \
                 PostgreSQL server (Debian: apt-get install postgresql), or run `cargo xtask test`."
            ),
        },
    }
}

/// Replaces the database name of a `postgres://` URL.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A database of one's own, migrated to the latest schema.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name (`aplus_test_<uuid>`).
    pub name: String,
    /// Its URL.
    pub url: String,
    /// A pool on it for the test's own queries.
    pub db: DatabaseConnection,
}

impl TestDb {
    /// Creates the database. Panics (failing the test) if PostgreSQL is unavailable.
    pub async fn new() -> TestDb {
        match Self::try_new().await {
            Ok(db) => db,
            Err(error) => panic!(
                "could not create a test database: {error}\n\
                 Is PostgreSQL running? Set DATABASE_URL, or run `cargo xtask test`, \
                 which starts a private server."
            ),
        }
    }

    async fn try_new() -> Result<TestDb, Box<dyn std::error::Error + Send + Sync>> {
        let server = tokio::task::spawn_blocking(server_url).await?;
        ensure_template(&server).await?;
        let name = format!("aplus_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_connection(&server).await?;
        let mut conn = admin;
        conn.execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(format!(
            r#"CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}""#
        ))))
        .await?;
        let url = with_database(&server, &name);
        {
            // Database-level rights are not copied from the template: the
            // owner and what PUBLIC may not do are set on each copy.
            let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await?,
            );
            migration::roles::hand_over(&db).await?;
            db.close().await?;
        }
        let db = connect(
            &DatabaseArgs::from_url(url.clone()),
            &PoolSettings::new("aplus-test", 10),
        )?;
        Ok(TestDb { name, url, db })
    }

    /// The URL of this database for `role` (no password: the test server
    /// trusts local connections, or a private cluster's socket does).
    pub fn url_as(&self, role: Role) -> String {
        let mut url = url::Url::parse(&self.url).expect("the test database url parses");
        url.set_password(None).expect("a postgres url has a user");
        url.set_username(role.name())
            .expect("a postgres url has a user");
        url.into()
    }

    /// The database's URL as service arguments.
    pub fn args(&self) -> DatabaseArgs {
        DatabaseArgs::from_url(self.url.clone())
    }

    /// A new pool on this database with its own settings.
    pub fn pool(&self, settings: &PoolSettings) -> DatabaseConnection {
        // The URL was built by this module from a URL that already parsed.
        connect(&self.args(), settings).expect("test database url parses")
    }

    /// Runs one SQL statement and returns the first column of the first row as i64.
    pub async fn scalar(&self, sql: &str) -> i64 {
        self.first(sql).await
    }

    /// Runs one SQL statement and returns the first column of the first row as text.
    pub async fn text(&self, sql: &str) -> String {
        self.first(sql).await
    }

    /// Runs one SQL statement and returns the first column of the first row.
    pub async fn first<T: sea_orm::TryGetable>(&self, sql: &str) -> T {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .unwrap_or_else(|e| panic!("query failed: {sql}: {e}"))
            .unwrap_or_else(|| panic!("query returned no row: {sql}"));
        row.try_get_by_index::<T>(0).unwrap_or_else(|e| {
            panic!(
                "first column of `{sql}` is not a {}: {e}",
                std::any::type_name::<T>()
            )
        })
    }

    /// Runs SQL statements for their effect.
    pub async fn exec(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("statement failed: {sql}: {e}"));
    }
}

/// A login role with a password and the privileges of the test's own
/// role, for tests that check the password never shows in a log. The
/// password is given in each form a service accepts.
#[derive(Debug, Clone)]
pub struct PasswordRole {
    /// The role's name.
    pub name: String,
    /// The password.
    pub password: String,
    /// `postgres://role:password@host/db`, the password percent-encoded.
    pub userinfo_url: String,
    /// `postgres://role@host/db?password=...`.
    pub query_url: String,
    /// `postgres://role@host/db`, for a password in `PGPASSWORD`.
    pub bare_url: String,
}

/// One way of giving a service a database password: the environment
/// variables to set.
#[derive(Debug, Clone)]
pub struct PasswordForm {
    /// What the form is, for messages.
    pub name: &'static str,
    /// Variables and their values.
    pub env: Vec<(&'static str, String)>,
}

impl PasswordForm {
    /// Sets the form's variables on `command`.
    pub fn apply(&self, command: &mut std::process::Command) {
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
    }
}

impl TestDb {
    /// Creates a login role named after this database with `password`,
    /// member of the role the tests connect as and of `aplus_owner` (so it
    /// may do all they may on the schema the owner owns).
    pub async fn password_role(&self, password: &str) -> PasswordRole {
        let name = format!("canary_{}", &self.name["aplus_test_".len()..]);
        let current = self.text("SELECT current_user::text").await;
        let quoted = password.replace('\'', "''");
        self.exec(&format!(
            r#"CREATE ROLE "{name}" LOGIN PASSWORD '{quoted}' IN ROLE "{current}", {}"#,
            Role::Owner.name()
        ))
        .await;
        let mut bare = url::Url::parse(&self.url).expect("the test database url parses");
        bare.set_password(None).expect("a postgres url has a user");
        bare.set_username(&name).expect("a postgres url has a user");
        let mut userinfo = bare.clone();
        userinfo
            .set_password(Some(password))
            .expect("a postgres url has a user");
        let mut query = bare.clone();
        query.query_pairs_mut().append_pair("password", password);
        PasswordRole {
            name,
            password: password.to_owned(),
            userinfo_url: userinfo.into(),
            query_url: query.into(),
            bare_url: bare.into(),
        }
    }

    /// Each way a service can be given `role`'s password: in the URL's user
    /// info, in its query, in `PGPASSWORD`, and in a file named by
    /// `DATABASE_URL_FILE` (written to the temporary directory).
    pub fn password_forms(&self, role: &PasswordRole) -> Vec<PasswordForm> {
        let file = std::env::temp_dir().join(format!("aplus-{}-url", role.name));
        // A trailing newline, as `echo` and editors write it.
        std::fs::write(&file, format!("{}\n", role.userinfo_url))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        let form = |name, env: &[(&'static str, &str)]| PasswordForm {
            name,
            env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        vec![
            form("user:password@", &[("DATABASE_URL", &role.userinfo_url)]),
            form("?password=", &[("DATABASE_URL", &role.query_url)]),
            form(
                "PGPASSWORD",
                &[
                    ("DATABASE_URL", &role.bare_url),
                    ("PGPASSWORD", &role.password),
                ],
            ),
            form(
                "DATABASE_URL_FILE",
                &[("DATABASE_URL_FILE", file.to_str().expect("utf-8 temp path"))],
            ),
        ]
    }

    /// Drops a role made by [`TestDb::password_role`] once its sessions are gone.
    pub async fn drop_role(&self, role: &PasswordRole) {
        self.exec(&format!(
            r#"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'"#,
            role.name
        ))
        .await;
        self.exec(&format!(r#"DROP ROLE IF EXISTS "{}""#, role.name))
            .await;
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("aplus-{}-url", role.name)));
    }
}

async fn admin_connection(
    server: &str,
) -> Result<sea_orm::sqlx::PgConnection, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::ConnectOptions as _;
    let options: PgConnectOptions = server.parse()?;
    options
        .application_name("aplus-testkit")
        .disable_statement_logging()
        .connect()
        .await
}

/// Creates the template database once per schema version. Concurrent test
/// processes serialise on an advisory lock; the template is built under a
/// temporary name and renamed when complete, so nobody copies a half-migrated one.
async fn ensure_template(server: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut admin = admin_connection(server).await?;
    let exists = |name: &str| {
        sea_orm::sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(name.to_owned())
    };
    let roles_exist = {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await?;
        let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        let found = roles::roles_exist(&db).await?;
        db.close().await?;
        found
    };
    if roles_exist && exists(TEMPLATE).fetch_one(&mut admin).await? {
        return Ok(());
    }
    sea_orm::sqlx::query("SELECT pg_advisory_lock(1634755701, 2)")
        .execute(&mut admin)
        .await?;
    let result = async {
        {
            // Roles belong to the whole server; every test's services log
            // in as them, so they are not limited in connections here.
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(server)
                .await?;
            let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
            let options = RoleOptions {
                unlimited_connections: true,
                passwords: Vec::new(),
            };
            roles::ensure_roles(&db, &options).await?;
            db.close().await?;
        }
        if exists(TEMPLATE).fetch_one(&mut admin).await? {
            return Ok(());
        }
        let building = format!("{TEMPLATE}_building");
        admin
            .execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{building}""#
            ))))
            .await?;
        admin
            .execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{building}""#
            ))))
            .await?;
        {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&with_database(server, &building))
                .await?;
            let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
            migration::migrate(&db).await?;
            roles::hand_over(&db).await?;
            roles::grant(&db).await?;
            db.close().await?;
        }
        admin
            .execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(format!(
                r#"ALTER DATABASE "{building}" RENAME TO "{TEMPLATE}""#
            ))))
            .await?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    sea_orm::sqlx::query("SELECT pg_advisory_unlock(1634755701, 2)")
        .execute(&mut admin)
        .await?;
    result
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
