//! A fake Discord on loopback: the REST API and the WebSocket gateway, close enough to the real
//! thing that the unmodified serenity client connects to it, receives messages, resumes after
//! faults and pages history.
//!
//! It serves three uses:
//! - **tests**: a [`Sim`] is started per test on a free port; the test creates guilds and
//!   channels, posts messages live or into history only, injects gateway and REST faults, and
//!   at the end compares what the consumer stored with the [`GroundTruth`] of every message the
//!   simulator emitted;
//! - **the demo**: the `discord-sim` binary posts the real A+ setup fixtures on a timer, so the
//!   pipeline runs without a Discord token;
//! - **load runs**: the same binary or library, driven fast.
//!
//! Point serenity at it with
//! `HttpBuilder::new(token).proxy(sim.api_url()).ratelimiter_disabled(true)` (serenity ignores
//! the proxy while its rate limiter is on) and build the client with that `Http`: awaiting
//! `ClientBuilder` asks `GET /api/v10/gateway` for the gateway URL, so start the simulator
//! first.
//!
//! What is simulated, in Discord's terms:
//! - REST: `/gateway`, `/gateway/bot`, `/users/@me`, `/channels/{id}`,
//!   `/channels/{id}/messages` (history with `around`/`before`/`after`/`limit`, newest first;
//!   `after=X` returns the `limit` messages right after `X`), single messages and posting;
//! - gateway: HELLO, IDENTIFY (intents and shard recorded, guild events routed by
//!   `(guild_id >> 22) % shard_count`), READY and GUILD_CREATE, heartbeats and ACKs, message
//!   create/update/delete with per-session sequence numbers, RESUME with replay, RESUMED;
//! - faults: close codes, dropped and reset connections, op 7, op 9, silent heartbeats, 429s
//!   and 5xx on REST.
//!
//! All payloads come from [`payload`], whose tests parse each one with serenity's own types.
//!
//! # In a test
//!
//! ```text
//! let sim = Sim::start(SimConfig::default()).await?;
//! let guild = sim.create_guild("Trading");
//! let channel = sim.create_channel(guild, "aplus-setups")?;
//! let http = HttpBuilder::new("any-token")
//!     .client(reqwest::Client::builder().no_proxy().build()?)   // ignore HTTP_PROXY
//!     .proxy(sim.api_url())
//!     .ratelimiter_disabled(true)
//!     .build();
//! let mut client = ClientBuilder::new_with_http(http, intents).event_handler(handler).await?;
//! tokio::spawn(async move { client.start().await });
//! sim.wait_for_identifies(1, Duration::from_secs(60)).await?;
//! let id = sim.post(NewMessage::text(channel, "A+ Trade Setups — Thursday May 15"))?;
//! sim.inject(Target::All, GatewayFault::Drop);            // serenity resumes, gets replays
//! let report = sim.ground_truth().compare_channels(stored_ids, &[channel]);
//! assert!(report.is_exact(), "{report:?}");
//! ```
//!
//! serenity runs every event handler call in a task of its own, so handler calls follow the
//! gateway's order only on a current-thread runtime.

mod config;
mod demo;
mod error;
mod faults;
mod gateway;
mod ground_truth;
mod message;
mod net;
pub mod payload;
mod rest;
mod rest_log;
mod session;
mod shared;
mod sim;
pub mod snowflake;
mod state;
mod stats;
mod world;

pub use config::SimConfig;
pub use demo::{APLUS_FIXTURES_JSON, CHATTER, DemoFeed, Fixture, aplus_fixtures};
pub use error::{SimError, WaitTimeout};
pub use faults::{GatewayFault, RestFault, SilentLoss, Target};
pub use ground_truth::{Comparison, EmittedMessage, GroundTruth};
pub use message::{Author, Forward, NewMessage};
pub use rest_log::RestCall;
pub use session::{SessionInfo, intents, shard_of};
pub use sim::Sim;
pub use stats::SimStats;
pub use world::{ChannelInfo, ChannelKind, GuildInfo};
