//! `migration`: apply, roll back, inspect or rebuild the schema.

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use migration::{Migrator, MigratorTrait, roles};
use service::db::{PoolSettings, connect};
use service::{DatabaseArgs, TelemetryArgs};

#[derive(Debug, Parser)]
#[command(
    name = "migration",
    version,
    about = "Manage the pipeline's database schema"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply every pending migration (waits for any other migrating process).
    Up {
        /// Keep retrying, every few seconds, while the database does not
        /// answer, for up to this long (`15min`): a remote database may come
        /// up after this host. Errors other than an unreachable server fail
        /// at once.
        #[arg(long, value_name = "DURATION", value_parser = service::config::parse_duration)]
        wait_for_database: Option<std::time::Duration>,
    },
    /// Roll back the most recent migrations.
    Down {
        /// How many migrations to roll back.
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table and view, then apply every migration. Destroys data.
    Fresh,
    /// Create or correct the roles aplus_owner, aplus_bot, aplus_worker and
    /// aplus_reconciler, make aplus_owner the owner of the database and its
    /// objects, and grant each service its rights. Idempotent; needs an
    /// administrator (a superuser, or CREATEROLE and the database's owner).
    Roles {
        /// Leave CONNECTION LIMIT unlimited (test servers shared by many runs).
        #[arg(long)]
        unlimited_connections: bool,
        /// A directory holding a file per role, named after it (`aplus_bot`),
        /// with its password; roles without a file keep theirs.
        #[arg(long, value_name = "DIR")]
        password_dir: Option<std::path::PathBuf>,
    },
}

/// Exit status: 0 done; 1 failed; 64 a usage error; 78 a configuration that
/// cannot work (no `DATABASE_URL`, one that does not parse).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = service::exit::parse_args();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("migration: {error:#}");
            std::process::ExitCode::from(service::exit::status_of(error.as_ref()))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    service::telemetry::init(cli.telemetry.log_format);
    let mut settings = PoolSettings::new("aplus-migration", 2);
    // Index builds on a large table can take longer than a service statement.
    settings.statement_timeout = None;
    let db = connect(&cli.database, &settings).context("reading the database url")?;
    match cli.command {
        Command::Up { wait_for_database } => {
            let deadline = tokio::time::Instant::now() + wait_for_database.unwrap_or_default();
            loop {
                match migration::migrate(&db).await {
                    Ok(()) => break,
                    Err(e) if unreachable(&e) && tokio::time::Instant::now() < deadline => {
                        tracing::warn!(error = %e, "the database does not answer yet; retrying in 3 s");
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    }
                    Err(e) => return Err(e).context("applying migrations"),
                }
            }
        }
        Command::Down { steps } => Migrator::down(&db, Some(steps))
            .await
            .context("rolling back migrations")?,
        Command::Status => {
            for m in Migrator::get_migration_with_status(&db)
                .await
                .context("reading migration status")?
            {
                println!("{:<8} {}", m.status().to_string(), m.name());
            }
        }
        Command::Fresh => Migrator::fresh(&db)
            .await
            .context("rebuilding the schema")?,
        Command::Roles {
            unlimited_connections,
            password_dir,
        } => {
            let mut options = roles::RoleOptions {
                unlimited_connections,
                passwords: Vec::new(),
            };
            if let Some(dir) = password_dir {
                for role in roles::Role::ALL {
                    let file = dir.join(role.name());
                    match std::fs::read_to_string(&file) {
                        Ok(text) => options.passwords.push((role, text.trim().to_owned())),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("reading {}", file.display()));
                        }
                    }
                }
            }
            roles::ensure_roles(&db, &options)
                .await
                .context("creating the roles")?;
            roles::hand_over(&db)
                .await
                .context("handing the database over to aplus_owner")?;
            roles::grant(&db).await.context("granting rights")?;
            println!(
                "roles aplus_owner, aplus_bot, aplus_worker, aplus_reconciler ready; run `migration up` as aplus_owner"
            );
        }
    }
    Ok(())
}

/// True when `error` says the server could not be reached (refused, reset,
/// timed out, starting up), as opposed to a refusal or a failed migration.
fn unreachable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match error {
        DbErr::Conn(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => e,
        DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Custom(text) => return text.contains("acquiring the migration lock connection"),
        _ => return false,
    };
    match sqlx.as_ref() {
        sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::PoolTimedOut => true,
        // 57P03: the server is starting up or shutting down.
        sea_orm::sqlx::Error::Database(d) => d.code().as_deref() == Some("57P03"),
        _ => false,
    }
}
