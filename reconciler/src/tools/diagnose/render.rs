//! The `diagnose` screen: the verdict line, the facts, the notes and the
//! next commands; and the headline of a healthy pipeline.

use super::Diagnosis;
use crate::format;
use crate::snapshot::Snapshot;

impl Diagnosis {
    /// The human-readable screen.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.headline);
        out.push('\n');
        if let Some(error) = &self.error {
            out.push_str(&format!("\n  Error        {error}\n"));
        }
        if let Some(s) = &self.snapshot {
            out.push('\n');
            for (label, value) in facts(s) {
                out.push_str(&format!("  {label:<12} {value}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("  Note: {note}\n"));
            }
        }
        if !self.next_commands.is_empty() {
            out.push_str("\nNext:\n");
            for (i, command) in self.next_commands.iter().enumerate() {
                out.push_str(&format!("  {}. {command}\n", i + 1));
            }
        }
        out
    }
}

/// The verdict line when nothing is wrong: what the last hour looked like.
pub(super) fn healthy_headline(s: &Snapshot) -> String {
    if s.messages_1h == 0 && s.events_1h == 0 {
        let last = match s.last_message_at {
            Some(at) => format!("last message {}", format::ago(at, s.observed_at)),
            None => "no message stored yet".to_owned(),
        };
        return format!("Healthy: no messages in the last hour; {last}, nothing waiting");
    }
    let messages = format::counted(s.messages_1h, "message", "messages");
    if s.processed_1h == s.events_1h {
        match s.max_latency_1h_secs {
            Some(max) => format!(
                "Healthy: {messages} in the last hour, all processed within {}",
                format::seconds(max)
            ),
            None => format!("Healthy: {messages} in the last hour, all processed"),
        }
    } else {
        format!(
            "Healthy: {messages} in the last hour, {} of {} events processed, the rest in flight",
            format::count(s.processed_1h),
            format::count(s.events_1h)
        )
    }
}

/// The facts, one labelled line each.
pub(crate) fn facts(s: &Snapshot) -> Vec<(&'static str, String)> {
    let last_message = match s.last_message_at {
        Some(at) => format!("last one {}", format::ago(at, s.observed_at)),
        None => "none stored yet".to_owned(),
    };
    let processing = if s.events_1h == 0 {
        "no events in the last hour".to_owned()
    } else {
        let mut text = format!(
            "{} of the last hour's {} processed",
            format::percent(s.processing_rate_1h.unwrap_or(1.0)),
            format::counted(s.events_1h, "event", "events")
        );
        if let (Some(p50), Some(p95)) = (s.p50_latency_1h_secs, s.p95_latency_1h_secs) {
            text.push_str(&format!(
                "; p50 {}, p95 {}",
                format::seconds(p50),
                format::seconds(p95)
            ));
        }
        text
    };
    let backlog = if s.backlog == 0 {
        "nothing waiting".to_owned()
    } else {
        let mut text = format!(
            "{} waiting ({} unclaimed, {} failed awaiting retry)",
            format::count(s.backlog),
            format::count(s.unclaimed_events),
            format::count(s.failed_events)
        );
        if let Some(age) = s.oldest_pending_secs {
            text.push_str(&format!("; oldest unclaimed {}", format::seconds(age)));
        }
        text
    };
    let listener = if s.listener_connections > 0 {
        format!(
            "{} LISTEN \"events\"",
            format::counted(s.listener_connections, "session", "sessions")
        )
    } else if s.sees_all_sessions {
        "none: no session is listening on \"events\"".to_owned()
    } else {
        "unknown: this role cannot see other roles' sessions".to_owned()
    };
    let queue = if s.stale_listeners.is_empty() {
        format!(
            "{} used; no worker LISTEN session silent for more than {}",
            format::percent(s.notification_queue_usage),
            format::seconds(s.listener_stale_after_secs)
        )
    } else {
        format!(
            "{} used; {} silent for more than {}",
            format::percent(s.notification_queue_usage),
            format::counted(
                s.stale_listeners.len() as u64,
                "worker LISTEN session",
                "worker LISTEN sessions"
            ),
            format::seconds(s.listener_stale_after_secs)
        )
    };
    let reconciler = match &s.last_run {
        None => "never run".to_owned(),
        Some(run) => {
            let when = run
                .finished_at
                .map(|f| format::ago(f, s.observed_at))
                .unwrap_or_else(|| "at an unknown time".to_owned());
            let outcome = match &run.error {
                None => "every step succeeded".to_owned(),
                Some(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
            };
            format!("last pass {when} by {}, {outcome}", run.instance)
        }
    };
    vec![
        (
            "Messages",
            format!(
                "{} in the last hour, {} in the last day; {last_message}",
                format::count(s.messages_1h),
                format::count(s.messages_24h)
            ),
        ),
        (
            "Events",
            format!(
                "{} message.created in the last hour (ratio {}), {} in the last day (ratio {})",
                format::count(s.created_events_1h),
                format::ratio(s.ratio_1h),
                format::count(s.created_events_24h),
                format::ratio(s.ratio_24h)
            ),
        ),
        ("Processing", processing),
        ("Backlog", backlog),
        (
            "Dead",
            if s.dead_events == 0 {
                "none".to_owned()
            } else {
                format::counted(s.dead_events, "event", "events")
            },
        ),
        ("Listener", listener),
        ("Notify queue", queue),
        ("Reconciler", reconciler),
    ]
}
