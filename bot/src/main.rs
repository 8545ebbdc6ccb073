//! `bot`: captures every message of the watched Discord channels into PostgreSQL.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // With the `failpoints` feature, FAILPOINTS=name=action;... arms the
    // fault-injection points for the chaos suite.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = bot::BotConfig::parse();
    service::telemetry::init(config.telemetry.log_format);
    let shutdown = service::shutdown::on_signal();
    match bot::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let error = anyhow::Error::from(error);
            tracing::error!(error = %format!("{error:#}"), "bot failed");
            std::process::ExitCode::FAILURE
        }
    }
}
