//! The yardsticks: what this server can do with the bot's own write, measured
//! with `pgbench` in the same run as the pipeline, so the pipeline's figures
//! can be read as a fraction of them.
//!
//! - **single**: exactly the bot's write at commit 41f0390, one message per
//!   transaction: `BEGIN`; the advisory lock on the id; the `INSERT messages
//!   ... RETURNING` CTE feeding `INSERT events`; `COMMIT`; then `pg_notify`
//!   after the commit. Two departures, neither measurable: the event id is
//!   made by the server (`gen_random_uuid()`) rather than the client, since
//!   pgbench cannot make one, and `edited_at` is a literal `NULL`, since a
//!   pgbench variable cannot be one.
//! - **grouped**: the same tables, 50 messages and their 50 events per
//!   transaction (`INSERT ... SELECT` over arrays, one lock statement for the
//!   50 ids, one notify statement after the commit).
//!
//! Strings (content, the raw JSON, the payload) are bind parameters
//! (`-M prepared`, `-D`), as the bot sends them. The scripts write into a
//! copy of the schema of their own, so the worker never sees their rows.

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::database::{BenchDb, YARDSTICK_DATABASE};
use crate::settings::Settings;

/// Messages per transaction of the grouped yardstick.
pub const GROUP: usize = 50;

/// The bot's write at commit 41f0390 (`outbox/src/record.rs`,
/// `INSERT_MESSAGE_AND_EVENT`, with `lock_message_ids` before it), as a
/// pgbench script.
const SINGLE: &str = r#"\set id random(1, 9000000000000000000)
BEGIN;
SELECT pg_advisory_xact_lock(:id);
WITH stored AS (
  INSERT INTO messages (id, guild_id, channel_id, author_id, author_name, author_is_bot,
                        content, embeds, attachments, is_forward, sanitized, sent_at,
                        edited_at, deleted_at, raw)
  VALUES (:id, :guild_id, :channel_id, :author_id, :author_name, :author_is_bot, :content,
          :embeds, :attachments, :is_forward, :sanitized, :sent_at, NULL,
          (SELECT deleted_at FROM message_tombstones WHERE message_id = :id), :raw)
  ON CONFLICT (id) DO NOTHING
  RETURNING id, deleted_at
)
INSERT INTO events (id, message_id, kind, payload)
SELECT gen_random_uuid(), id, 'message.created', :payload::jsonb FROM stored
RETURNING id AS event_id, (SELECT deleted_at IS NOT NULL FROM stored) AS tombstoned
\gset
COMMIT;
SELECT pg_notify('events', :event_id);
"#;

/// Fifty messages and their events per transaction. Ids are a random block
/// of fifty; texts and raw JSON come as two array parameters.
const GROUPED: &str = r#"\set base random(1, 90000000000000000) * 100
BEGIN;
SELECT pg_advisory_xact_lock(id) FROM generate_series(:base::bigint, :base::bigint + 49) AS id ORDER BY id;
WITH batch AS (
  SELECT :base::bigint + n - 1 AS id, content, raw
  FROM unnest(:contents::text[], :raws::jsonb[]) WITH ORDINALITY AS b(content, raw, n)
), stored AS (
  INSERT INTO messages (id, guild_id, channel_id, author_id, author_name, author_is_bot,
                        content, embeds, attachments, is_forward, sanitized, sent_at,
                        edited_at, deleted_at, raw)
  SELECT b.id, :guild_id::bigint, :channel_id::bigint, :author_id::bigint, :author_name::text,
         false, b.content, '[]'::jsonb, '[]'::jsonb, false, false, :sent_at::timestamptz, NULL,
         t.deleted_at, b.raw
  FROM batch b LEFT JOIN message_tombstones t ON t.message_id = b.id
  ON CONFLICT (id) DO NOTHING
  RETURNING id
)
INSERT INTO events (id, message_id, kind, payload)
SELECT gen_random_uuid(), id, 'message.created', :payload::jsonb FROM stored;
COMMIT;
SELECT pg_notify('events', :base::text);
"#;

/// One sample message, as bind parameters.
#[derive(Debug, Clone)]
pub struct Sample {
    /// A message text.
    pub content: String,
    /// The message as the gateway sent it (what the bot stores in `raw`).
    pub raw: String,
    /// Guild and channel of the message.
    pub guild_id: u64,
    /// The channel.
    pub channel_id: u64,
}

/// What the yardsticks measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Yardsticks {
    /// Single-message write, messages (= transactions) per second, at
    /// `clients` clients.
    pub single: f64,
    /// The same with one client.
    pub single_one_client: f64,
    /// Grouped write, messages per second (transactions x 50).
    pub grouped: f64,
    /// Clients of `single` and `grouped`.
    pub clients: u32,
    /// Size of the raw JSON bound with every message, bytes.
    pub raw_bytes: usize,
}

/// Runs the three yardsticks one after another.
///
/// # Errors
/// When pgbench cannot run, fails, or the run is cancelled.
pub async fn run_all(
    db: &BenchDb,
    settings: &Settings,
    sample: &Sample,
    cancel: &CancellationToken,
) -> Result<Yardsticks> {
    let dir = &settings.log_dir;
    std::fs::write(dir.join("single.sql"), SINGLE).context("writing the pgbench script")?;
    std::fs::write(dir.join("grouped.sql"), GROUPED).context("writing the pgbench script")?;
    let single_vars = variables(sample, false);
    let grouped_vars = variables(sample, true);
    let clients = settings.pgbench_clients;
    eprintln!(
        "loadbench: yardstick: single-message write, {clients} clients, {} s",
        settings.pgbench_secs
    );
    let single = pgbench(db, settings, "single.sql", clients, &single_vars, cancel).await?;
    eprintln!("loadbench:   {single:.0} messages/s");
    eprintln!("loadbench: yardstick: single-message write, 1 client");
    let single_one_client = pgbench(db, settings, "single.sql", 1, &single_vars, cancel).await?;
    eprintln!("loadbench:   {single_one_client:.0} messages/s");
    eprintln!("loadbench: yardstick: {GROUP} messages per transaction, {clients} clients");
    let grouped =
        pgbench(db, settings, "grouped.sql", clients, &grouped_vars, cancel).await? * GROUP as f64;
    eprintln!("loadbench:   {grouped:.0} messages/s");
    Ok(Yardsticks {
        single,
        single_one_client,
        grouped,
        clients,
        raw_bytes: sample.raw.len(),
    })
}

/// The `-D` variables of a script.
fn variables(sample: &Sample, grouped: bool) -> Vec<(String, String)> {
    let payload = format!(
        r#"{{"v": 1, "channel_id": "{}", "source": "gateway"}}"#,
        sample.channel_id
    );
    let mut vars = vec![
        ("guild_id", sample.guild_id.to_string()),
        ("channel_id", sample.channel_id.to_string()),
        ("author_id", "900000000000000001".to_owned()),
        ("author_name", "swing_sam".to_owned()),
        ("sent_at", "2026-05-15 13:30:00+00".to_owned()),
        ("payload", payload),
    ];
    if grouped {
        let contents: Vec<String> = (0..GROUP)
            .map(|n| format!("{} #{n}", sample.content))
            .collect();
        vars.push(("contents", array_literal(&contents)));
        vars.push(("raws", array_literal(&vec![sample.raw.clone(); GROUP])));
    } else {
        vars.extend([
            ("author_is_bot", "false".to_owned()),
            ("content", sample.content.clone()),
            ("embeds", "[]".to_owned()),
            ("attachments", "[]".to_owned()),
            ("is_forward", "false".to_owned()),
            ("sanitized", "false".to_owned()),
            ("raw", sample.raw.clone()),
        ]);
    }
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A PostgreSQL array literal of text elements: `{"a","b \"c\""}`.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// Runs one pgbench and returns its transactions per second.
async fn pgbench(
    db: &BenchDb,
    settings: &Settings,
    script: &str,
    clients: u32,
    vars: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<f64> {
    let mut command = Command::new(&settings.pgbench);
    command
        .current_dir(&settings.log_dir)
        .args(["-M", "prepared", "-n", "-f", script])
        .arg(format!("-c{clients}"))
        .arg(format!("-j{}", clients.min(2)))
        .arg(format!("-T{}", settings.pgbench_secs))
        .args(["-h", "127.0.0.1", "-U", "postgres"])
        .arg(format!("-p{}", db.port()))
        .kill_on_drop(true);
    for (name, value) in vars {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    // The database is pgbench's positional argument (its `-d` is `--debug`).
    command.arg(YARDSTICK_DATABASE);
    let output = tokio::select! {
        output = command.output() => output
            .with_context(|| format!("running {}", settings.pgbench.display()))?,
        _ = cancel.cancelled() => bail!("interrupted"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = settings
        .log_dir
        .join(format!("pgbench-{script}-c{clients}.log"));
    // The log is for reading after the run; failing to write it changes no figure.
    let _ = std::fs::write(&log, format!("{stdout}\n{stderr}"));
    if !output.status.success() {
        bail!(
            "pgbench {script} failed ({}); see {}: {}",
            output.status,
            log.display(),
            stderr.lines().last().unwrap_or_default()
        );
    }
    parse_tps(&stdout).with_context(|| format!("no tps in pgbench's output ({})", log.display()))
}

/// The `tps = N (without initial connection time)` figure.
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|line| line.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_is_read_from_pgbench_output() {
        let output = "number of failed transactions: 0 (0.000%)\n\
                      latency average = 3.701 ms\n\
                      initial connection time = 12.345 ms\n\
                      tps = 4321.987654 (without initial connection time)\n";
        assert_eq!(parse_tps(output), Some(4321.987654));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn array_literals_escape_quotes_and_backslashes() {
        let items = vec![r#"{"a": "b\c"}"#.to_owned(), "plain".to_owned()];
        assert_eq!(array_literal(&items), r#"{"{\"a\": \"b\\c\"}","plain"}"#);
    }
}
