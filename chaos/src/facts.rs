//! Everything known about a scenario once it is over, gathered for the
//! checks and the report: the faults done, the load, the samples, the
//! monitor's record, the final state, and the events and reconciler passes
//! placed on the scenario's timeline; and how long the services took to
//! recover from each fault.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::checker::FinalState;
use crate::load::LoadLog;
use crate::monitor::MonitorRecord;
use crate::notifications::Heard;
use crate::sampler::SampleLog;
use crate::script::FaultRecord;
use crate::settings::Settings;
use crate::stack::{Service, Stack};
use crate::supervisor::{Ended, Exit};
use crate::timeline::{Timeline, secs};

/// How long "all ready" must last to count as recovered.
pub const STABLE: Duration = Duration::from_secs(2);

/// How long the services took to recover from one fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryTime {
    /// From the end of the fault to every service ready (and staying so
    /// for [`STABLE`]); `None` if that never happened.
    pub healthy_after: Option<Duration>,
    /// The next fault began before the services had recovered: the
    /// recovery was cut short, not slow, and is not judged.
    pub interrupted: bool,
}

/// The recovery after each fault, in order.
pub fn recovery_times(faults: &[FaultRecord], monitor: &MonitorRecord) -> Vec<RecoveryTime> {
    faults
        .iter()
        .enumerate()
        .map(|(i, fault)| {
            let next = faults.get(i + 1).map(|f| f.start);
            let healthy_after = monitor.recovered_after(fault.end, STABLE);
            let interrupted = match (healthy_after, next) {
                (Some(took), Some(next)) => fault.end + took + STABLE > next,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            RecoveryTime {
                healthy_after,
                interrupted,
            }
        })
        .collect()
}

/// Everything known about a scenario once it is over.
#[derive(Debug)]
pub struct Facts<'a> {
    /// The run's settings.
    pub settings: &'a Settings,
    /// The faults done.
    pub faults: Vec<FaultRecord>,
    /// The load.
    pub load: LoadLog,
    /// When the load started (the services were all ready, and the
    /// suite's own listener and sampler were running).
    pub load_started_at: Duration,
    /// When the load stopped.
    pub load_stopped_at: Duration,
    /// The invariant samples.
    pub samples: SampleLog,
    /// Readiness and counters of the services.
    pub monitor: MonitorRecord,
    /// What an independent listener heard on `events`.
    pub heard: Heard,
    /// The final state against ground truth.
    pub state: FinalState,
    /// How long the drain took, if it completed.
    pub drain: Option<Duration>,
    /// Every event with its times on the scenario's timeline.
    pub events: Vec<EventTiming>,
    /// When each recorded reconciler pass started, on the scenario's
    /// timeline (database clock).
    pub passes_s: Vec<f64>,
    /// The services (their process records survive the stop).
    pub services: Vec<Service>,
    /// The database server's log.
    pub server_log: String,
    /// How long the services took to become ready at the start.
    pub startup: Duration,
    /// Simulator counters.
    pub sim_stats: discord_sim::SimStats,
}

impl Facts<'_> {
    /// Exits of the services whose name starts with `prefix`.
    pub fn exits(&self, prefix: &str) -> Vec<Exit> {
        self.services
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .flat_map(|s| s.process.exits())
            .collect()
    }

    /// How many exits of `prefix` services were aborts (SIGABRT: a failpoint fired).
    pub fn aborts(&self, prefix: &str) -> usize {
        self.exits(prefix)
            .iter()
            .filter(|e| e.ended == Ended::ABORT)
            .count()
    }

    /// Lines of the server log that contain `needle`.
    pub fn server_log_count(&self, needle: &str) -> usize {
        self.server_log
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// Extra numbers a scenario wants in its report.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Evidence(pub BTreeMap<String, serde_json::Value>);

impl Evidence {
    /// Adds one number or text. Whole numbers (counter totals arrive as
    /// floats) are stored as integers.
    pub fn put(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        let mut value = value.into();
        if let Some(f) = value.as_f64()
            && f.fract() == 0.0
            && f.abs() < 9.0e15
        {
            value = serde_json::Value::from(f as i64);
        }
        self.0.insert(key.to_owned(), value);
    }
}

/// An event's times, in seconds on the scenario's timeline (database clock,
/// shifted by [`ClockMark`]; negative for events written before the mark).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventTiming {
    /// The event.
    pub id: Uuid,
    /// When it was written.
    pub created_s: f64,
    /// When it was processed, if it was.
    pub processed_s: Option<f64>,
}

/// One reading of the database clock against the timeline, to place
/// database timestamps on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockMark {
    database: DateTime<Utc>,
    timeline: Duration,
}

impl ClockMark {
    pub(crate) async fn read(stack: &Stack, timeline: Timeline) -> Result<Self> {
        let mut conn = stack.db.connect("aplus-chaos-checker").await?;
        let before = timeline.now();
        let database: DateTime<Utc> = sea_orm::sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut conn)
            .await
            .context("reading the database clock")?;
        let after = timeline.now();
        Ok(Self {
            database,
            timeline: before + (after - before) / 2,
        })
    }

    fn place(&self, at: DateTime<Utc>) -> f64 {
        let offset = (at - self.database).num_microseconds().unwrap_or(0) as f64 / 1e6;
        secs(self.timeline) + offset
    }
}

pub(crate) async fn read_events(stack: &Stack, clock: ClockMark) -> Result<Vec<EventTiming>> {
    let mut conn = stack.db.connect("aplus-chaos-checker").await?;
    let rows: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> = sea_orm::sqlx::query_as(
        "SELECT e.id, e.created_at, i.processed_at FROM events e \
         LEFT JOIN inbox i ON i.event_id = e.id AND i.status = 'processed'",
    )
    .fetch_all(&mut conn)
    .await
    .context("reading the events")?;
    Ok(rows
        .into_iter()
        .map(|(id, created, processed)| EventTiming {
            id,
            created_s: clock.place(created),
            processed_s: processed.map(|p| clock.place(p)),
        })
        .collect())
}

pub(crate) async fn read_passes(stack: &Stack, clock: ClockMark) -> Result<Vec<f64>> {
    let mut conn = stack.db.connect("aplus-chaos-checker").await?;
    let started: Vec<DateTime<Utc>> =
        sea_orm::sqlx::query_scalar("SELECT started_at FROM reconciler_runs ORDER BY started_at")
            .fetch_all(&mut conn)
            .await
            .context("reading the reconciler passes")?;
    Ok(started.into_iter().map(|at| clock.place(at)).collect())
}
