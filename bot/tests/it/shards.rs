//! Shard ranges: two `bot` processes, each running half of the gateway
//! shards against one simulator, split the guilds between them. Together
//! they store every message once, and each channel's history is read by one
//! of them only.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, TOKEN, WAIT, init_logs};
use discord_sim::{NewMessage, Sim, SimConfig, shard_of};
use testkit::TestDb;
use testkit::child::Captured;

const SHARDS: u32 = 4;
const CHANNELS_PER_GUILD: usize = 2;
const HISTORY_PER_CHANNEL: usize = 5;
const LIVE_PER_CHANNEL: usize = 5;

/// A bot process, killed if the test ends before stopping it.
struct BotProcess(Option<Captured>);

impl BotProcess {
    fn start(db: &TestDb, sim: &Sim, channels: &[u64], range: &str) -> BotProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bot"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DISCORD_TOKEN", TOKEN)
            .env("DISCORD_API_URL", sim.api_url())
            .env(
                "APLUS_CHANNELS",
                channels
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env("BOT_SHARDS", SHARDS.to_string())
            .env("BOT_SHARD_RANGE", range)
            .env("BOT_HTTP_LISTEN", "127.0.0.1:0")
            .env("BOT_RETRY_MAX", "500ms")
            .env("RUST_LOG", "info")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("DATABASE_URL", &db.url);
        BotProcess(Some(Captured::spawn(command)))
    }

    async fn stop(mut self) -> String {
        let captured = self.0.take().expect("running");
        let (status, logs) = captured.terminate(WAIT).await;
        assert!(status.success(), "the bot exits cleanly: {status}\n{logs}");
        logs
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        if let Some(captured) = &self.0 {
            // Ours and not yet waited for, so the pid is not reused.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(captured.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// History reads (`after=`) per channel, from the simulator's REST log.
fn history_reads(sim: &Sim) -> BTreeMap<u64, usize> {
    let mut reads = BTreeMap::new();
    for call in sim.rest_calls() {
        let Some(rest) = call.path.split("/channels/").nth(1) else {
            continue;
        };
        let Some((channel, "messages")) = rest.split_once('/') else {
            continue;
        };
        if call.method == "GET" && call.query_param("after").is_some() {
            let channel: u64 = channel.parse().expect("a channel id in the path");
            *reads.entry(channel).or_default() += 1;
        }
    }
    reads
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_with_half_the_shards_each_store_every_message_once_and_read_each_history_once()
 {
    init_logs();
    let db = TestDb::new().await;
    let sim = Sim::start(SimConfig {
        recommended_shards: SHARDS,
        max_concurrency: 1,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    // One guild on each shard, two channels each.
    let mut channels = Vec::new();
    let mut shard_of_channel = BTreeMap::new();
    for shard in 0..u64::from(SHARDS) {
        let guild = sim
            .create_guild_with_id((1000 + shard) << 22, &format!("guild-{shard}"))
            .expect("a free guild id");
        assert_eq!(u64::from(shard_of(guild, SHARDS)), (1000 + shard) % 4);
        for i in 0..CHANNELS_PER_GUILD {
            let channel = sim
                .create_channel(guild, &format!("aplus-{shard}-{i}"))
                .expect("the guild exists");
            channels.push(channel);
            shard_of_channel.insert(channel, shard_of(guild, SHARDS));
        }
    }
    // Posted while no bot runs: only a backfill finds these.
    for &channel in &channels {
        for i in 0..HISTORY_PER_CHANNEL {
            sim.post_history(NewMessage::text(channel, format!("before {i}")))
                .expect("post");
        }
    }

    let low = BotProcess::start(&db, &sim, &channels, "0..1");
    let high = BotProcess::start(&db, &sim, &channels, "2..=3");
    // serenity identifies one shard per 5 s in each process.
    sim.wait_for_sessions("four connected shards", WAIT, |sessions| {
        sessions.iter().filter(|s| s.connected).count() == SHARDS as usize
    })
    .await
    .expect("every shard identifies");
    let mut identified: Vec<[u32; 2]> = sim.sessions().iter().map(|s| s.shard).collect();
    identified.sort_unstable();
    assert_eq!(
        identified,
        vec![[0, 4], [1, 4], [2, 4], [3, 4]],
        "each shard once, across both processes"
    );
    let history = (channels.len() * HISTORY_PER_CHANNEL) as i64;
    testkit::eventually(WAIT, "the history of every channel stored", || async {
        (db.scalar("SELECT count(*) FROM messages").await == history).then_some(())
    })
    .await;

    for i in 0..LIVE_PER_CHANNEL {
        for &channel in &channels {
            sim.post(NewMessage::text(channel, format!("live {i}")))
                .expect("post");
        }
    }
    let all = (channels.len() * (HISTORY_PER_CHANNEL + LIVE_PER_CHANNEL)) as i64;
    testkit::eventually(WAIT, "every live message stored", || async {
        (db.scalar("SELECT count(*) FROM messages").await == all).then_some(())
    })
    .await;
    // Give a duplicate write or a late backfill time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let truth = sim.ground_truth();
    let stored: Vec<u64> = common::stored_ids(&db.db).await;
    let expected: Vec<u64> = {
        let mut ids: Vec<u64> = truth.messages().map(|m| m.id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(stored, expected, "every message stored, none twice");
    assert_eq!(
        db.scalar("SELECT count(*) FROM events WHERE kind = 'message.created'")
            .await,
        all,
        "one event per message"
    );

    let reads = history_reads(&sim);
    for &channel in &channels {
        assert_eq!(
            reads.get(&channel).copied().unwrap_or(0),
            1,
            "channel {channel} (shard {}) is backfilled once, by one process; reads: {reads:?}",
            shard_of_channel[&channel]
        );
    }

    let low_logs = low.stop().await;
    let high_logs = high.stop().await;
    for (logs, name) in [(&low_logs, "0..1"), (&high_logs, "2..3")] {
        assert!(
            logs.contains("max_concurrency=1"),
            "the {name} process reads max_concurrency from /gateway/bot:\n{logs}"
        );
    }
    sim.shutdown().await;
}
