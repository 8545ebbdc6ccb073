//! `worker`: consumes outbox events and parses A+ setups.

use clap::Parser as _;
use worker::WorkerConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // With the `failpoints` feature, FAILPOINTS=name=action;... arms the
    // fault-injection points for the chaos suite.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = WorkerConfig::parse();
    service::telemetry::init(config.telemetry.log_format);
    service::secret::warn_if_on_command_line("--database-url");
    let shutdown = service::shutdown::on_signal();
    // The same session settings as the worker's pool: the lease among them.
    let database = config.database.clone();
    let mut sessions = service::db::PoolSettings::new("aplus-worker", 2);
    sessions.idle_in_transaction_timeout = Some(config.lease);
    let worker = Box::pin(worker::run(config, shutdown, |_| {}));
    match service::pooler::run_checked(&database, &sessions, worker).await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(error)) => {
            tracing::error!(error = %format!("{error:#}"), "worker failed");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(error = %service::telemetry::error_chain(&error), "worker failed");
            std::process::ExitCode::from(2)
        }
    }
}
