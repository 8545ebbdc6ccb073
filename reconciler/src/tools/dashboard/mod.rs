//! A small read-only dashboard: `/` (HTML, refreshes itself) and
//! `/api/health` (the `diagnose --json` document).
//!
//! Plain server-rendered HTML with no script: it works in any browser, over
//! an SSH tunnel, and with JavaScript disabled. The charts are inline SVG
//! ([`charts`]) over the last 24 hours ([`board`]); the
//! latest trading day's setups come with the messages behind them, which are
//! user input: every value is escaped, and the `Content-Security-Policy`
//! allows no script at all, so a `<script>` in a Discord message can only
//! ever show as text. `/api/health` answers 503 when the verdict is
//! unhealthy, so a plain HTTP check can alert on it.
//!
//! Both routes are cached for [`CACHE_FOR`]: however often the page is
//! loaded, the database sees one read per interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

use crate::error::chain;
use crate::format;
use crate::service::runs::{self, RunRecord};
use crate::snapshot;
use crate::tools::diagnose::{Diagnosis, Thresholds, Verdict, facts};

pub mod board;
pub mod charts;

use board::{Day, DeadEvent, History};
use charts::{Series, line_chart};

/// How long a rendered page or health document is served from memory.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// No script, no frames, nothing from elsewhere; inline styles only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Seconds between automatic refreshes of the page.
const REFRESH_SECS: u32 = 10;
/// Reconciler passes listed on the page.
const RUNS_LISTED: i64 = 15;

/// A response kept for [`CACHE_FOR`].
#[derive(Debug, Clone)]
struct Cached {
    at: Instant,
    status: StatusCode,
    body: Arc<str>,
}

type Slot = Arc<Mutex<Option<Cached>>>;

#[derive(Clone)]
struct Dashboard {
    db: DatabaseConnection,
    thresholds: Thresholds,
    page: Slot,
    health: Slot,
}

/// The dashboard's routes, to merge with the service's health routes.
/// Every response carries the `Content-Security-Policy` and
/// `X-Content-Type-Options: nosniff`.
pub fn router(db: DatabaseConnection, thresholds: Thresholds) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/health", get(api_health))
        .with_state(Dashboard {
            db,
            thresholds,
            page: Slot::default(),
            health: Slot::default(),
        })
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The cached response in `slot`, or a fresh one from `make`. The lock is
/// held while making it, so concurrent loads wait for one read.
async fn cached<F, Fut>(slot: &Slot, make: F) -> Cached
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, String)>,
{
    let mut guard = slot.lock().await;
    if let Some(c) = guard.as_ref().filter(|c| c.at.elapsed() < CACHE_FOR) {
        return c.clone();
    }
    let (status, body) = make().await;
    let fresh = Cached {
        at: Instant::now(),
        status,
        body: body.into(),
    };
    *guard = Some(fresh.clone());
    fresh
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
    let c = cached(&state.health, || async {
        let d = diagnose(&state.db, &state.thresholds).await;
        let body = serde_json::to_string(&d).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        (status_of(&d), body)
    })
    .await;
    (
        c.status,
        [(header::CONTENT_TYPE, "application/json")],
        c.body.to_string(),
    )
        .into_response()
}

async fn page(State(state): State<Dashboard>) -> Response {
    let c = cached(&state.page, || async {
        let d = diagnose(&state.db, &state.thresholds).await;
        let mut board = Board::default();
        if d.snapshot.is_some() {
            let db = &state.db;
            board.runs = runs::recent(db, RUNS_LISTED).await.unwrap_or_default();
            match board::history(db).await {
                Ok(h) => board.history = Some(h),
                Err(e) => board.problems.push(format!("history: {}", chain(&e))),
            }
            match board::day(db).await {
                Ok(day) => board.day = day,
                Err(e) => board.problems.push(format!("setups: {}", chain(&e))),
            }
            match board::dead(db).await {
                Ok(dead) => board.dead = dead,
                Err(e) => board.problems.push(format!("dead events: {}", chain(&e))),
            }
        }
        (status_of(&d), render(&d, &board))
    })
    .await;
    (
        c.status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        c.body.to_string(),
    )
        .into_response()
}

/// Everything on the page besides the diagnosis.
#[derive(Debug, Default)]
struct Board {
    runs: Vec<RunRecord>,
    history: Option<History>,
    day: Day,
    dead: Vec<DeadEvent>,
    /// Parts that could not be read, and why.
    problems: Vec<String>,
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
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

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:76rem;padding:0 1rem;color:#1d1d1f}\
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
code.copy{user-select:all;cursor:text;border:1px solid #ddd}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:1rem}\
figure.chart{margin:0;border:1px solid #e5e5e5;border-radius:6px;padding:.5rem}\
figure.chart figcaption{font-weight:600;font-size:.9rem}\
figure.chart svg{width:100%;height:auto}\
p.legend{margin:.2rem 0 0;font-size:.8rem;color:#444}\
p.legend span{margin-right:1rem}\
p.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}\
.long{color:#1b7f3b;font-weight:600}.short{color:#b3261e;font-weight:600}\
.current{color:#1b7f3b;font-weight:600}.superseded,.duplicate,.retracted{color:#777}\
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}\
pre{white-space:pre-wrap;font-size:.85rem;margin:.3rem 0}\
footer{margin-top:2rem;color:#777;font-size:.85rem}";

fn render(d: &Diagnosis, board: &Board) -> String {
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
            html.push_str(&format!(
                "<li><code class=\"copy\">{}</code></li>\n",
                esc(command)
            ));
        }
        html.push_str("</ol>\n");
    }
    for problem in &board.problems {
        html.push_str(&format!("<p>Could not read {}</p>\n", esc(problem)));
    }
    if let Some(history) = &board.history {
        render_charts(&mut html, history);
    }
    render_day(&mut html, &board.day);
    if let Some(s) = &d.snapshot {
        html.push_str("<div class=\"grid2\"><section><h2>Pipeline</h2>\n<table class=\"facts\">\n");
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
            "<tr><th>Observed</th><td>{}</td></tr>\n</table></section>\n",
            esc(&format::timestamp(s.observed_at))
        ));
        html.push_str("<section><h2>Listeners</h2>\n<table class=\"facts\">\n");
        html.push_str(&format!(
            "<tr><th>LISTEN sessions</th><td id=\"listeners\">{}{}</td></tr>\n\
             <tr><th>Notification queue</th><td>{}</td></tr>\n",
            format::count(s.listener_connections),
            if s.sees_all_sessions {
                ""
            } else {
                " (own role only)"
            },
            format::percent(s.notification_queue_usage)
        ));
        if s.stale_listeners.is_empty() {
            html.push_str("<tr><th>Stale</th><td>none</td></tr>\n");
        }
        for stale in &s.stale_listeners {
            html.push_str(&format!(
                "<tr><th>Stale</th><td>{} (pid {}, {}) silent {}</td></tr>\n",
                esc(&stale.application_name),
                stale.pid,
                esc(stale.client_addr.as_deref().unwrap_or("local socket")),
                esc(&format::seconds(stale.silent_secs))
            ));
        }
        html.push_str("</table>\n");
        if !s.stale_listeners.is_empty() {
            html.push_str(
                "<p><code class=\"copy\">reconciler recover --stale-listeners</code></p>\n",
            );
        }
        html.push_str("</section></div>\n");
    }
    for note in &d.notes {
        html.push_str(&format!("<p>Note: {}</p>\n", esc(note)));
    }
    render_dead(&mut html, &board.dead);
    render_runs(&mut html, d, &board.runs);
    html.push_str(&format!(
        "<footer>Read-only. Refreshes every {REFRESH_SECS} s (data at most {} s old). JSON: <a href=\"/api/health\">/api/health</a>. \
         Metrics: <a href=\"/metrics\">/metrics</a>.</footer>\n</body></html>\n",
        CACHE_FOR.as_secs()
    ));
    html
}

fn render_charts(html: &mut String, history: &History) {
    let series = |f: fn(&board::Bucket) -> Option<f64>| -> Vec<Option<f64>> {
        history.buckets.iter().map(f).collect()
    };
    html.push_str("<h2>Last 24 hours</h2>\n<div class=\"charts\">\n");
    html.push_str(&line_chart(
        "Event/message ratio and processing rate (1 h, per pass)",
        "",
        1.0,
        &[
            Series {
                name: "events per message",
                colour: "#1f77b4",
                values: series(|b| b.ratio),
            },
            Series {
                name: "processed share",
                colour: "#2ca02c",
                values: series(|b| b.rate),
            },
        ],
    ));
    html.push_str(&line_chart(
        "Events processed per minute",
        "",
        1.0,
        &[Series {
            name: "processed/min",
            colour: "#9467bd",
            values: series(|b| b.processed_per_min),
        }],
    ));
    html.push_str(&line_chart(
        "Latency, commit to processed",
        " s",
        0.1,
        &[
            Series {
                name: "p50",
                colour: "#17becf",
                values: series(|b| b.p50),
            },
            Series {
                name: "p95",
                colour: "#d62728",
                values: series(|b| b.p95),
            },
        ],
    ));
    html.push_str(&line_chart(
        "Backlog (max per half hour)",
        "",
        1.0,
        &[Series {
            name: "backlog",
            colour: "#ff7f0e",
            values: series(|b| b.backlog),
        }],
    ));
    html.push_str("</div>\n");
}

fn render_day(html: &mut String, day: &Day) {
    let Some(trading_day) = day.trading_day else {
        html.push_str(
            "<h2>Setups</h2>\n<p id=\"no-setups\">No A+ message has been parsed yet.</p>\n",
        );
        return;
    };
    html.push_str(&format!(
        "<h2>Setups for {}</h2>\n<table id=\"setups\">\n<tr><th>ticker</th><th>bias</th><th>setup</th>\
         <th>direction</th><th>trigger / zone</th><th>targets</th><th class=\"n\">message</th></tr>\n",
        esc(&trading_day.format("%A %Y-%m-%d").to_string())
    ));
    let mut last_ticker = "";
    for s in &day.setups {
        let first = s.ticker != last_ticker;
        last_ticker = &s.ticker;
        let trigger = if s.trigger_low == s.trigger_high {
            format!("at {}", s.trigger_low)
        } else {
            format!("{} to {}", s.trigger_low, s.trigger_high)
        };
        html.push_str(&format!(
            "<tr><th>{}</th><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>\n",
            if first { esc(&s.ticker) } else { String::new() },
            if first { esc(s.bias.as_deref().unwrap_or("")) } else { String::new() },
            esc(&s.label),
            if s.direction == "long" { "long" } else { "short" },
            esc(&s.direction),
            esc(&trigger),
            esc(&s.targets),
            s.message_id
        ));
    }
    html.push_str("</table>\n<h2>Messages for the day</h2>\n<table id=\"messages\">\n<tr><th>posted</th>\
                   <th>author</th><th>status</th><th class=\"n\">setups</th><th class=\"n\">message</th><th>text</th></tr>\n");
    for m in &day.messages {
        let status = match (m.status.as_str(), m.superseded_by) {
            ("current", _) => "stands for the day".to_owned(),
            ("superseded", Some(by)) => format!("superseded by {by}"),
            (other, _) => other.to_owned(),
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td><details><summary>{}</summary><pre>{}</pre></details></td></tr>\n",
            esc(&format::timestamp(m.sent_at)),
            esc(&m.author),
            esc(&m.status),
            esc(&status),
            m.setup_count,
            m.message_id,
            esc(&m.excerpt),
            esc(&m.content)
        ));
    }
    html.push_str("</table>\n");
}

fn render_dead(html: &mut String, dead: &[DeadEvent]) {
    if dead.is_empty() {
        return;
    }
    html.push_str("<h2>Dead events</h2>\n<p>Fix the cause first (<code class=\"copy\">reconciler audit --since 24h</code>), \
                   check with <code>--dry-run</code>, then replay:</p>\n<table id=\"dead\">\n<tr><th>event</th>\
                   <th class=\"n\">message</th><th>kind</th><th class=\"n\">attempts</th><th>last error</th><th>recover</th></tr>\n");
    for e in dead {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td><code class=\"copy\">{}</code></td></tr>\n",
            esc(&e.event_id),
            e.message_id.map(|m| m.to_string()).unwrap_or_default(),
            esc(&e.kind),
            e.attempts,
            esc(e.last_error.as_deref().unwrap_or("")),
            esc(&board::recover_command(e.first_seen_secs))
        ));
    }
    html.push_str("</table>\n");
}

fn render_runs(html: &mut String, d: &Diagnosis, runs: &[RunRecord]) {
    if runs.is_empty() {
        return;
    }
    html.push_str(
        "<h2>Recent reconciler passes</h2>\n<table id=\"runs\">\n<tr><th>finished</th><th>instance</th>\
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_in_the_page() {
        let d = Diagnosis::unreachable("<script>alert('x')</script> & co".to_owned());
        let html = render(&d, &Board::default());
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("class=\"unhealthy\""));
    }

    #[test]
    fn dead_events_come_with_a_recover_command_and_escaped_errors() {
        let d = Diagnosis::unreachable("down".to_owned());
        let board = Board {
            dead: vec![DeadEvent {
                event_id: "0191-dead".to_owned(),
                message_id: Some(42),
                kind: "message.created".to_owned(),
                attempts: 8,
                first_seen_secs: 600.0,
                last_error: Some("<b>bad</b> row".to_owned()),
            }],
            ..Board::default()
        };
        let html = render(&d, &board);
        assert!(html.contains("<h2>Dead events</h2>"), "{html}");
        assert!(
            html.contains("<code class=\"copy\">reconciler recover --dead --since 11m</code>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt; row"), "{html}");
        assert!(html.contains("id=\"no-setups\""), "{html}");
    }
}
