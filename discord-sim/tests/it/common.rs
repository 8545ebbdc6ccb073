//! A real serenity client wired to a simulator, reporting what its event handler sees.
//!
//! serenity runs each event handler call in its own task, so the order in which handlers run
//! follows the gateway's order only on a current-thread runtime; the tests use
//! `#[tokio::test]`'s default current-thread runtime for that reason.

use std::sync::Arc;
use std::time::Duration;

use discord_sim::Sim;
use serenity::all::{
    ChannelId, ClientBuilder, Context, EventHandler, GatewayIntents, GuildId, Http, HttpBuilder,
    Message, MessageId, MessageUpdateEvent, Ready, ResumedEvent, ShardManager,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Generous: the machine running the tests may be busy.
pub const WAIT: Duration = Duration::from_secs(60);

/// The intents a capture bot asks for.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// An `Http` that talks to the simulator: proxy set, rate limiter off (serenity ignores the
/// proxy otherwise), and a reqwest client that ignores `HTTP_PROXY` so loopback traffic never
/// goes through a proxy of the environment.
pub fn http(sim: &Sim, token: &str) -> Http {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client without TLS roots or proxies always builds");
    HttpBuilder::new(token)
        .client(client)
        .proxy(sim.api_url())
        .ratelimiter_disabled(true)
        .build()
}

/// What the handler saw.
// Every field is recorded for the failure messages (`{seen:?}`), though
// not every test matches on each one.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub enum Seen {
    Ready {
        session_id: String,
        shard: u32,
    },
    Resumed {
        shard: u32,
    },
    Message {
        message: Box<Message>,
        shard: u32,
    },
    Update(Box<MessageUpdateEvent>),
    Delete {
        channel_id: ChannelId,
        message_id: MessageId,
        guild_id: Option<GuildId>,
    },
}

struct Forwarder(mpsc::UnboundedSender<Seen>);

#[serenity::async_trait]
impl EventHandler for Forwarder {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.0.send(Seen::Ready {
            session_id: ready.session_id,
            shard: ctx.shard_id.0,
        });
    }

    async fn resume(&self, ctx: Context, _: ResumedEvent) {
        let _ = self.0.send(Seen::Resumed {
            shard: ctx.shard_id.0,
        });
    }

    async fn message(&self, ctx: Context, message: Message) {
        let _ = self.0.send(Seen::Message {
            message: Box::new(message),
            shard: ctx.shard_id.0,
        });
    }

    async fn message_update(
        &self,
        _: Context,
        _: Option<Message>,
        _: Option<Message>,
        event: MessageUpdateEvent,
    ) {
        let _ = self.0.send(Seen::Update(Box::new(event)));
    }

    async fn message_delete(
        &self,
        _: Context,
        channel_id: ChannelId,
        message_id: MessageId,
        guild_id: Option<GuildId>,
    ) {
        let _ = self.0.send(Seen::Delete {
            channel_id,
            message_id,
            guild_id,
        });
    }
}

/// A running serenity client.
pub struct Bot {
    pub events: mpsc::UnboundedReceiver<Seen>,
    pub shard_manager: Arc<ShardManager>,
    pub http: Arc<Http>,
    pub run: JoinHandle<serenity::Result<()>>,
}

/// Sends serenity's and the simulator's logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Starts a client with `token` and `intents`; `shards` = `Some(n)` runs shards 0..n.
pub async fn start_bot_with(
    sim: &Sim,
    token: &str,
    intents: GatewayIntents,
    shards: Option<u32>,
) -> Bot {
    init_logs();
    let (tx, events) = mpsc::unbounded_channel();
    let mut client = ClientBuilder::new_with_http(http(sim, token), intents)
        .event_handler(Forwarder(tx))
        .await
        .expect("client builds");
    let shard_manager = Arc::clone(&client.shard_manager);
    let http = Arc::clone(&client.http);
    let run = tokio::spawn(async move {
        match shards {
            None => Box::pin(client.start()).await,
            Some(count) => Box::pin(client.start_shards(count)).await,
        }
    });
    Bot {
        events,
        shard_manager,
        http,
        run,
    }
}

/// Starts a capture-bot client with one shard.
pub async fn start_bot(sim: &Sim) -> Bot {
    start_bot_with(sim, "test-token", intents(), None).await
}

impl Bot {
    /// The next event, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event arrives in time")
            .expect("the handler is alive")
    }

    /// Skips events until READY; returns its session id.
    pub async fn ready(&mut self) -> String {
        loop {
            if let Seen::Ready { session_id, .. } = self.next().await {
                return session_id;
            }
        }
    }

    /// Skips events until a message arrives.
    pub async fn message(&mut self) -> (Message, u32) {
        loop {
            if let Seen::Message { message, shard } = self.next().await {
                return (*message, shard);
            }
        }
    }

    /// Collects events for `quiet` after the last one (to check nothing else arrives).
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout(quiet, self.events.recv()).await {
            seen.push(event);
        }
        seen
    }

    /// Shuts the client down and waits for `start` to return.
    pub async fn stop(self) {
        self.shard_manager.shutdown_all().await;
        let _ = tokio::time::timeout(WAIT, self.run).await;
    }
}
