//! `migration`: apply, roll back, inspect or rebuild the schema.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
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
    Up,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service::telemetry::init(cli.telemetry.log_format);
    let mut settings = PoolSettings::new("aplus-migration", 2);
    // Index builds on a large table can take longer than a service statement.
    settings.statement_timeout = None;
    let db = connect(&cli.database, &settings).context("reading the database url")?;
    match cli.command {
        Command::Up => migration::migrate(&db)
            .await
            .context("applying migrations")?,
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
    }
    Ok(())
}
