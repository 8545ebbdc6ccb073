//! [`Sim`]: starting the simulator and scripting it.
//!
//! The scripting methods are split by what they act on: [`world`] (guilds and channels),
//! [`messages`], [`faults`], and [`observe`] (counters, sessions, ground truth, waiting).

mod faults;
mod messages;
mod observe;
mod world;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use crate::config::SimConfig;
use crate::message::Author;
use crate::net::{PeerInfo, SimListener};
use crate::rest;
use crate::shared::Shared;
use crate::state::{State, StateSettings};

/// How long [`Sim::shutdown`] waits for the HTTP server to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running fake Discord: REST under [`Sim::api_url`] and the gateway at
/// [`Sim::gateway_url`], on one port.
///
/// Cheap to clone; all clones drive the same simulator. It stops on [`Sim::shutdown`], or when
/// the last clone is dropped.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use discord_sim::{NewMessage, Sim, SimConfig};
/// let sim = Sim::start(SimConfig::default()).await?;
/// let guild = sim.create_guild("Trading");
/// let channel = sim.create_channel(guild, "aplus-setups").expect("guild exists");
/// // serenity: HttpBuilder::new("any-token").proxy(sim.api_url()).ratelimiter_disabled(true)
/// sim.post(NewMessage::text(channel, "A+ Trade Setups")).expect("channel exists");
/// sim.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Sim {
    shared: Arc<Shared>,
    /// Cancels the server when the last handle goes away.
    _stop_on_drop: Arc<DropGuard>,
}

impl Sim {
    /// Binds `config.listen` and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> io::Result<Sim> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let host = match &config.advertised_host {
            Some(host) => format!("{host}:{}", local_addr.port()),
            None => {
                let ip = match local_addr.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                SocketAddr::new(ip, local_addr.port()).to_string()
            }
        };
        let api_url = format!("http://{host}");
        let gateway_url = format!("ws://{host}");
        let state = State::new(StateSettings {
            bot: config.bot.clone(),
            application_id: config.application_id,
            gateway_url: gateway_url.clone(),
            bad_token: config.bad_token.clone(),
            disallowed_intents: config.disallowed_intents,
            resume_window: config.resume_window,
            replay_buffer: config.replay_buffer,
            rest_log_limit: config.rest_log_limit,
        });
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared::new(
            &config,
            state,
            cancel.clone(),
            local_addr,
            api_url,
            gateway_url,
        ));
        let app = rest::router(Arc::clone(&shared));
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                SimListener::new(listener),
                app.into_make_service_with_connect_info::<PeerInfo>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        });
        shared.set_server(server);
        info!(
            api_url = shared.api_url,
            gateway_url = shared.gateway_url,
            "discord-sim listening"
        );
        Ok(Sim {
            shared,
            _stop_on_drop: Arc::new(cancel.drop_guard()),
        })
    }

    /// Base URL for serenity's `HttpBuilder::proxy` (e.g. `http://127.0.0.1:40123`).
    #[must_use]
    pub fn api_url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// The gateway URL that `GET /api/v10/gateway` hands out (e.g. `ws://127.0.0.1:40123`).
    #[must_use]
    pub fn gateway_url(&self) -> String {
        self.shared.gateway_url.clone()
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The bot's own user.
    #[must_use]
    pub fn bot_user(&self) -> Author {
        self.shared.read(|s| s.settings.bot.clone())
    }

    /// Stops serving: open gateway connections are dropped and the HTTP server shuts down.
    /// Stop clients first, or they will keep trying to reconnect.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let server = self.shared.take_server();
        if let Some(server) = server {
            match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
                Ok(Ok(Ok(()))) => info!("discord-sim stopped"),
                Ok(Ok(Err(error))) => warn!(%error, "discord-sim server failed"),
                Ok(Err(error)) => warn!(%error, "discord-sim server task failed"),
                Err(_) => warn!("discord-sim server did not stop in time"),
            }
        }
    }
}
