//! The bot's flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use secrecy::SecretString;
use service::config::parse_duration;
use service::secret::{SecretError, SecretSource};
use service::{DatabaseArgs, TelemetryArgs};

/// The public Discord API, used unless `DISCORD_API_URL` names a simulator.
pub const DISCORD_API: &str = "https://discord.com";

/// Every setting's default, written once: clap shows and parses these, and
/// [`BotConfig::new`] takes them through clap too.
pub mod defaults {
    /// Alert bots post setups, so their messages are kept.
    pub const KEEP_BOT_MESSAGES: bool = true;
    /// Loopback only: the metrics are for a local scraper.
    pub const HTTP_LISTEN: &str = "127.0.0.1:9101";
    /// Writes held in memory during an outage (a few megabytes).
    pub const BUFFER: usize = 10_000;
    /// Writes queued between the gateway and the writer task.
    pub const WRITE_QUEUE: usize = 5_000;
    /// Longest wait between attempts to reach the database.
    pub const RETRY_MAX: &str = "5s";
    /// How far before the last stored message the first backfill re-reads.
    pub const BACKFILL_OVERLAP: &str = "5m";
    /// Every 10 minutes.
    pub const SWEEP_SCHEDULE: &str = "*/10 * * * *";
    /// How far back each sweep reads.
    pub const SWEEP_WINDOW: &str = "2h";
    /// A channel backfilled this recently from below the window is not swept.
    pub const SWEEP_SKIP_AFTER_BACKFILL: &str = "5m";
    /// The gap ledger's file, relative to the working directory.
    pub const LEDGER_FILE: &str = "aplus-bot-gap-ledger";
    /// The whole stop's deadline, below process managers' own.
    pub const SHUTDOWN_TIMEOUT: &str = "10s";
}

/// Captures every message of the watched Discord channels into PostgreSQL.
#[derive(Debug, Clone, Parser)]
#[command(name = "bot", version, about)]
pub struct BotConfig {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Bot token from the Discord Developer Portal. Kept as a secret: it never
    /// appears in logs or in `Debug` output. Give it in the environment or a
    /// file: the binary refuses it on the command line, where every local
    /// user can read it.
    #[arg(
        long,
        env = "DISCORD_TOKEN",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub discord_token: SecretString,

    /// File holding the bot token, readable only by the bot. Without this or
    /// `DISCORD_TOKEN`, `$CREDENTIALS_DIRECTORY/discord-token` is read
    /// (systemd's `LoadCredential=discord-token:<file>`).
    #[arg(long, env = "DISCORD_TOKEN_FILE", conflicts_with = "discord_token")]
    pub discord_token_file: Option<PathBuf>,

    /// Base URL of a Discord simulator (e.g. `http://127.0.0.1:7878`). Only for
    /// the simulator: serenity's REST proxy is enabled and its rate limiter
    /// turned off, which would be wrong against the real Discord.
    #[arg(long, env = "DISCORD_API_URL")]
    pub discord_api_url: Option<String>,

    /// Channel ids to capture, comma-separated. Messages in threads of these
    /// channels are captured too; everything else is ignored and counted.
    #[arg(
        long = "channels",
        env = "APLUS_CHANNELS",
        value_delimiter = ',',
        required = true,
        value_parser = parse_channel_id
    )]
    pub channels: Vec<u64>,

    /// Keep messages posted by bots and webhooks (alert bots post setups).
    #[arg(
        long,
        env = "APLUS_KEEP_BOT_MESSAGES",
        default_value_t = defaults::KEEP_BOT_MESSAGES,
        action = ArgAction::Set
    )]
    pub keep_bot_messages: bool,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "BOT_HTTP_LISTEN", default_value = defaults::HTTP_LISTEN)]
    pub http_listen: SocketAddr,

    /// Writes held in memory while the database is unreachable. When full,
    /// new messages are dropped from memory and recovered later by backfill.
    #[arg(long = "buffer", env = "BOT_BUFFER", default_value_t = defaults::BUFFER)]
    pub buffer: usize,

    /// Writes queued between the gateway and the writer task. When full,
    /// gateway events wait for a slot (backpressure); nothing is dropped.
    #[arg(long = "write-queue", env = "BOT_WRITE_QUEUE", default_value_t = defaults::WRITE_QUEUE)]
    pub write_queue: usize,

    /// Run only this gateway shard (with `--shards`).
    #[arg(
        long,
        env = "BOT_SHARD",
        requires = "shards",
        conflicts_with = "shard_range"
    )]
    pub shard: Option<u32>,

    /// Run the gateway shards `A..B` of `--shards`, BOTH ENDS INCLUDED, as
    /// serenity's `start_shard_range` and Discord's docs count them: with
    /// `--shards 4`, `0..1` runs shards 0 and 1 and `2..3` runs 2 and 3.
    /// `A..=B` means the same. The process watches, backfills and reads back
    /// only the channels of the guilds its shards own
    /// (`(guild_id >> 22) % shards`).
    #[arg(long, env = "BOT_SHARD_RANGE", requires = "shards", value_parser = parse_shard_range)]
    pub shard_range: Option<ShardRange>,

    /// Total number of gateway shards. Without `--shard` or `--shard-range`,
    /// this process runs all of them.
    #[arg(long, env = "BOT_SHARDS")]
    pub shards: Option<u32>,

    /// Longest wait between attempts to reach the database during an outage.
    #[arg(long, env = "BOT_RETRY_MAX", default_value = defaults::RETRY_MAX, value_parser = parse_duration)]
    pub retry_max: Duration,

    /// At the first backfill of each channel after start, history is read
    /// again from this long before the last stored message: writes that were
    /// in flight when a previous process died can lie just below it.
    #[arg(long, env = "BOT_BACKFILL_OVERLAP", default_value = defaults::BACKFILL_OVERLAP, value_parser = parse_duration)]
    pub backfill_overlap: Duration,

    /// When to sweep recent history for what the gateway never delivered: a
    /// cron line (5 fields from minutes, or 6-7 from seconds), or `off`.
    #[arg(long, env = "BOT_SWEEP_SCHEDULE", default_value = defaults::SWEEP_SCHEDULE,
          value_parser = crate::sweep::SweepSchedule::parse)]
    pub sweep_schedule: crate::sweep::SweepSchedule,

    /// How far back each sweep reads history.
    #[arg(long, env = "BOT_SWEEP_WINDOW", default_value = defaults::SWEEP_WINDOW, value_parser = parse_duration)]
    pub sweep_window: Duration,

    /// A channel whose backfill finished this recently, reading from before
    /// the sweep window, is not swept again.
    #[arg(long, env = "BOT_SWEEP_SKIP_AFTER_BACKFILL", default_value = defaults::SWEEP_SKIP_AFTER_BACKFILL, value_parser = parse_duration)]
    pub sweep_skip_after_backfill: Duration,

    /// File where the gap ledger (what a database outage dropped) is kept
    /// while the database is down, replayed at start; `off` for none.
    #[arg(long, env = "BOT_LEDGER_FILE", default_value = defaults::LEDGER_FILE)]
    pub ledger_file: PathBuf,

    /// On SIGTERM, how long the whole stop may take: closing the gateway,
    /// in-flight writes, the queue and the buffer share this one deadline.
    /// Keep it below supervisord's `stopwaitsecs` and systemd's `TimeoutStopSec`.
    #[arg(long, env = "BOT_SHUTDOWN_TIMEOUT", default_value = defaults::SHUTDOWN_TIMEOUT, value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// `--shard-range A..B`: the first and last shard, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    pub first: u32,
    pub last: u32,
}

/// Which gateway shards this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// One shard, the default for a bot in few guilds.
    Single,
    /// Shard `index` of `total`.
    One { index: u32, total: u32 },
    /// Shards `first` to `last` (both included) of `total`.
    Range { first: u32, last: u32, total: u32 },
    /// All `total` shards in this process.
    All { total: u32 },
}

impl Shards {
    /// How many shards this process runs.
    pub fn count(&self) -> u32 {
        match *self {
            Shards::Single | Shards::One { .. } => 1,
            Shards::Range { first, last, .. } => last - first + 1,
            Shards::All { total } => total,
        }
    }

    /// Whether this process's shards receive the events of a guild: Discord
    /// sends a guild's events to shard `(guild_id >> 22) % total`, and direct
    /// messages (no guild) to shard 0.
    pub fn owns_guild(&self, guild_id: Option<u64>) -> bool {
        let (first, last, total) = match *self {
            Shards::Single | Shards::All { .. } => return true,
            Shards::One { index, total } => (index, index, total),
            Shards::Range { first, last, total } => (first, last, total),
        };
        let shard = guild_id.map_or(0, |id| ((id >> 22) % u64::from(total)) as u32);
        (first..=last).contains(&shard)
    }

    /// The total number of shards of the bot (1 when unsharded).
    pub fn total(&self) -> u32 {
        match *self {
            Shards::Single => 1,
            Shards::One { total, .. } | Shards::Range { total, .. } | Shards::All { total } => {
                total
            }
        }
    }

    /// The shard that receives a guild's events.
    pub fn shard_of(&self, guild_id: Option<u64>) -> u32 {
        guild_id.map_or(0, |id| ((id >> 22) % u64::from(self.total())) as u32)
    }
}

impl BotConfig {
    /// The configuration with the [`defaults`] for everything but the
    /// essentials, for tests: no HTTP port of its own (`127.0.0.1:0`) and no
    /// ledger file, since tests run many bots in one directory.
    pub fn new(database: DatabaseArgs, token: SecretString, channels: Vec<u64>) -> Self {
        // The literal arguments are valid for every flag, so parsing cannot fail.
        let mut config = BotConfig::try_parse_from([
            "bot",
            "--database-url",
            "postgres://unused",
            "--discord-token",
            "unused",
            "--channels",
            "1",
        ])
        .expect("default bot flags parse");
        config.database = database;
        config.discord_token = token;
        config.channels = channels;
        config.http_listen = "127.0.0.1:0".parse().expect("literal address");
        // Tests run many bots in one directory; one that needs the file sets it.
        config.ledger_file = PathBuf::from("off");
        config
    }

    /// Reads the token from its file or systemd credential when it was not
    /// given directly, and checks the database URL can be had the same way,
    /// so a missing secret stops the bot at start with the fix to apply.
    pub fn load_secrets(&mut self) -> Result<(), SecretError> {
        self.discord_token = SecretSource {
            value: &self.discord_token,
            file: self.discord_token_file.as_deref(),
            variable: "DISCORD_TOKEN",
            credential: "discord-token",
        }
        .load()?;
        self.database.database_url = self.database.url()?;
        self.database.database_url_file = None;
        Ok(())
    }

    /// The API base URL: the simulator's, or Discord's.
    pub fn api_base(&self) -> String {
        self.discord_api_url
            .as_deref()
            .unwrap_or(DISCORD_API)
            .trim_end_matches('/')
            .to_owned()
    }

    /// Which shards to run, after checking that the flags agree.
    pub fn shards(&self) -> Result<Shards, String> {
        if let Some(ShardRange { first, last }) = self.shard_range {
            return match self.shards {
                None => Err("--shard-range needs --shards".to_owned()),
                Some(0) => Err("--shards must be at least 1".to_owned()),
                Some(total) if last < total => Ok(Shards::Range { first, last, total }),
                Some(total) => Err(format!(
                    "--shard-range {first}..{last} is out of range for --shards {total} \
                     (shards count from 0 and both ends are included: the last is {})",
                    total - 1
                )),
            };
        }
        match (self.shard, self.shards) {
            (None, None) => Ok(Shards::Single),
            (_, Some(0)) => Err("--shards must be at least 1".to_owned()),
            (None, Some(total)) => Ok(Shards::All { total }),
            (Some(index), Some(total)) if index < total => Ok(Shards::One { index, total }),
            (Some(index), Some(total)) => Err(format!(
                "--shard {index} is out of range for --shards {total} (shards count from 0)"
            )),
            (Some(_), None) => Err("--shard needs --shards".to_owned()),
        }
    }
}

/// `A..B` or `A..=B`: shards A to B, both included.
fn parse_shard_range(text: &str) -> Result<ShardRange, String> {
    let (first, last) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("`{text}` is not a shard range: write A..B (both included)"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{text}` is not a shard range: `{part}` is not a shard number"))
    };
    let (first, last) = (number(first)?, number(last)?);
    if first > last {
        return Err(format!(
            "`{text}`: the first shard is after the last (both ends are included)"
        ));
    }
    Ok(ShardRange { first, last })
}

impl BotConfig {
    /// The gap ledger's file, unless turned off.
    pub fn ledger_path(&self) -> Option<PathBuf> {
        let off = self.ledger_file.as_os_str().is_empty() || self.ledger_file.as_os_str() == "off";
        (!off).then(|| self.ledger_file.clone())
    }
}

/// A channel id: a snowflake that fits PostgreSQL's signed `bigint`.
fn parse_channel_id(text: &str) -> Result<u64, String> {
    let id: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a channel id (a number)"))?;
    if id == 0 || id > i64::MAX as u64 {
        return Err(format!("`{text}` is not a valid Discord snowflake"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn parse(args: &[&str]) -> Result<BotConfig, clap::Error> {
        let mut all = vec![
            "bot",
            "--database-url",
            "postgres://x",
            "--discord-token",
            "canary-token-value",
        ];
        all.extend_from_slice(args);
        BotConfig::try_parse_from(all)
    }

    #[test]
    fn channels_are_a_comma_separated_list_of_snowflakes() {
        let config = parse(&["--channels", "11,22, 33"]).expect("valid");
        assert_eq!(config.channels, vec![11, 22, 33]);
        assert!(parse(&["--channels", "abc"]).is_err());
        assert!(parse(&["--channels", "18446744073709551615"]).is_err());
        assert!(parse(&[]).is_err(), "the allowlist is required");
    }

    #[test]
    fn bot_messages_are_kept_unless_turned_off() {
        assert!(
            parse(&["--channels", "1"])
                .expect("valid")
                .keep_bot_messages
        );
        let off = parse(&["--channels", "1", "--keep-bot-messages", "false"]).expect("valid");
        assert!(!off.keep_bot_messages);
    }

    #[test]
    fn shard_flags_must_agree() {
        let config = parse(&["--channels", "1", "--shard", "1", "--shards", "2"]).expect("valid");
        assert_eq!(config.shards(), Ok(Shards::One { index: 1, total: 2 }));
        let config = parse(&["--channels", "1", "--shard", "2", "--shards", "2"]).expect("parses");
        assert!(config.shards().is_err());
        assert!(parse(&["--channels", "1", "--shard", "0"]).is_err());
        let config = parse(&["--channels", "1", "--shards", "3"]).expect("valid");
        assert_eq!(config.shards(), Ok(Shards::All { total: 3 }));
    }

    #[test]
    fn a_shard_range_includes_both_ends_and_must_fit_the_total() {
        let range = |r: &str, n: &str| {
            parse(&["--channels", "1", "--shard-range", r, "--shards", n]).map(|c| c.shards())
        };
        let zero_one = Shards::Range {
            first: 0,
            last: 1,
            total: 4,
        };
        assert_eq!(range("0..1", "4").expect("parses"), Ok(zero_one));
        assert_eq!(range("0..=1", "4").expect("parses"), Ok(zero_one));
        assert_eq!(zero_one.count(), 2);
        assert!(range("2..4", "4").expect("parses").is_err(), "shard 4 of 4");
        assert!(range("3..2", "4").is_err());
        assert!(range("a..2", "4").is_err());
        assert!(range("1", "4").is_err());
        assert!(parse(&["--channels", "1", "--shard-range", "0..1"]).is_err());
        assert!(
            parse(&[
                "--channels",
                "1",
                "--shard-range",
                "0..1",
                "--shard",
                "0",
                "--shards",
                "4"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_process_owns_the_guilds_of_its_shards_and_shard_0_owns_direct_messages() {
        let low = Shards::Range {
            first: 0,
            last: 1,
            total: 4,
        };
        let high = Shards::Range {
            first: 2,
            last: 3,
            total: 4,
        };
        for shard in 0..4u64 {
            let guild = (1000 + shard) << 22 | 12345;
            let expected = (1000 + shard) % 4 < 2;
            assert_eq!(low.owns_guild(Some(guild)), expected, "guild on {shard}");
            assert_eq!(high.owns_guild(Some(guild)), !expected, "guild on {shard}");
        }
        assert!(low.owns_guild(None));
        assert!(!high.owns_guild(None));
        assert!(Shards::Single.owns_guild(Some(7 << 22)));
        assert!(Shards::All { total: 4 }.owns_guild(Some(7 << 22)));
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let config = parse(&["--channels", "1"]).expect("valid");
        assert_eq!(config.discord_token.expose_secret(), "canary-token-value");
        assert!(!format!("{config:?}").contains("canary-token-value"));
    }
}
