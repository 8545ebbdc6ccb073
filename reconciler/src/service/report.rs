//! The human-readable report of one pass (`reconciler once`).

use crate::format;
use crate::service::pass::{PassOutcome, PassReport};

impl PassOutcome {
    /// What the pass did, in a few lines.
    pub fn render(&self) -> String {
        match self {
            PassOutcome::Skipped => {
                "Skipped: another reconciler is running a pass right now (it holds the lock). Nothing was done.\n"
                    .to_owned()
            }
            PassOutcome::Completed(report) => render(report),
        }
    }
}

fn render(r: &PassReport) -> String {
    let headline = if !r.errors.is_empty() {
        format!(
            "Pass finished with {} in {}.",
            format::counted(r.errors.len() as u64, "failed step", "failed steps"),
            format::duration(r.duration)
        )
    } else if r.repaired_anything() {
        format!(
            "Pass repaired the pipeline in {}.",
            format::duration(r.duration)
        )
    } else {
        format!(
            "Pass found nothing to repair ({}).",
            format::duration(r.duration)
        )
    };
    let scan = match (r.scan_complete, r.messages_scanned_through) {
        (true, _) => "up to date".to_owned(),
        (false, Some(t)) => format!("reached {}; the next pass resumes", format::timestamp(t)),
        (false, None) => "did not run".to_owned(),
    };
    let mut rows: Vec<(&str, String)> = vec![
        (
            "Missing events",
            format!(
                "{} written ({} scanned, {scan})",
                format::count(r.missing_events_created),
                format::counted(r.messages_scanned, "message", "messages")
            ),
        ),
        (
            "Orphans",
            format!(
                "{} re-fired, {} nudged",
                format::count(r.orphans_refired),
                format::counted(r.retries_nudged, "due retry", "due retries")
            ),
        ),
        (
            "Backlog",
            format!(
                "{} waiting; {} due; {} dead",
                format::count(r.backlog),
                format::counted(r.retries_due, "retry", "retries"),
                format::count(r.dead_events)
            ),
        ),
        (
            "Pruned",
            format!(
                "{} and {} past the retention",
                format::counted(r.pruned_events, "event", "events"),
                format::counted(r.pruned_inbox, "inbox row", "inbox rows")
            ),
        ),
        (
            "Last hour",
            format!(
                "ratio {}, {} processed",
                format::ratio(r.ratio_1h),
                r.processing_rate_1h
                    .map(format::percent)
                    .unwrap_or_else(|| "n/a".to_owned())
            ),
        ),
    ];
    if let Some(usage) = r.notification_queue_usage {
        rows.push((
            "Listeners",
            format!(
                "notification queue {} used; {} stale, {} ended",
                format::percent(usage),
                format::count(r.stale_listeners),
                format::count(r.stale_listeners_ended)
            ),
        ));
    }
    if let Some(w) = r.watermark {
        rows.push(("Watermark", format!("transaction {}", format::count(w))));
    }
    let mut out = format!("{headline}\n\n");
    for (label, value) in rows {
        out.push_str(&format!("  {label:<15} {value}\n"));
    }
    for e in &r.errors {
        out.push_str(&format!("  Failed step     {}: {}\n", e.step, e.error));
    }
    match r.run_id {
        Some(id) => out.push_str(&format!(
            "\nRecorded as run {id} by {} in reconciler_runs.\n",
            r.instance
        )),
        None => out.push_str("\nThe run could not be recorded.\n"),
    }
    out
}
