//! The bot's errors, by what the operator or the caller does about them.

use std::net::SocketAddr;

/// Where to change a bot's token and intents.
pub const DEVELOPER_PORTAL: &str = "https://discord.com/developers/applications";

/// Why the bot stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The flags do not make sense together.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `DATABASE_URL` does not parse.
    #[error("reading the database url")]
    DatabaseUrl(#[source] sea_orm::sqlx::Error),
    /// The health and metrics address cannot be bound.
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Discord closed the gateway with a code that no retry can fix; `fix`
    /// tells the operator what to change.
    #[error("Discord refused the gateway session (close code {code}, {what}): {fix}")]
    FatalClose {
        code: u16,
        what: &'static str,
        fix: String,
    },
    /// The gateway client failed for another reason.
    #[error("the Discord gateway client failed")]
    Gateway(#[source] Box<serenity::Error>),
    /// The gateway client stopped although no shutdown was asked for.
    #[error("the Discord gateway client stopped unexpectedly")]
    GatewayStopped,
}

impl BotError {
    /// Maps serenity's fatal gateway errors (close codes 4004, 4013, 4014) to
    /// what the operator must change in the Developer Portal.
    pub fn from_gateway(error: serenity::Error) -> Self {
        use serenity::gateway::GatewayError;
        match error {
            serenity::Error::Gateway(GatewayError::InvalidAuthentication) => BotError::FatalClose {
                code: 4004,
                what: "authentication failed",
                fix: format!(
                    "the bot token was rejected; reset it under Bot → Token at {DEVELOPER_PORTAL} \
                     and set DISCORD_TOKEN to the new value"
                ),
            },
            serenity::Error::Gateway(GatewayError::InvalidGatewayIntents) => BotError::FatalClose {
                code: 4013,
                what: "invalid intents",
                fix: format!(
                    "the requested intents are not valid for this application; check the \
                     application's settings at {DEVELOPER_PORTAL} (this bot requests \
                     GUILD_MESSAGES, DIRECT_MESSAGES and MESSAGE_CONTENT)"
                ),
            },
            serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => {
                BotError::FatalClose {
                    code: 4014,
                    what: "disallowed intents",
                    fix: format!(
                        "enable the Message Content privileged intent for this application at \
                         {DEVELOPER_PORTAL} (Bot → Privileged Gateway Intents → Message Content \
                         Intent); without it Discord sends messages with empty content"
                    ),
                }
            }
            other => BotError::Gateway(Box::new(other)),
        }
    }
}

pub use service::telemetry::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disallowed_intent_close_tells_the_operator_where_to_enable_it() {
        let error = BotError::from_gateway(serenity::Error::Gateway(
            serenity::gateway::GatewayError::DisallowedGatewayIntents,
        ));
        let text = error.to_string();
        assert!(text.contains("4014"), "{text}");
        assert!(
            text.contains("enable the Message Content privileged intent"),
            "{text}"
        );
        assert!(text.contains(DEVELOPER_PORTAL), "{text}");
    }
}
