//! `reconciler bench`: how the views and a pass scale with the history.
//!
//! For each size it creates a dedicated database (`aplus_bench_<size>`) on
//! the server of `DATABASE_URL`, migrates it, and loads that many messages
//! with their `message.created` events and inbox rows, spread evenly over the
//! past year, with `generate_series` (plain INSERTs, so `events.txid` is set
//! as the bot sets it). A few events are failed or dead, and the newest ten,
//! written in a transaction of their own, are left unclaimed, as in a live
//! system. Then `VACUUM ANALYZE`, the
//! watermark is advanced, and each view is timed (`SELECT *`, one warm-up,
//! then the median of the runs), followed by a steady-state reconciler pass
//! (previous cursor at now, nothing past retention) and finally one first
//! pass with the default 30-day retention, which prunes and scans its full
//! page budget. Growth is reported against the smallest size. A candidate
//! index or view can be evaluated the same way: `--setup-sql` runs a file
//! after loading, and each `--query` is timed like the views. The databases
//! are dropped afterwards unless asked to keep them (`--keep`), for example
//! to run `EXPLAIN ANALYZE` on them by hand.

use std::io::Write;
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::sqlx::{AssertSqlSafe, Executor as _};
use sea_orm::{ConnectionTrait, DatabaseConnection, SqlxPostgresConnector, TransactionTrait};
use service::DatabaseArgs;
use service::db::{PoolSettings, connect_options};

use crate::config::PassConfig;
use crate::error::{Error, Result};
use crate::format;
use crate::horizon::Horizons;
use crate::pass::{PassOutcome, run_once};
use crate::sql::{one, stmt};

/// The views timed, in the order printed.
pub const VIEWS: [&str; 4] = [
    "event_message_ratio",
    "processing_rate",
    "orphaned_events",
    "pipeline_health",
];

/// Rows inserted per statement while loading.
const CHUNK: u64 = 500_000;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Numbers of messages, one database each.
    pub sizes: Vec<u64>,
    /// Timed runs per query (after one warm-up); the median is reported.
    pub runs: usize,
    /// Keep the databases afterwards (for EXPLAIN ANALYZE by hand).
    pub keep: bool,
    /// SQL run after loading and before timing: a candidate index or view
    /// definition to evaluate.
    pub setup_sql: Option<String>,
    /// Further queries to time, after the views.
    pub queries: Vec<String>,
}

/// Parses `100k`, `1M`, `10m`, `2500000`.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim().replace('_', "");
    let (number, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        _ => (t.as_str(), 1),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * factor),
        _ => Err(format!(
            "`{text}` is not a size such as 100k, 1M or 2500000"
        )),
    }
}

/// The measurements of one size.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeResult {
    pub messages: u64,
    pub load: Duration,
    pub database_bytes: i64,
    /// Median per view, in [`VIEWS`] order.
    pub views: Vec<Duration>,
    /// Median per extra query, in the order given.
    pub queries: Vec<Duration>,
    /// Median of a steady-state pass.
    pub steady_pass: Duration,
    /// One first pass with the default retention, and what it did.
    pub first_pass: Duration,
    pub first_pass_pruned: u64,
    pub first_pass_scanned: u64,
}

/// Runs the benchmark, writing progress and the table to `out`.
pub async fn run(
    args: &DatabaseArgs,
    options: &BenchOptions,
    out: &mut (dyn Write + Send),
) -> Result<Vec<SizeResult>> {
    if options.sizes.is_empty() || options.runs == 0 {
        return Err(Error::Config("give at least one size and one run".into()));
    }
    let mut settings = PoolSettings::new("aplus-reconciler-bench", 4);
    // Loading ten million rows takes minutes per statement.
    settings.statement_timeout = None;
    settings.idle_in_transaction_timeout = None;
    let admin = connect(args, &settings, None)?;
    let machine = machine(&admin).await?;
    let _ = writeln!(out, "{machine}");

    let mut results = Vec::new();
    for &size in &options.sizes {
        let name = format!("aplus_bench_{size}");
        let _ = writeln!(
            out,
            "\n== {} messages (database {name}) ==",
            format::count(size)
        );
        let db = connect(args, &settings, Some(&name))?;
        let started = Instant::now();
        recreate(&admin, &name).await?;
        migration::migrate(&db).await?;
        load(&db, size, out).await?;
        let load_time = started.elapsed();
        let bytes = one(
            db.query_one_raw(stmt("SELECT pg_database_size(current_database()) AS b", []))
                .await?,
            "database size",
        )?
        .try_get_by::<i64, _>("b")?;
        let _ = writeln!(
            out,
            "loaded in {}, {} MiB on disk",
            format::duration(load_time),
            format::count((bytes / (1 << 20)) as u64)
        );

        if let Some(sql) = &options.setup_sql {
            db.execute_unprepared(sql).await?;
            db.execute_unprepared("ANALYZE").await?;
        }
        let db_ref = &db;
        let time = |sql: String| async move {
            median_of(options.runs, || {
                let sql = sql.clone();
                async move {
                    let t = Instant::now();
                    db_ref.query_all_raw(stmt(&sql, [])).await?;
                    Ok(t.elapsed())
                }
            })
            .await
        };
        let mut views = Vec::new();
        for view in VIEWS {
            let d = time(format!("SELECT * FROM {view}")).await?;
            let _ = writeln!(out, "  {view:<22} {:>9} ms", format::millis(d));
            views.push(d);
        }
        let mut queries = Vec::new();
        for (i, sql) in options.queries.iter().enumerate() {
            let d = time(sql.clone()).await?;
            let _ = writeln!(
                out,
                "  {:<22} {:>9} ms  {sql}",
                format!("query {}", i + 1),
                format::millis(d)
            );
            queries.push(d);
        }

        // Steady state: the previous pass scanned up to now and nothing is
        // past the retention.
        let mut steady = PassConfig::new("bench");
        steady.retention = Duration::from_secs(400 * 86_400);
        db.execute_unprepared(
            "DELETE FROM reconciler_runs; \
             INSERT INTO reconciler_runs (instance, started_at, messages_scanned_through) \
             VALUES ('bench', now(), now())",
        )
        .await?;
        let steady_ref = &steady;
        let steady_pass = median_of(options.runs, || async move {
            let horizons = Horizons::from_database(db_ref, steady_ref).await?;
            let t = Instant::now();
            let outcome = run_once(db_ref, steady_ref, horizons).await?;
            let elapsed = t.elapsed();
            expect_completed(&outcome)?;
            Ok(elapsed)
        })
        .await?;
        let _ = writeln!(
            out,
            "  {:<22} {:>9} ms",
            "pass (steady)",
            format::millis(steady_pass)
        );

        // The first pass ever, with the default retention: bounded pruning
        // and a full page budget of scanning. It changes the data, so once.
        db.execute_unprepared("DELETE FROM reconciler_runs").await?;
        let first = PassConfig::new("bench");
        let horizons = Horizons::from_database(&db, &first).await?;
        let t = Instant::now();
        let outcome = run_once(&db, &first, horizons).await?;
        let first_pass = t.elapsed();
        let report = expect_completed(&outcome)?;
        let _ = writeln!(
            out,
            "  {:<22} {:>9} ms  (pruned {} events, scanned {} messages)",
            "pass (first, 30 days)",
            format::millis(first_pass),
            format::count(report.pruned_events),
            format::count(report.messages_scanned)
        );
        results.push(SizeResult {
            messages: size,
            load: load_time,
            database_bytes: bytes,
            views,
            queries,
            steady_pass,
            first_pass,
            first_pass_pruned: report.pruned_events,
            first_pass_scanned: report.messages_scanned,
        });
        db.close().await?;
        if !options.keep {
            drop_database(&admin, &name).await?;
        }
    }
    let _ = write!(out, "\n{}", table(&results, options.runs));
    Ok(results)
}

fn expect_completed(outcome: &PassOutcome) -> Result<&crate::pass::PassReport> {
    match outcome {
        PassOutcome::Completed(r) if r.errors.is_empty() => Ok(r.as_ref()),
        PassOutcome::Completed(r) => Err(Error::Unexpected(format!(
            "the pass failed a step: {:?}",
            r.errors
        ))),
        PassOutcome::Skipped => Err(Error::Unexpected(
            "the pass was skipped: another reconciler holds the lock".into(),
        )),
    }
}

async fn median_of<F, Fut>(runs: usize, mut f: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    f().await?; // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(f().await?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn connect(
    args: &DatabaseArgs,
    settings: &PoolSettings,
    database: Option<&str>,
) -> Result<DatabaseConnection> {
    let mut options = connect_options(args, settings)?;
    if let Some(name) = database {
        options = options.database(name);
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(options);
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

async fn raw(admin: &DatabaseConnection, sql: String) -> Result<()> {
    admin
        .get_postgres_connection_pool()
        .execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(sql)))
        .await?;
    Ok(())
}

async fn recreate(admin: &DatabaseConnection, name: &str) -> Result<()> {
    drop_database(admin, name).await?;
    raw(admin, format!(r#"CREATE DATABASE "{name}""#)).await
}

async fn drop_database(admin: &DatabaseConnection, name: &str) -> Result<()> {
    raw(
        admin,
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
    )
    .await
}

/// Loads `n` messages over the past year, with events and inbox rows.
async fn load(db: &DatabaseConnection, n: u64, out: &mut (dyn Write + Send)) -> Result<()> {
    // Message i is received at now - 1 year + i * (1 year / n): ids grow with
    // time, as snowflakes do, and the newest is seconds to minutes old.
    let messages = "INSERT INTO messages (id, guild_id, channel_id, author_id, author_name, content, \
                      sent_at, received_at, raw) \
                    SELECT i, 1, 1 + i % 4, 42, 'trader', 'A+ setups ' || i, t, t, '{}'::jsonb \
                    FROM (SELECT i, now() - interval '365 days' + i * (interval '365 days' / $3) AS t \
                          FROM generate_series($1::bigint, $2::bigint) AS i) s";
    // Time-ordered ids like the UUIDv7 the bot writes: 48 bits of
    // milliseconds, version 7, then hash bits.
    let events = "INSERT INTO events (id, message_id, kind, payload, created_at) \
                  SELECT (lpad(to_hex((extract(epoch FROM m.received_at) * 1000)::bigint), 12, '0') \
                          || '7' || substr(md5(m.id::text), 1, 3) || '8' \
                          || substr(md5(m.id::text), 4, 15))::uuid, \
                         m.id, 'message.created', \
                         '{\"v\":1,\"channel_id\":\"1\",\"source\":\"gateway\"}'::jsonb, m.received_at \
                  FROM messages m WHERE m.id BETWEEN $1 AND $2";
    // One event in 100,000 failed (retry later), one dead; the rest processed.
    let inbox = "INSERT INTO inbox (event_id, status, attempts, last_error, next_attempt_at, \
                                    first_seen_at, processed_at, worker) \
                 SELECT e.id, \
                        CASE e.message_id % 100000 WHEN 7 THEN 'dead' WHEN 11 THEN 'failed' \
                             ELSE 'processed' END, \
                        CASE e.message_id % 100000 WHEN 7 THEN 8 WHEN 11 THEN 2 ELSE 1 END, \
                        CASE WHEN e.message_id % 100000 IN (7, 11) \
                             THEN 'handler error: bad line ' || e.message_id END, \
                        CASE e.message_id % 100000 WHEN 11 THEN now() + interval '10 minutes' END, \
                        e.created_at + interval '5 ms', \
                        CASE WHEN e.message_id % 100000 NOT IN (7, 11) \
                             THEN e.created_at + (20 + e.message_id % 200) * interval '1 ms' END, \
                        'bench' \
                 FROM events e WHERE e.message_id BETWEEN $1 AND $2";
    // The newest messages arrive in a transaction of their own and stay
    // unclaimed, as in a live system. (A bulk chunk shares one transaction
    // id; leaving part of one unclaimed would pin the watermark below half a
    // million events, which no real writer does.)
    let unclaimed = n.min(10);
    let processed_through = n - unclaimed;
    let mut first = 1u64;
    while first <= processed_through {
        let last = (first + CHUNK - 1).min(processed_through);
        let t = Instant::now();
        let (a, b, total) = (first as i64, last as i64, n as i64);
        db.execute_raw(stmt(messages, [a.into(), b.into(), total.into()]))
            .await?;
        db.execute_raw(stmt(events, [a.into(), b.into()])).await?;
        db.execute_raw(stmt(inbox, [a.into(), b.into()])).await?;
        let _ = writeln!(
            out,
            "  loaded {} of {} ({})",
            format::count(last),
            format::count(n),
            format::duration(t.elapsed())
        );
        first = last + 1;
    }
    let (a, b, total) = ((processed_through + 1) as i64, n as i64, n as i64);
    let txn = db.begin().await?;
    txn.execute_raw(stmt(messages, [a.into(), b.into(), total.into()]))
        .await?;
    txn.execute_raw(stmt(events, [a.into(), b.into()])).await?;
    txn.commit().await?;
    let t = Instant::now();
    db.execute_unprepared("VACUUM ANALYZE").await?;
    let watermark = outbox::watermark::advance(db, u32::MAX).await?;
    let _ = writeln!(
        out,
        "  vacuumed, analysed and advanced the watermark to {} ({})",
        format::count(watermark),
        format::duration(t.elapsed())
    );
    Ok(())
}

async fn machine(db: &DatabaseConnection) -> Result<String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB memory", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "memory unknown".to_owned());
    let row = one(
        db.query_one_raw(stmt(
            "SELECT current_setting('server_version') AS v, current_setting('shared_buffers') AS sb, \
                    current_setting('work_mem') AS wm",
            [],
        ))
        .await?,
        "server settings",
    )?;
    let version: String = row.try_get_by("v")?;
    let shared: String = row.try_get_by("sb")?;
    let work: String = row.try_get_by("wm")?;
    Ok(format!(
        "Machine: {cpus} CPUs, {memory}; PostgreSQL {version} (shared_buffers {shared}, work_mem {work})"
    ))
}

/// The summary table: one row per query, one column per size, and the
/// growth from the smallest size to the largest.
pub fn table(results: &[SizeResult], runs: usize) -> String {
    let mut out = format!(
        "Median of {runs} runs after one warm-up, in milliseconds; growth is against the smallest size ({}).\n\n",
        results
            .first()
            .map(|r| format::count(r.messages))
            .unwrap_or_default()
    );
    out.push_str(&format!("{:<24}", "query"));
    for r in results {
        out.push_str(&format!("{:>14}", format::count(r.messages)));
    }
    out.push_str(&format!("{:>10}\n", "growth"));
    let mut row = |label: &str, pick: &dyn Fn(&SizeResult) -> Duration| {
        out.push_str(&format!("{label:<24}"));
        for r in results {
            out.push_str(&format!("{:>14}", format::millis(pick(r))));
        }
        let growth = match (results.first(), results.last()) {
            (Some(a), Some(b)) if results.len() > 1 && !pick(a).is_zero() => {
                format!("x{:.1}", pick(b).as_secs_f64() / pick(a).as_secs_f64())
            }
            _ => String::new(),
        };
        out.push_str(&format!("{growth:>10}\n"));
    };
    for (i, view) in VIEWS.iter().enumerate() {
        row(view, &|r: &SizeResult| r.views[i]);
    }
    let extra = results.first().map(|r| r.queries.len()).unwrap_or(0);
    for i in 0..extra {
        row(&format!("query {}", i + 1), &|r: &SizeResult| r.queries[i]);
    }
    row("pass (steady)", &|r: &SizeResult| r.steady_pass);
    row("pass (first, 30 days)", &|r: &SizeResult| r.first_pass);
    out.push_str(&format!("{:<24}", "load (s)"));
    for r in results {
        out.push_str(&format!("{:>14}", format!("{:.0}", r.load.as_secs_f64())));
    }
    out.push('\n');
    out.push_str(&format!("{:<24}", "database (MiB)"));
    for r in results {
        out.push_str(&format!(
            "{:>14}",
            format::count((r.database_bytes / (1 << 20)) as u64)
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_k_and_m_suffixes() {
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("1M"), Ok(1_000_000));
        assert_eq!(parse_size("10m"), Ok(10_000_000));
        assert_eq!(parse_size("2_500"), Ok(2_500));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
