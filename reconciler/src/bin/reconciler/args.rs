//! The command line: every flag, with its environment variable and default.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use reconciler::config::defaults;
use reconciler::{PassConfig, Schedule, config};
use service::config::parse_duration;
use service::{DatabaseArgs, TelemetryArgs};

#[derive(Debug, Parser)]
#[command(
    name = "reconciler",
    version,
    about = "Repairs the A+ pipeline on a schedule, and diagnoses it",
    long_about = "Repairs the A+ pipeline on a schedule, and diagnoses it.\n\n\
                  Without a command, runs the service (`reconciler run`). Every flag has an \
                  environment variable. Exit status: 0 success or healthy, 1 needs attention, \
                  2 unhealthy or failed."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

// Parsed once at start-up and consumed at once: boxing the large variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run passes on a schedule and serve the dashboard and health endpoints (the default).
    Run(RunArgs),
    /// Run one pass now and print what it did.
    Once(OnceArgs),
    /// One verdict on the whole pipeline, the facts, and the next command to run.
    Diagnose(DiagnoseArgs),
    /// Why events were not processed: by age, by error, by attempts; the oldest orphans.
    Audit(AuditArgs),
    /// Re-fire orphaned events, replay dead ones with --dead, or end stuck listeners with --stale-listeners.
    Recover(RecoverArgs),
    /// Tell every running worker to re-establish its LISTEN connection.
    Relisten(RelistenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    #[command(flatten)]
    pub(crate) telemetry: TelemetryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PassArgs {
    /// Name recorded with each pass [default: host name and process id].
    #[arg(long, env = "RECONCILER_INSTANCE")]
    pub(crate) instance: Option<String>,
    /// Unclaimed events older than this are re-fired.
    #[arg(long, env = "RECONCILER_ORPHAN_GRACE", default_value = defaults::ORPHAN_GRACE, value_parser = parse_duration)]
    pub(crate) orphan_grace: Duration,
    /// Processed events older than this are pruned (messages never are).
    #[arg(long, env = "RECONCILER_RETENTION", default_value = defaults::RETENTION, value_parser = parse_duration)]
    pub(crate) retention: Duration,
    /// How far before the previous pass's cursor the missing-event scan restarts.
    #[arg(long, env = "RECONCILER_SAFETY_MARGIN", default_value = defaults::SAFETY_MARGIN, value_parser = parse_duration)]
    pub(crate) safety_margin: Duration,
    /// Pages of 1,000 messages scanned for missing events per pass.
    #[arg(long, env = "RECONCILER_SCAN_PAGES", default_value_t = defaults::SCAN_PAGES)]
    pub(crate) scan_pages: u32,
    /// Orphans re-fired per pass, at most.
    #[arg(long, env = "RECONCILER_ORPHAN_LIMIT", default_value_t = defaults::ORPHAN_LIMIT)]
    pub(crate) orphan_limit: i64,
    /// Pages of 5,000 processed events pruned per pass.
    #[arg(long, env = "RECONCILER_PRUNE_PAGES", default_value_t = defaults::PRUNE_PAGES)]
    pub(crate) prune_pages: u32,
    #[command(flatten)]
    pub(crate) listeners: ListenerArgs,
    /// End workers' LISTEN sessions that stopped reading (they reconnect); false only reports them.
    #[arg(long, env = "RECONCILER_END_STALE_LISTENERS", default_value_t = defaults::END_STALE_LISTENERS, action = clap::ArgAction::Set)]
    pub(crate) end_stale_listeners: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListenerArgs {
    /// A worker's LISTEN session that has not read its heartbeat back for this long is stale.
    #[arg(long, env = "RECONCILER_LISTENER_STALE_AFTER", default_value = defaults::LISTENER_STALE_AFTER, value_parser = parse_duration)]
    pub(crate) listener_stale_after: Duration,
}

impl PassArgs {
    pub(crate) fn config(&self) -> anyhow::Result<PassConfig> {
        let mut c = PassConfig::new(
            self.instance
                .clone()
                .unwrap_or_else(config::default_instance),
        );
        c.orphan_grace = self.orphan_grace;
        c.retention = self.retention;
        c.safety_margin = self.safety_margin;
        c.scan_pages = self.scan_pages;
        c.orphan_limit = self.orphan_limit;
        c.prune_pages = self.prune_pages;
        c.listener_stale_after = self.listeners.listener_stale_after;
        c.end_stale_listeners = self.end_stale_listeners;
        c.validate().context("checking the pass settings")?;
        Ok(c)
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) pass: PassArgs,
    /// When to run passes: a 5-field crontab line, or 6-7 fields with seconds first.
    #[arg(long, env = "RECONCILER_SCHEDULE", default_value = defaults::SCHEDULE, value_parser = parse_schedule)]
    pub(crate) schedule: Schedule,
    /// Address of /healthz, /readyz, /metrics, the dashboard (/) and /api/health.
    #[arg(long, env = "RECONCILER_HTTP_LISTEN", default_value = defaults::HTTP_LISTEN)]
    pub(crate) http_listen: SocketAddr,
    /// Apply pending migrations at start. Off by default: migrations run as
    /// the schema's owner (`migration up`), and the reconciler's own role may
    /// not change the schema.
    #[arg(long, env = "RECONCILER_MIGRATE")]
    pub(crate) migrate: bool,
    /// Also serve /metrics alone on this address (scrapers then need no
    /// access to the dashboard's address).
    #[arg(long, env = "RECONCILER_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

pub(crate) fn parse_schedule(line: &str) -> Result<Schedule, String> {
    Schedule::parse(line).map_err(|e| e.reason)
}

#[derive(Debug, Args)]
pub(crate) struct OnceArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) pass: PassArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DiagnoseArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Print the diagnosis as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Events younger than this are in flight, not late.
    #[arg(long, env = "RECONCILER_ORPHAN_GRACE", default_value = defaults::ORPHAN_GRACE, value_parser = parse_duration)]
    pub(crate) grace: Duration,
    #[command(flatten)]
    pub(crate) listeners: ListenerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Audit events created this recently.
    #[arg(long, default_value = defaults::AUDIT_SINCE, value_parser = parse_duration)]
    pub(crate) since: Duration,
    /// Error groups and orphans listed, at most.
    #[arg(long, default_value_t = defaults::AUDIT_TOP)]
    pub(crate) top: i64,
    /// Unclaimed events younger than this are in flight, not orphans.
    #[arg(long, env = "RECONCILER_ORPHAN_GRACE", default_value = defaults::ORPHAN_GRACE, value_parser = parse_duration)]
    pub(crate) grace: Duration,
    /// Print the audit as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Replay dead events (fresh attempts, due now) instead of re-firing orphans.
    #[arg(long, conflicts_with = "stale_listeners")]
    pub(crate) dead: bool,
    /// End workers' LISTEN sessions that stopped reading notifications (by
    /// their application name and heartbeat; no one else's session).
    #[arg(long)]
    pub(crate) stale_listeners: bool,
    #[command(flatten)]
    pub(crate) listeners: ListenerArgs,
    /// Only events created (orphans) or first seen (dead) this recently.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// Show what would be done; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// At most this many events.
    #[arg(long, default_value_t = defaults::RECOVER_LIMIT)]
    pub(crate) limit: i64,
    /// Orphans must be unclaimed (or overdue) for at least this long.
    #[arg(long, env = "RECONCILER_ORPHAN_GRACE", default_value = defaults::ORPHAN_GRACE, value_parser = parse_duration)]
    pub(crate) grace: Duration,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RelistenArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// How long to watch the workers reconnect.
    #[arg(long, default_value = defaults::RELISTEN_WAIT, value_parser = parse_duration)]
    pub(crate) wait: Duration,
}

impl RunArgs {
    /// The `run` command with every flag from the environment or its default.
    pub(crate) fn from_env() -> Self {
        match Cli::try_parse_from(std::env::args_os().take(1).chain(["run".into()])) {
            Ok(Cli {
                command: Some(Command::Run(args)),
            }) => args,
            Ok(_) => unreachable!("parsing `run` yields the run command"),
            Err(e) => service::exit::exit_for(&e),
        }
    }
}
