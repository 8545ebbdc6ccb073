//! `relisten`: ask every running worker to re-establish its LISTEN
//! connection, and watch them do it.
//!
//! The request is a NOTIFY on the control channel (`outbox::notify::relisten`);
//! each listener drops its connection, connects again, LISTENs and catches up.
//! Progress is read from `pg_stat_activity`: the sessions listening before
//! the request are gone and as many are listening again. A listener ignores
//! the request within 2 s of its own connect (a guard against floods).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;

use crate::error::Result;
use crate::format;

/// A session whose last statement is `LISTEN "events"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerSession {
    pub pid: i32,
    pub application_name: String,
    pub backend_start: Option<DateTime<Utc>>,
}

/// What `relisten` saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelistenReport {
    /// Listening before the request.
    pub before: Vec<ListenerSession>,
    /// Listening when the command stopped watching.
    pub after: Vec<ListenerSession>,
    /// Sessions of `before` that were replaced.
    pub reconnected: usize,
    /// How long it watched.
    pub waited_secs: f64,
    /// Whether this role can see other roles' sessions.
    pub sees_all_sessions: bool,
}

impl RelistenReport {
    /// True when every listener reconnected (or there was none to ask).
    pub fn all_reconnected(&self) -> bool {
        self.reconnected == self.before.len() && self.after.len() >= self.before.len()
    }
}

/// Lists the sessions listening on `events` in this database.
pub async fn listeners<C: ConnectionTrait>(db: &C) -> Result<Vec<ListenerSession>> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT pid, coalesce(application_name, '') AS application_name, backend_start \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND query = 'LISTEN \"events\"' \
             ORDER BY backend_start, pid",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ListenerSession {
                pid: r.try_get_by("pid")?,
                application_name: r.try_get_by("application_name")?,
                backend_start: r.try_get_by("backend_start")?,
            })
        })
        .collect()
}

/// Sends the request and watches for up to `wait`.
pub async fn run(db: &DatabaseConnection, wait: Duration) -> Result<RelistenReport> {
    let sees_all = db
        .query_one_raw(stmt(
            "SELECT pg_has_role('pg_read_all_stats', 'MEMBER') \
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS sees",
            [],
        ))
        .await?
        .map(|r| r.try_get_by::<Option<bool>, _>("sees"))
        .transpose()?
        .flatten()
        .unwrap_or(false);
    let before = listeners(db).await?;
    // Sent even when no listener is visible: a worker under another role may
    // be listening where this role cannot see it.
    outbox::notify::relisten(db).await?;
    tracing::info!(listeners = before.len(), "relisten requested");
    let started = Instant::now();
    let mut after;
    loop {
        after = listeners(db).await?;
        let replaced = before
            .iter()
            .filter(|b| !after.iter().any(|a| a.pid == b.pid))
            .count();
        if (replaced == before.len() && after.len() >= before.len()) || started.elapsed() >= wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconnected = before
        .iter()
        .filter(|b| !after.iter().any(|a| a.pid == b.pid))
        .count()
        .min(after.len());
    Ok(RelistenReport {
        before,
        after,
        reconnected,
        waited_secs: started.elapsed().as_secs_f64(),
        sees_all_sessions: sees_all,
    })
}

impl RelistenReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let asked = self.before.len() as u64;
        if asked == 0 {
            let mut text =
                "No worker is listening on \"events\"; the request was sent anyway.\n".to_owned();
            if !self.after.is_empty() {
                text.push_str(&format!(
                    "{} listening now.\n",
                    format::counted(self.after.len() as u64, "session is", "sessions are")
                ));
            } else if !self.sees_all_sessions {
                text.push_str("This database role cannot see other roles' sessions (GRANT pg_read_all_stats TO it), so workers may be listening unseen.\n");
            } else {
                text.push_str("\nNext: start the worker: supervisorctl start worker\n");
            }
            return text;
        }
        let mut text = format!(
            "Asked {} to reconnect; {} of {} reconnected within {}.\n",
            format::counted(asked, "listening session", "listening sessions"),
            format::count(self.reconnected as u64),
            format::count(asked),
            format::seconds(self.waited_secs)
        );
        for s in &self.after {
            text.push_str(&format!(
                "  listening: pid {} ({})\n",
                s.pid,
                if s.application_name.is_empty() {
                    "no application name"
                } else {
                    &s.application_name
                }
            ));
        }
        if !self.all_reconnected() {
            text.push_str(
                "\nA worker that does not reconnect is stuck. Next: supervisorctl restart worker\n",
            );
        }
        text
    }
}
