//! `reconciler`: the repair service and the operators' commands.
//!
//! Exit status: 0 success (or healthy); 1 needs attention (degraded, a failed
//! pass step, a worker that did not reconnect); 2 failure (unhealthy, or an
//! error such as an unreachable database), printed with its causes; 64 a
//! usage error (never 2, which means unhealthy); 78 a configuration that
//! cannot work (no `DATABASE_URL`, one that does not parse), which process
//! managers do not restart.

mod args;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use args::{Cli, Command, RunArgs};
use clap::Parser as _;
use reconciler::tools::audit::AuditOptions;
use reconciler::tools::diagnose::{Diagnosis, Thresholds};
use reconciler::tools::recover::{RecoverOptions, Target};
use reconciler::{Horizons, PassOutcome, Reconciler, ServiceConfig};
use sea_orm::DatabaseConnection;
use service::db::{PoolSettings, connect};
use service::{DatabaseArgs, TelemetryArgs};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(Cli { command: Some(c) }) => c,
        // No command: the service, with its flags from the environment.
        Ok(Cli { command: None }) => Command::Run(RunArgs::from_env()),
        Err(e) => service::exit::exit_for(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reconciler: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let error: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("reconciler: {}", reconciler::chain(error));
            match service::exit::status_of(error) {
                service::exit::CONFIG => ExitCode::from(service::exit::CONFIG),
                _ => ExitCode::from(2),
            }
        }
    }
}

/// Logs go to stderr. The service always logs; one-shot commands only when
/// `RUST_LOG` asks, so their reports stay the only output.
fn init_logs(telemetry: &TelemetryArgs, always: bool) {
    if always || std::env::var_os("RUST_LOG").is_some() {
        service::telemetry::init(telemetry.log_format);
        service::secret::warn_if_on_command_line("--database-url");
    }
}

fn pool(
    database: &DatabaseArgs,
    name: &str,
    connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    connect(database, &PoolSettings::new(name, connections)).context("reading the database url")
}

/// Why a single direct connection fails, if it does.
async fn connect_error(database: &DatabaseArgs) -> Option<String> {
    use sea_orm::sqlx::ConnectOptions as _;
    let settings = PoolSettings::new("aplus-reconciler-diagnose", 1);
    let options = match service::db::connect_options(database, &settings) {
        Ok(o) => o,
        Err(e) => return Some(reconciler::chain(&e)),
    };
    match tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = sea_orm::sqlx::Connection::close(conn).await;
            None
        }
        Ok(Err(e)) => Some(reconciler::chain(&e)),
        Err(_) => Some("no answer within 5 s".to_owned()),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("writing json")?
    );
    Ok(())
}

async fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => {
            init_logs(&args.common.telemetry, true);
            let db = pool(
                &args.common.database,
                "aplus-reconciler",
                args.common.database.database_max_connections,
            )?;
            let config = ServiceConfig {
                pass: args.pass.config()?,
                schedule: args.schedule,
                http_listen: args.http_listen,
                migrate: args.migrate,
                metrics_listen: args.metrics_listen,
                thresholds: Thresholds {
                    grace: args.pass.orphan_grace,
                    listener_stale_after: args.pass.listeners.listener_stale_after,
                    ..Thresholds::default()
                },
            };
            let reconciler = Reconciler::build(db, config).context("checking the settings")?;
            let shutdown = service::shutdown::on_signal();
            // The same session settings as the service's pool.
            let sessions = PoolSettings::new("aplus-reconciler", 2);
            service::pooler::run_checked(
                &args.common.database,
                &sessions,
                Box::pin(reconciler.run(shutdown)),
            )
            .await?
            .context("running the reconciler")?;
            Ok(0)
        }
        Command::Once(args) => {
            init_logs(&args.common.telemetry, false);
            let config = args.pass.config()?;
            let db = pool(&args.common.database, "aplus-reconciler-once", 4)?;
            let horizons = Horizons::from_database(&db, &config)
                .await
                .context("reading the database clock")?;
            let outcome = reconciler::run_once(&db, &config, horizons)
                .await
                .context("running a pass")?;
            if args.json {
                print_json(&outcome)?;
            } else {
                print!("{}", outcome.render());
            }
            Ok(match &outcome {
                PassOutcome::Completed(r) if !r.errors.is_empty() => 1,
                _ => 0,
            })
        }
        Command::Diagnose(args) => {
            init_logs(&args.common.telemetry, false);
            let thresholds = Thresholds {
                grace: args.grace,
                listener_stale_after: args.listeners.listener_stale_after,
                ..Thresholds::default()
            };
            let mut diagnosis = match pool(&args.common.database, "aplus-reconciler-diagnose", 2) {
                Ok(db) => reconciler::tools::dashboard::diagnose(&db, &thresholds).await,
                Err(e) => {
                    let error: &(dyn std::error::Error + 'static) = e.as_ref();
                    Diagnosis::unreachable(reconciler::chain(error))
                }
            };
            if diagnosis.snapshot.is_none() {
                // A pool only says it timed out; one direct attempt says why.
                if let Some(cause) = connect_error(&args.common.database).await {
                    diagnosis.error = Some(cause);
                }
            }
            if args.json {
                print_json(&diagnosis)?;
            } else {
                print!("{}", diagnosis.render());
            }
            Ok(diagnosis.exit_code)
        }
        Command::Audit(args) => {
            init_logs(&args.common.telemetry, false);
            let db = pool(&args.common.database, "aplus-reconciler-audit", 2)?;
            let options = AuditOptions {
                since: args.since,
                top: args.top.max(1),
                grace: args.grace,
            };
            let report = reconciler::tools::audit::run(&db, &options)
                .await
                .context("auditing events")?;
            if args.json {
                print_json(&report)?;
            } else {
                print!("{}", report.render());
            }
            Ok(0)
        }
        Command::Recover(args) => {
            init_logs(&args.common.telemetry, false);
            let db = pool(&args.common.database, "aplus-reconciler-recover", 2)?;
            if args.stale_listeners {
                let report = reconciler::listeners::recover(
                    &db,
                    args.listeners.listener_stale_after,
                    args.dry_run,
                )
                .await
                .context("ending stale listeners")?;
                if args.json {
                    print_json(&report)?;
                } else {
                    print!("{}", report.render());
                }
                return Ok(0);
            }
            let options = RecoverOptions {
                target: if args.dead {
                    Target::Dead
                } else {
                    Target::Orphans
                },
                since: args.since,
                dry_run: args.dry_run,
                limit: args.limit.max(1),
                grace: args.grace,
            };
            let report = reconciler::tools::recover::run(&db, &options)
                .await
                .context("recovering events")?;
            if args.json {
                print_json(&report)?;
            } else {
                print!("{}", report.render());
            }
            Ok(0)
        }
        Command::Relisten(args) => {
            init_logs(&args.common.telemetry, false);
            let db = pool(&args.common.database, "aplus-reconciler-relisten", 2)?;
            let report = reconciler::tools::relisten::run(&db, args.wait)
                .await
                .context("asking workers to relisten")?;
            print!("{}", report.render());
            Ok(if report.before.is_empty() || !report.all_reconnected() {
                1
            } else {
                0
            })
        }
    }
}
