//! A small read-only dashboard: `/` (HTML, refreshes itself) and
//! `/api/health` (the `diagnose --json` document).
//!
//! Plain server-rendered HTML with no script: it works in any browser, over
//! an SSH tunnel, and with JavaScript disabled. Every value is escaped.
//! `/api/health` answers 503 when the verdict is unhealthy, so a plain HTTP
//! check can alert on it.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::DatabaseConnection;

use crate::diagnose::{Diagnosis, Thresholds, Verdict, facts};
use crate::error::chain;
use crate::format;
use crate::runs::{self, RunRecord};
use crate::snapshot;

/// Seconds between automatic refreshes of the page.
const REFRESH_SECS: u32 = 10;
/// Reconciler passes listed on the page.
const RUNS_LISTED: i64 = 15;

#[derive(Clone)]
struct Dashboard {
    db: DatabaseConnection,
    thresholds: Thresholds,
}

/// The dashboard's routes, to merge with the service's health routes.
pub fn router(db: DatabaseConnection, thresholds: Thresholds) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/health", get(api_health))
        .with_state(Dashboard { db, thresholds })
}

/// Reads and judges the pipeline; an unreachable database is a diagnosis too.
pub async fn diagnose(db: &DatabaseConnection, thresholds: &Thresholds) -> Diagnosis {
    match snapshot::read(db, thresholds.grace, thresholds.listener_stale_after).await {
        Ok(s) => Diagnosis::of(s, thresholds),
        Err(e) => Diagnosis::unreachable(chain(&e)),
    }
}

fn status_of(d: &Diagnosis) -> StatusCode {
    if d.verdict == Verdict::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn api_health(State(state): State<Dashboard>) -> Response {
    let d = diagnose(&state.db, &state.thresholds).await;
    (status_of(&d), axum::Json(d)).into_response()
}

async fn page(State(state): State<Dashboard>) -> Response {
    let d = diagnose(&state.db, &state.thresholds).await;
    let runs = if d.snapshot.is_some() {
        runs::recent(&state.db, RUNS_LISTED)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    (
        status_of(&d),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render(&d, &runs),
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.3rem;padding:.7rem 1rem;border-radius:6px;margin:0 0 1.2rem}\
.healthy{background:#e3f4e6;border-left:6px solid #2e7d32}\
.degraded{background:#fff4d6;border-left:6px solid #b26a00}\
.unhealthy{background:#fde4e4;border-left:6px solid #c62828}\
h2{font-size:1.05rem;margin:1.6rem 0 .5rem}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e5e5e5;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
table.facts th{width:9rem;color:#555;font-weight:600}\
code{background:#f3f3f3;padding:.1rem .35rem;border-radius:4px}\
footer{margin-top:2rem;color:#777;font-size:.85rem}";

fn render(d: &Diagnosis, runs: &[RunRecord]) -> String {
    let class = match d.verdict {
        Verdict::Healthy => "healthy",
        Verdict::Degraded => "degraded",
        Verdict::Unhealthy => "unhealthy",
    };
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} - A+ pipeline</title><style>{STYLE}</style></head><body>\n\
         <h1 class=\"{class}\">{}</h1>\n",
        esc(d.verdict.label()),
        esc(&d.headline)
    );
    if let Some(error) = &d.error {
        html.push_str(&format!("<p>{}</p>\n", esc(error)));
    }
    if !d.next_commands.is_empty() {
        html.push_str("<h2>Next</h2>\n<ol>\n");
        for command in &d.next_commands {
            html.push_str(&format!("<li><code>{}</code></li>\n", esc(command)));
        }
        html.push_str("</ol>\n");
    }
    if let Some(s) = &d.snapshot {
        html.push_str("<h2>Pipeline</h2>\n<table class=\"facts\">\n");
        for (label, value) in facts(s) {
            html.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                esc(label),
                esc(&value)
            ));
        }
        if let Some(w) = s.watermark {
            html.push_str(&format!(
                "<tr><th>Watermark</th><td>transaction {}</td></tr>\n",
                format::count(w)
            ));
        }
        html.push_str(&format!(
            "<tr><th>Observed</th><td>{}</td></tr>\n</table>\n",
            esc(&format::timestamp(s.observed_at))
        ));
    }
    for note in &d.notes {
        html.push_str(&format!("<p>Note: {}</p>\n", esc(note)));
    }
    if !runs.is_empty() {
        html.push_str(
            "<h2>Recent reconciler passes</h2>\n<table>\n<tr><th>finished</th><th>instance</th>\
             <th class=\"n\">events created</th><th class=\"n\">re-fired</th>\
             <th class=\"n\">retries due</th><th class=\"n\">dead</th><th class=\"n\">pruned</th>\
             <th class=\"n\">backlog</th><th class=\"n\">ratio</th><th class=\"n\">processed</th>\
             <th>error</th></tr>\n",
        );
        let now = d.snapshot.as_ref().map(|s| s.observed_at);
        for r in runs {
            let finished = match (r.finished_at, now) {
                (Some(f), Some(now)) => format::ago(f, now),
                (Some(f), None) => format::timestamp(f),
                _ => String::new(),
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
                esc(&finished),
                esc(&r.instance),
                format::count(r.missing_events_created),
                format::count(r.orphans_refired),
                format::count(r.retries_due),
                format::count(r.dead_events),
                format::count(r.pruned_events),
                format::count(r.backlog),
                format::ratio(r.ratio),
                r.processing_rate.map(format::percent).unwrap_or_default(),
                esc(r.error.as_deref().unwrap_or(""))
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str(&format!(
        "<footer>Read-only. Refreshes every {REFRESH_SECS} s. JSON: <a href=\"/api/health\">/api/health</a>. \
         Metrics: <a href=\"/metrics\">/metrics</a>.</footer>\n</body></html>\n"
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_in_the_page() {
        let d = Diagnosis::unreachable("<script>alert('x')</script> & co".to_owned());
        let html = render(&d, &[]);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("class=\"unhealthy\""));
    }
}
