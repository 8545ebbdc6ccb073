//! `bot`: captures every message of the watched Discord channels into PostgreSQL.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // With the `failpoints` feature, FAILPOINTS=name=action;... arms the
    // fault-injection points for the chaos suite.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    // The command line of every process is readable by every local user.
    if service::secret::on_command_line("--discord-token") {
        eprintln!(
            "bot: refusing --discord-token: the command line is visible to every local user; \
             set DISCORD_TOKEN, or DISCORD_TOKEN_FILE to a file only the bot can read"
        );
        return std::process::ExitCode::from(2);
    }
    let mut config = bot::BotConfig::parse();
    service::telemetry::init(config.telemetry.log_format);
    service::secret::warn_if_on_command_line("--database-url");
    if let Err(error) = config.load_secrets() {
        tracing::error!(error = %service::telemetry::error_chain(&error), "bot failed");
        return std::process::ExitCode::from(2);
    }
    let shutdown = service::shutdown::on_signal();
    // The same session settings as the bot's pools.
    let database = config.database.clone();
    let sessions = service::db::PoolSettings::new("aplus-bot", 2);
    match service::pooler::run_checked(&database, &sessions, Box::pin(bot::run(config, shutdown)))
        .await
    {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(error)) => {
            let error = anyhow::Error::from(error);
            tracing::error!(error = %format!("{error:#}"), "bot failed");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(error = %service::telemetry::error_chain(&error), "bot failed");
            std::process::ExitCode::from(2)
        }
    }
}
