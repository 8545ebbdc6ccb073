//! `worker`: consumes outbox events and parses A+ setups.
//!
//! Exit status (`service::exit`): 0 stopped as asked; 1 failed, a restart may
//! help; 64 a usage error; 78 a configuration that cannot work (no
//! `DATABASE_URL`, one that does not parse), which process managers do not restart.

use worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // With the `failpoints` feature, FAILPOINTS=name=action;... arms the
    // fault-injection points for the chaos suite.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config: WorkerConfig = service::exit::parse_args();
    service::telemetry::init(config.telemetry.log_format);
    service::secret::warn_if_on_command_line("--database-url");
    let shutdown = service::shutdown::on_signal();
    // The same session settings as the worker's pool: the lease among them.
    let database = config.database.clone();
    let sessions = config.pool_settings("aplus-worker".to_owned(), 2);
    let worker = Box::pin(async move { Worker::build(config)?.run(shutdown).await });
    match service::pooler::run_checked(&database, &sessions, worker).await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(error)) => {
            let status = service::exit::status_of(error.as_ref());
            tracing::error!(error = %format!("{error:#}"), exit_status = status, "worker failed");
            std::process::ExitCode::from(status)
        }
        Err(error) => {
            tracing::error!(error = %service::telemetry::error_chain(&error), "worker failed");
            std::process::ExitCode::from(service::exit::CONFIG)
        }
    }
}
