//! `bot`: captures every message of the watched Discord channels into PostgreSQL.
//!
//! Exit status (`service::exit`): 0 stopped as asked; 1 failed, a restart may
//! help; 64 a usage error (`--discord-token` included); 78 a configuration
//! that cannot work (no token, a URL that does not parse, Discord's close
//! codes 4004, 4013 and 4014), which process managers do not restart.

use service::exit::{CONFIG, USAGE};

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
        return std::process::ExitCode::from(USAGE);
    }
    let mut config: bot::BotConfig = service::exit::parse_args();
    service::telemetry::init(config.telemetry.log_format);
    service::secret::warn_if_on_command_line("--database-url");
    if let Err(error) = config.load_secrets() {
        tracing::error!(error = %service::telemetry::error_chain(&error), "bot failed");
        return std::process::ExitCode::from(CONFIG);
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
            let status = match &error {
                bot::BotError::FatalClose { .. }
                | bot::BotError::Config(_)
                | bot::BotError::DatabaseUrl(_) => CONFIG,
                _ => 1,
            };
            let error = anyhow::Error::from(error);
            tracing::error!(error = %format!("{error:#}"), exit_status = status, "bot failed");
            std::process::ExitCode::from(status)
        }
        Err(error) => {
            tracing::error!(error = %service::telemetry::error_chain(&error), "bot failed");
            std::process::ExitCode::from(CONFIG)
        }
    }
}
