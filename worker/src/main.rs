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
    match worker::run(config, shutdown, |_| {}).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "worker failed");
            std::process::ExitCode::FAILURE
        }
    }
}
