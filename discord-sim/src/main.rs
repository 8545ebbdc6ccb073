//! `discord-sim`: runs the fake Discord on its own, for the demo and for load runs.
//!
//! ```text
//! discord-sim --listen 127.0.0.1:7878 --channels 1372012942848954388 --demo-interval 10 --history 50
//! ```
//! Point the bot at it with `DISCORD_API_URL=http://127.0.0.1:7878` and any token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::Parser;
use discord_sim::{DemoFeed, Sim, SimConfig, aplus_fixtures};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// A fake Discord (REST + gateway) for demos and load runs.
#[derive(Debug, Parser)]
#[command(name = "discord-sim", version, about)]
struct Args {
    /// Address to listen on (REST under /api/v10, gateway at /).
    #[arg(long, env = "DISCORD_SIM_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,

    /// Channel ids to create in the demo guild, comma-separated.
    #[arg(
        long,
        env = "APLUS_CHANNELS",
        value_delimiter = ',',
        default_value = "1372012942848954388"
    )]
    channels: Vec<u64>,

    /// Id of the demo guild.
    #[arg(
        long,
        env = "DISCORD_SIM_GUILD_ID",
        default_value_t = 1_094_357_612_345_678_901
    )]
    guild_id: u64,

    /// Post an A+ message (and a chatter line) every this many seconds.
    #[arg(long, env = "DISCORD_SIM_DEMO_INTERVAL")]
    demo_interval: Option<f64>,

    /// Pre-fill history with this many messages (as if posted while the bot was away).
    #[arg(long, env = "DISCORD_SIM_HISTORY", default_value_t = 0)]
    history: usize,

    /// Heartbeat interval sent in HELLO, in milliseconds.
    #[arg(long, env = "DISCORD_SIM_HEARTBEAT_MS", default_value_t = 41_250)]
    heartbeat_ms: u64,

    /// Shard count recommended by /gateway/bot.
    #[arg(long, env = "DISCORD_SIM_SHARDS", default_value_t = 1)]
    shards: u32,

    /// `max_concurrency` reported by /gateway/bot (shards that may identify per 5 s).
    #[arg(long, env = "DISCORD_SIM_MAX_CONCURRENCY", default_value_t = 1)]
    max_concurrency: u32,

    /// A token to refuse (REST 401, gateway close 4004).
    #[arg(long, env = "DISCORD_SIM_BAD_TOKEN")]
    bad_token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // Colour codes only help on a terminal; in container logs they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let config = SimConfig {
        listen: args.listen,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms.max(1)),
        recommended_shards: args.shards.max(1),
        max_concurrency: args.max_concurrency.max(1),
        bad_token: args.bad_token.clone(),
        ..SimConfig::default()
    };
    let sim = Sim::start(config)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    sim.create_guild_with_id(args.guild_id, "A+ Demo")
        .context("creating the demo guild")?;
    for (i, channel) in args.channels.iter().enumerate() {
        sim.create_channel_with_id(args.guild_id, *channel, &format!("aplus-setups-{i}"))
            .with_context(|| format!("creating channel {channel}"))?;
    }
    let fixtures = aplus_fixtures().context("parsing the embedded A+ fixtures")?;
    let mut feed = DemoFeed::new(fixtures, args.channels.clone());
    if args.history > 0 {
        for message in feed.history(args.history, Utc::now()) {
            sim.post_history(message).context("pre-filling history")?;
        }
        info!(count = args.history, "history pre-filled");
    }

    info!(
        api_url = sim.api_url(),
        gateway_url = sim.gateway_url(),
        guild_id = args.guild_id,
        channels = ?args.channels,
        "ready; point the bot at api_url with any token"
    );

    let demo = args
        .demo_interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|seconds| {
            let sim = sim.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_secs_f64(seconds));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let Some((aplus, chatter)) = feed.next_pair() else {
                        break;
                    };
                    for message in [aplus, chatter] {
                        let channel_id = message.channel_id;
                        match sim.post(message) {
                            Ok(id) => info!(message_id = id, channel_id, "demo message posted"),
                            Err(error) => warn!(%error, "demo post failed"),
                        }
                    }
                }
            })
        });

    shutdown_signal().await;
    info!("shutting down");
    if let Some(demo) = demo {
        demo.abort();
    }
    sim.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
