//! `recover`: re-fire orphaned events, or replay dead ones, on an operator's
//! request, saying what it did (or, with `--dry-run`, what it would do).
//!
//! Orphans are what `orphaned_events` lists (never claimed, or a retry
//! overdue, by more than the grace), and are re-fired with a NOTIFY. Dead
//! events get a fresh set of attempts through `outbox::repair::replay_dead`
//! and are re-fired too. Both are safe to repeat: a NOTIFY is only a hint,
//! and replaying touches only rows that are still dead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::format;
use crate::horizon::database_now;
use crate::tools::orphans::{self, OrphanRow};

/// What to recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Events nobody picked up: NOTIFY them again.
    Orphans,
    /// Events that used up their attempts: replay them.
    Dead,
}

/// How `recover` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoverOptions {
    pub target: Target,
    /// Only events created (orphans) or first seen (dead) this recently.
    pub since: Option<Duration>,
    /// Report, change nothing.
    pub dry_run: bool,
    /// At most this many events.
    pub limit: i64,
    /// Orphans must be at least this old.
    pub grace: Duration,
}

/// What `recover` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverReport {
    pub target: Target,
    pub dry_run: bool,
    /// The events selected.
    pub events: Vec<OrphanRow>,
    /// How many were re-fired (orphans) or replayed (dead); 0 in a dry run.
    pub acted: u64,
    /// The grace used for orphans.
    pub grace_secs: f64,
}

/// Runs `recover`.
pub async fn run(db: &DatabaseConnection, options: &RecoverOptions) -> Result<RecoverReport> {
    let events = match options.target {
        Target::Orphans => select_orphans(db, options).await?,
        Target::Dead => select_dead(db, options).await?,
    };
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut acted = 0;
    if !options.dry_run && !ids.is_empty() {
        match options.target {
            Target::Orphans => {
                outbox::notify::notify(db, &ids).await?;
                acted = ids.len() as u64;
            }
            Target::Dead => {
                let replayed = outbox::repair::replay_dead(db, &ids).await?;
                outbox::notify::notify(db, &replayed).await?;
                acted = replayed.len() as u64;
            }
        }
        let what = match options.target {
            Target::Orphans => "orphans re-fired by an operator",
            Target::Dead => "dead events replayed by an operator",
        };
        tracing::info!(events = acted, "{what}");
        metrics::counter!("aplus_reconciler_recovered_total", "target" => match options.target {
            Target::Orphans => "orphans",
            Target::Dead => "dead",
        })
        .increment(acted);
    }
    Ok(RecoverReport {
        target: options.target,
        dry_run: options.dry_run,
        events,
        acted,
        grace_secs: options.grace.as_secs_f64(),
    })
}

async fn since_timestamp(
    db: &DatabaseConnection,
    since: Option<Duration>,
) -> Result<Option<DateTime<Utc>>> {
    Ok(match since {
        Some(d) => {
            let now = database_now(db).await?;
            Some(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
        }
        None => None,
    })
}

async fn select_orphans(
    db: &DatabaseConnection,
    options: &RecoverOptions,
) -> Result<Vec<OrphanRow>> {
    let since = since_timestamp(db, options.since).await?;
    crate::stats::orphan_rows(db, options.grace, since, options.limit).await
}

async fn select_dead(db: &DatabaseConnection, options: &RecoverOptions) -> Result<Vec<OrphanRow>> {
    let since = since_timestamp(db, options.since).await?;
    let ids = outbox::repair::dead_events(db, since, options.limit).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(stmt(
            "SELECT e.id, e.message_id, e.kind, e.created_at, \
                    extract(epoch FROM now() - e.created_at)::float8 AS age, \
                    i.attempts, i.last_error \
             FROM events e JOIN inbox i ON i.event_id = e.id \
             WHERE e.id = ANY($1::uuid[]) ORDER BY i.first_seen_at, e.id",
            [ids.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(OrphanRow {
                event_id: row.try_get_by("id")?,
                message_id: row.try_get_by("message_id")?,
                kind: row.try_get_by("kind")?,
                created_at: row.try_get_by("created_at")?,
                age_secs: row.try_get_by("age")?,
                reason: "dead".to_owned(),
                attempts: row.try_get_by("attempts")?,
                last_error: row.try_get_by("last_error")?,
            })
        })
        .collect()
}

/// Rows listed in the human-readable report.
const LISTED: usize = 20;

impl RecoverReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let n = self.events.len() as u64;
        let mut out = String::new();
        if n == 0 {
            out.push_str(&match self.target {
                Target::Orphans => format!(
                    "No orphaned events (nothing unclaimed or overdue for more than {}): nothing to re-fire.\n",
                    format::seconds(self.grace_secs)
                ),
                Target::Dead => "No dead events: nothing to replay.\n".to_owned(),
            });
            return out;
        }
        let never = self
            .events
            .iter()
            .filter(|e| e.reason == "never_claimed")
            .count() as u64;
        let detail = match self.target {
            Target::Orphans => format!(
                "{} ({} never claimed, {} overdue for retry)",
                format::counted(n, "orphaned event", "orphaned events"),
                format::count(never),
                format::count(n - never)
            ),
            Target::Dead => format::counted(n, "dead event", "dead events"),
        };
        out.push_str(&match (self.target, self.dry_run) {
            (Target::Orphans, true) => {
                format!("Dry run: would re-fire {detail}. Nothing was changed.\n")
            }
            (Target::Dead, true) => format!(
                "Dry run: would replay {detail} with a fresh set of attempts. Nothing was changed.\n"
            ),
            (Target::Orphans, false) => format!(
                "Re-fired {}. Workers pick them up within seconds.\n",
                if self.acted == n {
                    detail
                } else {
                    format!("{} of {detail}", format::count(self.acted))
                }
            ),
            (Target::Dead, false) => format!(
                "Replayed {} of {detail}: each has a fresh set of attempts, due now, and was re-fired.\n",
                format::count(self.acted)
            ),
        });
        out.push('\n');
        out.push_str(&orphans::table(
            &self.events[..self.events.len().min(LISTED)],
        ));
        if self.events.len() > LISTED {
            out.push_str(&format!(
                "  ... and {} more\n",
                format::count((self.events.len() - LISTED) as u64)
            ));
        }
        out.push_str(if self.dry_run {
            "\nNext: run the same command without --dry-run.\n"
        } else {
            "\nNext: check with `reconciler diagnose` in a few seconds.\n"
        });
        out
    }
}
