//! The serenity client: how it reaches Discord (or the simulator), which
//! intents it asks for, and whether its shards are connected.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use serenity::Client;
use serenity::all::{ClientBuilder, ConnectionStage, GatewayIntents, HttpBuilder, ShardManager};

use crate::config::Shards;
use crate::error::BotError;
use crate::handler::Handler;
use crate::rest;

/// What the bot asks the gateway for: guild and direct messages, with their content.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// Builds the serenity client. With `simulator` set, REST goes through
/// serenity's proxy setting to it and the rate limiter is off (serenity
/// ignores the proxy while its rate limiter is on).
pub async fn client(
    token: &SecretString,
    api_base: &str,
    simulator: bool,
    handler: Handler,
) -> Result<Client, BotError> {
    let reqwest = rest::http_client(api_base).map_err(|e| BotError::Config(e.to_string()))?;
    let mut http = HttpBuilder::new(token.expose_secret()).client(reqwest);
    if simulator {
        http = http.proxy(api_base).ratelimiter_disabled(true);
    }
    ClientBuilder::new_with_http(http.build(), intents())
        .raw_event_handler(handler)
        .await
        .map_err(|e| BotError::Gateway(Box::new(e)))
}

/// Runs the shards this process is configured for until they stop.
pub async fn start(client: &mut Client, shards: Shards) -> serenity::Result<()> {
    match shards {
        Shards::Single => client.start().await,
        Shards::One { index, total } => client.start_shard(index, total).await,
        // serenity's range includes its end, as `Shards::Range` does.
        Shards::Range { first, last, total } => client.start_shard_range(first..last, total).await,
        Shards::All { total } => client.start_shards(total).await,
    }
}

/// Shards connected now, and shards running.
pub async fn connected_shards(manager: &Arc<ShardManager>) -> (usize, usize) {
    let runners = manager.runners.lock().await;
    let connected = runners
        .values()
        .filter(|info| info.stage == ConnectionStage::Connected)
        .count();
    (connected, runners.len())
}
