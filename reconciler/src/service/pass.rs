//! One repair pass: [`run_once`].
//!
//! Under the reconciler's advisory lock, a pass
//! 1. writes the missing `message.created` event of every message that has
//!    none, paging from the previous run's cursor, and NOTIFYs each page's
//!    new events after its commit;
//! 2. re-fires orphaned events (never claimed after the grace, or a failed
//!    event whose retry is due) with a NOTIFY, and advances the watermark;
//! 3. counts the backlog, the dead events and the retries due;
//! 4. prunes processed events and their inbox rows past the retention, and
//!    its own `reconciler_runs` rows older than that;
//! 5. reads the notification queue's usage and ends workers' LISTEN sessions
//!    that stopped reading (see [`crate::listeners`]; behind a setting);
//! 6. records a `reconciler_runs` row with every count.
//!
//! Each step is bounded (pages, limits) so a pass is short however far behind
//! the pipeline is; the next pass continues. A failing step is logged with
//! its cause, recorded in the run's `error`, and does not stop the steps after
//! it. Every write to `events` and `inbox` goes through `outbox`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outbox::repair::{self, MessageCursor};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde::Serialize;
use uuid::Uuid;

use crate::config::PassConfig;
use crate::error::{Result, chain};
use crate::horizon::Horizons;
use crate::listeners;
use crate::service::lock::PassLock;
use crate::service::runs::{self, RunRecord};
use crate::sql::{count, one};
use crate::stats;

/// What a call to [`run_once`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PassOutcome {
    /// This instance held the lock and ran the pass.
    Completed(Box<PassReport>),
    /// Another instance holds the lock; nothing was done.
    Skipped,
}

impl PassOutcome {
    /// The report, when the pass ran.
    pub fn report(&self) -> Option<&PassReport> {
        match self {
            PassOutcome::Completed(report) => Some(report.as_ref()),
            PassOutcome::Skipped => None,
        }
    }
}

/// A step that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepError {
    /// `missing_events`, `notify`, `orphans`, `watermark`, `counts`, `prune`,
    /// `listeners` or `record`.
    pub step: &'static str,
    /// The error and its causes.
    pub error: String,
}

/// Everything one pass did and saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassReport {
    /// The instance that ran it.
    pub instance: String,
    /// The pass's `now` (database clock).
    pub started_at: DateTime<Utc>,
    /// Wall time the pass took on this host.
    #[serde(serialize_with = "serialize_secs")]
    pub duration: Duration,
    /// Messages examined by the missing-event scan.
    pub messages_scanned: u64,
    /// `message.created` events written for messages that had none.
    pub missing_events_created: u64,
    /// Whether the scan reached the pass's `now` (otherwise the next pass resumes).
    pub scan_complete: bool,
    /// Where the scan got to: the next pass's cursor.
    pub messages_scanned_through: Option<DateTime<Utc>>,
    /// Never-claimed events older than the grace, re-fired with a NOTIFY.
    pub orphans_refired: u64,
    /// Failed events whose retry was due, nudged with a NOTIFY.
    pub retries_nudged: u64,
    /// The watermark after advancing it.
    pub watermark: Option<u64>,
    /// Failed events whose retry is due (after the nudge).
    pub retries_due: u64,
    /// Events that used up their attempts.
    pub dead_events: u64,
    /// Unclaimed events plus failed events awaiting retry.
    pub backlog: u64,
    /// Age of the oldest event no worker has claimed, in seconds.
    pub oldest_pending_secs: Option<f64>,
    /// Processed events deleted for age.
    pub pruned_events: u64,
    /// Their inbox rows.
    pub pruned_inbox: u64,
    /// `reconciler_runs` rows older than the retention, deleted.
    pub pruned_runs: u64,
    /// `pg_notification_queue_usage()`, 0 to 1.
    pub notification_queue_usage: Option<f64>,
    /// Workers' LISTEN sessions silent past the stale bound.
    pub stale_listeners: u64,
    /// Of those, the sessions ended.
    pub stale_listeners_ended: u64,
    /// `event_message_ratio`, last hour.
    pub ratio_1h: Option<f64>,
    /// `processing_rate`, last hour.
    pub processing_rate_1h: Option<f64>,
    /// Steps that failed.
    pub errors: Vec<StepError>,
    /// The `reconciler_runs` row written, if it could be.
    pub run_id: Option<i64>,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl PassReport {
    fn new(instance: &str, started_at: DateTime<Utc>) -> Self {
        Self {
            instance: instance.to_owned(),
            started_at,
            duration: Duration::ZERO,
            messages_scanned: 0,
            missing_events_created: 0,
            scan_complete: false,
            messages_scanned_through: None,
            orphans_refired: 0,
            retries_nudged: 0,
            watermark: None,
            retries_due: 0,
            dead_events: 0,
            backlog: 0,
            oldest_pending_secs: None,
            pruned_events: 0,
            pruned_inbox: 0,
            pruned_runs: 0,
            notification_queue_usage: None,
            stale_listeners: 0,
            stale_listeners_ended: 0,
            ratio_1h: None,
            processing_rate_1h: None,
            errors: Vec::new(),
            run_id: None,
        }
    }

    /// True when the pass changed something: created, re-fired or pruned.
    pub fn repaired_anything(&self) -> bool {
        self.missing_events_created > 0
            || self.orphans_refired > 0
            || self.retries_nudged > 0
            || self.pruned_events > 0
            || self.pruned_inbox > 0
            || self.stale_listeners_ended > 0
    }

    fn fail(&mut self, step: &'static str, error: &(dyn std::error::Error + 'static)) {
        let text = chain(error);
        tracing::warn!(step, error = %text, "reconciler step failed; continuing with the next");
        metrics::counter!("aplus_reconciler_step_errors_total", "step" => step).increment(1);
        self.errors.push(StepError { step, error: text });
    }
}

/// Runs one pass if no other instance is running one.
///
/// `horizons` come from the caller, normally [`Horizons::from_database`], so
/// tests decide what "now" is. Returns `Err` only when the lock could not be
/// tried (the database is unreachable); a step that fails is recorded in the
/// report and the run row instead.
#[tracing::instrument(level = "debug", skip_all, fields(instance = %config.instance))]
pub async fn run_once(
    db: &DatabaseConnection,
    config: &PassConfig,
    horizons: Horizons,
) -> Result<PassOutcome> {
    config.validate()?;
    let Some(lock) = PassLock::try_acquire(db).await? else {
        tracing::info!(
            instance = %config.instance,
            "another reconciler holds the lock; skipping this pass"
        );
        metrics::counter!("aplus_reconciler_passes_total", "outcome" => "skipped").increment(1);
        return Ok(PassOutcome::Skipped);
    };
    let started = Instant::now();
    let mut report = PassReport::new(&config.instance, horizons.now);

    if let Err(e) = create_missing_events(db, config, &horizons, &mut report).await {
        report.fail("missing_events", &e);
    }
    if let Err(e) = refire_orphans(db, config, &horizons, &mut report).await {
        report.fail("orphans", &e);
    }
    match outbox::watermark::advance(db, config.watermark_pages).await {
        Ok(watermark) => report.watermark = Some(watermark),
        Err(e) => report.fail("watermark", &e),
    }
    if let Err(e) = read_counts(db, config, &horizons, &mut report).await {
        report.fail("counts", &e);
    }
    if let Err(e) = prune(db, config, &horizons, &mut report).await {
        report.fail("prune", &e);
    }
    if let Err(e) = watch_listeners(db, config, &mut report).await {
        report.fail("listeners", &e);
    }
    report.duration = started.elapsed();

    let record = run_record(&report);
    match runs::insert(db, &record).await {
        Ok(id) => report.run_id = Some(id),
        Err(e) => report.fail("record", &e),
    }
    lock.release().await;

    publish(&report);
    Ok(PassOutcome::Completed(Box::new(report)))
}

/// Step 1: page through messages from the cursor, writing missing events.
async fn create_missing_events(
    db: &DatabaseConnection,
    config: &PassConfig,
    horizons: &Horizons,
    report: &mut PassReport,
) -> Result<()> {
    let margin = chrono::Duration::from_std(config.safety_margin)
        .unwrap_or_else(|_| chrono::Duration::minutes(2));
    let start = match runs::previous_scan(db).await? {
        // A cursor ahead of `now` means the database clock was set back:
        // rescan the margin rather than skip what arrives until it catches up.
        Some(previous) if previous.through > horizons.now => horizons.now - margin,
        Some(previous) if previous.complete => previous.through - margin,
        Some(previous) => previous.through,
        None => horizons.retention_cutoff,
    };
    // Events older than the retention are pruned; scanning their messages
    // would recreate them, so the scan never starts before it.
    let start = start.max(horizons.retention_cutoff);
    report.messages_scanned_through = Some(start);
    // The cursor's id 0 is below every snowflake: messages received at
    // exactly `start` are examined again, which is harmless.
    let mut cursor = MessageCursor {
        received_at: start,
        id: 0,
    };
    let mut pages = 0;
    // Past the budget only while still on the starting timestamp: more
    // messages than a whole pass's budget written by one transaction share
    // one `received_at`, and a resumed pass must get past them.
    while pages < config.scan_pages || cursor.received_at <= start {
        pages += 1;
        let txn = db.begin().await?;
        let page =
            repair::create_missing_events(&txn, cursor, horizons.now, config.scan_page).await?;
        txn.commit().await?;
        report.messages_scanned += page.scanned;
        if !page.created.is_empty() {
            report.missing_events_created += page.created.len() as u64;
            tracing::debug!(
                created = page.created.len(),
                "wrote missing message.created events"
            );
            // Committed already: a lost hint only delays them until the next
            // pass re-fires them as orphans.
            if let Err(e) = outbox::notify::notify(db, &page.created).await {
                report.fail("notify", &e);
            }
        }
        match page.next {
            Some(next) => {
                cursor = next;
                report.messages_scanned_through = Some(next.received_at);
            }
            None => {
                report.scan_complete = true;
                report.messages_scanned_through = Some(horizons.now);
                break;
            }
        }
    }
    Ok(())
}

/// Step 2: NOTIFY orphaned events and due retries; the workers' scans from
/// the watermark then find them.
async fn refire_orphans(
    db: &DatabaseConnection,
    config: &PassConfig,
    horizons: &Horizons,
    report: &mut PassReport,
) -> Result<()> {
    let ids = outbox::repair::orphans(db, horizons.orphan_cutoff, config.orphan_limit).await?;
    if ids.is_empty() {
        return Ok(());
    }
    let retries = with_inbox_row(db, &ids).await?;
    outbox::notify::notify(db, &ids).await?;
    report.retries_nudged = retries.len() as u64;
    report.orphans_refired = (ids.len() - retries.len()) as u64;
    Ok(())
}

/// Which of these events already have an inbox row (failed, awaiting retry).
async fn with_inbox_row<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT event_id FROM inbox WHERE event_id = ANY($1::uuid[])",
            [ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get_by_index::<Uuid>(0)?))
        .collect()
}

/// Step 3: what is waiting, dead and due, and the last hour's ratio and rate.
async fn read_counts<C: ConnectionTrait>(
    db: &C,
    config: &PassConfig,
    horizons: &Horizons,
    report: &mut PassReport,
) -> Result<()> {
    let health = stats::health(db, config.orphan_grace).await?;
    let ratios = stats::ratios(db, false).await?;
    let processing = stats::processing(db, config.orphan_grace, false).await?;
    let due = one(
        db.query_one_raw(stmt(
            "SELECT count(*) AS due FROM inbox WHERE status = 'failed' AND next_attempt_at <= $1",
            [horizons.now.into()],
        ))
        .await?,
        "retries due",
    )?;
    report.backlog = health.unclaimed + health.failed;
    report.oldest_pending_secs = health.oldest_pending_secs;
    report.dead_events = health.dead;
    report.retries_due = count(&due, "due")?;
    report.ratio_1h = stats::ratio(ratios.hour.messages, ratios.hour.created_events);
    report.processing_rate_1h = stats::rate(processing.events, processing.processed);
    Ok(())
}

/// Step 4: delete processed events past the retention, page by page, and
/// the reconciler's own old run records.
async fn prune(
    db: &DatabaseConnection,
    config: &PassConfig,
    horizons: &Horizons,
    report: &mut PassReport,
) -> Result<()> {
    for _ in 0..config.prune_pages {
        let pruned =
            repair::prune_processed(db, horizons.retention_cutoff, config.prune_page).await?;
        report.pruned_events += pruned.events;
        report.pruned_inbox += pruned.inbox;
        if (pruned.events as i64) < config.prune_page {
            break;
        }
    }
    report.pruned_runs = runs::prune(db, horizons.retention_cutoff, config.prune_page).await?;
    Ok(())
}

/// Step 5: how full the notification queue is, and the workers' LISTEN
/// sessions that stopped reading, ended when the setting says so.
async fn watch_listeners<C: ConnectionTrait>(
    db: &C,
    config: &PassConfig,
    report: &mut PassReport,
) -> Result<()> {
    report.notification_queue_usage = Some(listeners::queue_usage(db).await?);
    if config.end_stale_listeners {
        let ended = listeners::end_stale(db, config.listener_stale_after).await?;
        report.stale_listeners = ended.len() as u64;
        report.stale_listeners_ended = ended.len() as u64;
    } else {
        let stale = listeners::stale(db, config.listener_stale_after).await?;
        for l in &stale {
            tracing::warn!(
                pid = l.pid,
                application_name = %l.application_name,
                silent_secs = l.silent_secs,
                "a LISTEN session stopped consuming notifications (RECONCILER_END_STALE_LISTENERS is off)"
            );
        }
        report.stale_listeners = stale.len() as u64;
    }
    listeners::prune_heartbeats(db, config.listener_stale_after).await?;
    Ok(())
}

fn run_record(report: &PassReport) -> RunRecord {
    let error = (!report.errors.is_empty()).then(|| {
        report
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.step, e.error))
            .collect::<Vec<_>>()
            .join("\n")
    });
    RunRecord {
        id: 0,
        instance: report.instance.clone(),
        started_at: report.started_at,
        finished_at: None,
        missing_events_created: report.missing_events_created,
        orphans_refired: report.orphans_refired + report.retries_nudged,
        retries_due: report.retries_due,
        dead_events: report.dead_events,
        pruned_events: report.pruned_events,
        pruned_inbox: report.pruned_inbox,
        backlog: report.backlog,
        ratio: report.ratio_1h,
        processing_rate: report.processing_rate_1h,
        messages_scanned_through: report.messages_scanned_through,
        error,
    }
}

/// Metrics for every count, and one log line: at info when the pass
/// repaired something or failed a step, at debug otherwise.
fn publish(report: &PassReport) {
    let outcome = if report.errors.is_empty() {
        "completed"
    } else {
        "partial"
    };
    metrics::counter!("aplus_reconciler_passes_total", "outcome" => outcome).increment(1);
    metrics::counter!("aplus_reconciler_messages_scanned_total").increment(report.messages_scanned);
    metrics::counter!("aplus_reconciler_missing_events_created_total")
        .increment(report.missing_events_created);
    metrics::counter!("aplus_reconciler_orphans_refired_total").increment(report.orphans_refired);
    metrics::counter!("aplus_reconciler_retries_nudged_total").increment(report.retries_nudged);
    metrics::counter!("aplus_reconciler_pruned_events_total").increment(report.pruned_events);
    metrics::counter!("aplus_reconciler_pruned_inbox_total").increment(report.pruned_inbox);
    metrics::counter!("aplus_reconciler_pruned_runs_total").increment(report.pruned_runs);
    metrics::gauge!("aplus_reconciler_backlog").set(report.backlog as f64);
    metrics::gauge!("aplus_reconciler_dead_events").set(report.dead_events as f64);
    // No pending event is an age of zero: the alert compares with a bound.
    metrics::gauge!("aplus_reconciler_oldest_pending_age_seconds")
        .set(report.oldest_pending_secs.unwrap_or(0.0));
    metrics::gauge!("aplus_reconciler_retries_due").set(report.retries_due as f64);
    if let Some(usage) = report.notification_queue_usage {
        metrics::gauge!("aplus_reconciler_notification_queue_usage").set(usage);
    }
    metrics::gauge!("aplus_reconciler_stale_listeners").set(report.stale_listeners as f64);
    if let Some(watermark) = report.watermark {
        metrics::gauge!("aplus_reconciler_watermark").set(watermark as f64);
    }
    if let Some(ratio) = report.ratio_1h {
        metrics::gauge!("aplus_reconciler_event_message_ratio_1h").set(ratio);
    }
    if let Some(rate) = report.processing_rate_1h {
        metrics::gauge!("aplus_reconciler_processing_rate_1h").set(rate);
    }
    metrics::gauge!("aplus_reconciler_scan_complete").set(if report.scan_complete {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("aplus_reconciler_last_pass_timestamp_seconds")
        .set(report.started_at.timestamp() as f64);
    metrics::histogram!("aplus_reconciler_pass_duration_seconds")
        .record(report.duration.as_secs_f64());

    if !report.errors.is_empty() {
        tracing::warn!(
            failed_steps = report.errors.len(),
            missing_events_created = report.missing_events_created,
            orphans_refired = report.orphans_refired,
            pruned_events = report.pruned_events,
            "reconciler pass finished with failed steps"
        );
    } else if report.repaired_anything() {
        tracing::info!(
            missing_events_created = report.missing_events_created,
            orphans_refired = report.orphans_refired,
            retries_nudged = report.retries_nudged,
            pruned_events = report.pruned_events,
            pruned_inbox = report.pruned_inbox,
            stale_listeners_ended = report.stale_listeners_ended,
            backlog = report.backlog,
            dead_events = report.dead_events,
            duration_ms = report.duration.as_millis() as u64,
            "reconciler pass repaired the pipeline"
        );
    } else {
        tracing::debug!(
            messages_scanned = report.messages_scanned,
            backlog = report.backlog,
            dead_events = report.dead_events,
            duration_ms = report.duration.as_millis() as u64,
            "reconciler pass found nothing to repair"
        );
    }
}
