//! `cargo xtask bench views`: how the views and a reconciler pass scale
//! with the history.
//!
//! For each size it creates a dedicated database (`aplus_bench_<size>`) on
//! the server of `DATABASE_URL`, migrates it, and loads that many messages
//! with their `message.created` events and inbox rows, spread over the past
//! year, through `outbox` (see `load`). A few events are failed or dead, and
//! the newest ten, written in a transaction of their own, are left
//! unclaimed, as in a live system. Then `VACUUM ANALYZE`, the watermark is
//! advanced, and each view is timed (`SELECT *`, one warm-up, then the
//! median of the runs), followed by a steady-state reconciler pass (previous
//! cursor at now, nothing past retention) and finally one first pass with
//! the default 30-day retention, which prunes and scans its full page
//! budget. Growth is reported against the smallest size. A candidate index
//! or view can be evaluated the same way: `--setup-sql` runs a file after
//! loading, and each `--query` is timed like the views. The databases are
//! dropped afterwards unless asked to keep them (`--keep`), for example to
//! run `EXPLAIN ANALYZE` on them by hand.
//!
//! Built in release by `cargo xtask bench views` (feature `bench-views`, so
//! the everyday `cargo xtask` stays free of the database crates).

mod load;
mod report;
#[path = "../sizes.rs"]
mod sizes;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use outbox::sql::stmt;
use reconciler::{Horizons, PassConfig, PassOutcome, PassReport, format, run_once};
use report::SizeResult;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::sqlx::{AssertSqlSafe, Executor as _};
use sea_orm::{ConnectionTrait, DatabaseConnection, SqlxPostgresConnector};
use service::DatabaseArgs;
use service::db::{PoolSettings, connect_options};
use sizes::{parse_size, parse_sizes};

/// The views timed, in the order printed.
pub const VIEWS: [&str; 4] = [
    "event_message_ratio",
    "processing_rate",
    "orphaned_events",
    "pipeline_health",
];

/// Times the views and a reconciler pass over generated histories (creates
/// its own databases).
#[derive(Debug, Parser)]
#[command(name = "bench-views")]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    /// One size only: this many messages (overrides --sizes).
    #[arg(long, value_parser = parse_size)]
    messages: Option<u64>,
    /// Sizes to measure, smallest first (the baseline).
    #[arg(long, default_value = "100k,1M,10M", value_parser = parse_sizes)]
    sizes: Sizes,
    /// Timed runs per query; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keep the databases afterwards (to run EXPLAIN ANALYZE on them by hand).
    #[arg(long)]
    keep: bool,
    /// A file of SQL run after loading, before timing (a candidate index or view).
    #[arg(long)]
    setup_sql: Option<std::path::PathBuf>,
    /// A further query to time (repeatable), for example one using the setup's view.
    #[arg(long = "query")]
    queries: Vec<String>,
}

/// A parsed `--sizes` list (a type of its own, so clap reads the whole list
/// with one parser).
type Sizes = Vec<u64>;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
struct BenchOptions {
    /// Numbers of messages, one database each.
    sizes: Vec<u64>,
    /// Timed runs per query (after one warm-up); the median is reported.
    runs: usize,
    /// Keep the databases afterwards (for EXPLAIN ANALYZE by hand).
    keep: bool,
    /// SQL run after loading and before timing: a candidate index or view
    /// definition to evaluate.
    setup_sql: Option<String>,
    /// Further queries to time, after the views.
    queries: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = (|| -> anyhow::Result<()> {
        let setup_sql = match &cli.setup_sql {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let options = BenchOptions {
            sizes: match cli.messages {
                Some(n) => vec![n],
                None => cli.sizes.clone(),
            },
            runs: cli.runs,
            keep: cli.keep,
            setup_sql,
            queries: cli.queries.clone(),
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let mut out = std::io::stdout();
        runtime.block_on(run(&cli.database, &options, &mut out))?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-views: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark, writing progress and the table to `out`.
async fn run(
    args: &DatabaseArgs,
    options: &BenchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Vec<SizeResult>> {
    if options.sizes.is_empty() || options.runs == 0 {
        anyhow::bail!("give at least one size and one run");
    }
    let mut settings = PoolSettings::new("aplus-reconciler-bench", 4);
    // Loading ten million rows takes minutes per statement.
    settings.statement_timeout = None;
    settings.idle_in_transaction_timeout = None;
    let admin = connect(args, &settings, None)?;
    let machine = report::machine(&admin).await?;
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
        load::load(&db, size, out).await?;
        let load_time = started.elapsed();
        let bytes = db
            .query_one_raw(stmt("SELECT pg_database_size(current_database()) AS b", []))
            .await?
            .ok_or_else(|| anyhow::anyhow!("the database size returned no row"))?
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
    let _ = write!(out, "\n{}", report::table(&results, options.runs));
    Ok(results)
}

fn expect_completed(outcome: &PassOutcome) -> anyhow::Result<&PassReport> {
    match outcome {
        PassOutcome::Completed(r) if r.errors.is_empty() => Ok(r.as_ref()),
        PassOutcome::Completed(r) => anyhow::bail!("the pass failed a step: {:?}", r.errors),
        PassOutcome::Skipped => {
            anyhow::bail!("the pass was skipped: another reconciler holds the lock")
        }
    }
}

async fn median_of<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
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
) -> anyhow::Result<DatabaseConnection> {
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

async fn raw(admin: &DatabaseConnection, sql: String) -> anyhow::Result<()> {
    admin
        .get_postgres_connection_pool()
        .execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(sql)))
        .await?;
    Ok(())
}

async fn recreate(admin: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    drop_database(admin, name).await?;
    raw(admin, format!(r#"CREATE DATABASE "{name}""#)).await
}

async fn drop_database(admin: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    raw(
        admin,
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
    )
    .await
}
