//! The invariants of the reliability table, what they count and how they
//! are judged: I0 nothing lost and nothing unexpected, I1 one
//! `message.created` event per message, I2 no event without its message, I3
//! no effect applied twice, I4 nothing left unprocessed after the drain.
//!
//! [`read`] takes the counts behind them in one statement, so that they all
//! come from one snapshot: a message and its event either both show or
//! neither does. The sampler reads them every second, the checker once at
//! the end; [`common_checks`] judges every scenario's facts against them.

use sea_orm::sqlx::postgres::{PgConnection, PgRow};
use sea_orm::sqlx::{self, Row as _};
use serde::Serialize;

use crate::facts::Facts;
use crate::scenarios::Scenario;
use crate::supervisor::Ended;
use crate::timeline::secs;
use crate::verdict::{Checks, Kind};

/// One consistent look at the pipeline's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows in `messages`.
    pub messages: i64,
    /// `message.created` events.
    pub created_events: i64,
    /// Messages without a `message.created` event (I1).
    pub messages_without_event: i64,
    /// Messages with more than one `message.created` event (I1, I2).
    pub messages_with_duplicate_events: i64,
    /// Events whose message is not stored (I2).
    pub events_without_message: i64,
    /// Events without a processed inbox row.
    pub unprocessed: i64,
    /// Inbox rows waiting for a retry.
    pub failed: i64,
    /// Inbox rows that gave up.
    pub dead: i64,
    /// Processed inbox rows.
    pub processed: i64,
}

impl Counts {
    /// I1 and I2 as one list of broken promises (empty when they hold).
    pub fn i1_i2_violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        if self.messages != self.created_events {
            broken.push(format!(
                "I1: {} messages but {} message.created events",
                self.messages, self.created_events
            ));
        }
        if self.messages_without_event > 0 {
            broken.push(format!(
                "I1: {} messages have no message.created event",
                self.messages_without_event
            ));
        }
        if self.messages_with_duplicate_events > 0 {
            broken.push(format!(
                "I2: {} messages have more than one message.created event",
                self.messages_with_duplicate_events
            ));
        }
        if self.events_without_message > 0 {
            broken.push(format!(
                "I2: {} events have no message",
                self.events_without_message
            ));
        }
        broken
    }
}

const COUNTS: &str = r#"
SELECT
  (SELECT count(*) FROM messages) AS messages,
  (SELECT count(*) FROM events WHERE kind = 'message.created') AS created_events,
  (SELECT count(*) FROM messages m
    WHERE NOT EXISTS (SELECT 1 FROM events e
                      WHERE e.message_id = m.id AND e.kind = 'message.created'))
    AS messages_without_event,
  (SELECT count(*) FROM (SELECT message_id FROM events WHERE kind = 'message.created'
                         GROUP BY message_id HAVING count(*) > 1) d)
    AS messages_with_duplicate_events,
  (SELECT count(*) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id))
    AS events_without_message,
  (SELECT count(*) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM inbox i
                      WHERE i.event_id = e.id AND i.status = 'processed'))
    AS unprocessed,
  (SELECT count(*) FROM inbox WHERE status = 'failed') AS failed,
  (SELECT count(*) FROM inbox WHERE status = 'dead') AS dead,
  (SELECT count(*) FROM inbox WHERE status = 'processed') AS processed
"#;

/// Reads the counts.
///
/// # Errors
/// Any database error (the server may be down on purpose).
pub async fn read(conn: &mut PgConnection) -> Result<Counts, sqlx::Error> {
    let row = sqlx::query(COUNTS).fetch_one(conn).await?;
    Counts::from_row(&row)
}

impl Counts {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            messages: row.try_get("messages")?,
            created_events: row.try_get("created_events")?,
            messages_without_event: row.try_get("messages_without_event")?,
            messages_with_duplicate_events: row.try_get("messages_with_duplicate_events")?,
            events_without_message: row.try_get("events_without_message")?,
            unprocessed: row.try_get("unprocessed")?,
            failed: row.try_get("failed")?,
            dead: row.try_get("dead")?,
            processed: row.try_get("processed")?,
        })
    }
}

/// The checks every scenario must pass: the invariants, against ground truth.
pub(crate) fn common_checks(scenario: Scenario, facts: &Facts<'_>, checks: &mut Checks) {
    let s = &facts.state;
    let c = &s.comparison;
    checks.add(
        Kind::Safety,
        "I0 no loss",
        c.lost.is_empty(),
        format!(
            "{} emitted, {} stored, {} lost{}",
            s.emitted,
            s.counts.messages,
            c.lost.len(),
            sample_ids(&c.lost)
        ),
    );
    checks.add(
        Kind::Safety,
        "I0 nothing unexpected",
        c.unexpected.is_empty() && c.duplicated.is_empty(),
        format!(
            "{} unexpected{}, {} duplicated",
            c.unexpected.len(),
            sample_ids(&c.unexpected),
            c.duplicated.len()
        ),
    );
    let changes = &s.changes;
    checks.add(
        Kind::Safety,
        "I0 edits and deletes applied",
        changes.all_applied(),
        format!(
            "{} edited messages, {} with other text than Discord's{}; {} deleted, {} not marked deleted{}",
            changes.edited,
            changes.edit_missed.len(),
            sample_ids(&changes.edit_missed),
            changes.deleted,
            changes.delete_missed.len(),
            sample_ids(&changes.delete_missed)
        ),
    );
    let violations = &facts.samples.violations;
    let good = facts.samples.taken - facts.samples.failed;
    checks.add(
        Kind::Safety,
        "I1/I2 at every sample",
        violations.is_empty() && good > 0,
        match violations.first() {
            None => format!(
                "{good} samples held ({} could not be taken)",
                facts.samples.failed
            ),
            Some(v) => format!(
                "{} violations; first at {:.1}s: {}",
                violations.len(),
                v.at_s,
                v.what
            ),
        },
    );
    let final_broken = s.counts.i1_i2_violations();
    checks.add(
        Kind::Safety,
        "I1/I2 at the end",
        final_broken.is_empty(),
        if final_broken.is_empty() {
            format!(
                "{} messages, {} message.created events",
                s.counts.messages, s.counts.created_events
            )
        } else {
            final_broken.join("; ")
        },
    );
    let e = &s.effects;
    checks.add(
        Kind::Safety,
        "I3 no effect applied twice",
        e.applied_twice == 0 && e.without_inbox == 0 && e.duplicate_setups == 0,
        format!(
            "{} effects committed: {} events applied twice, {} without their inbox row, {} duplicate setups",
            e.recorded, e.applied_twice, e.without_inbox, e.duplicate_setups
        ),
    );
    checks.add(
        Kind::Liveness,
        "I3 every processed event has its effect",
        e.processed_without_effect == 0 && e.messages_without_parse == 0,
        format!(
            "{} processed events without an effect, {} messages without a parse",
            e.processed_without_effect, e.messages_without_parse
        ),
    );
    checks.add(
        Kind::Liveness,
        "I4 nothing left unprocessed",
        facts.drain.is_some() && s.counts.unprocessed == 0 && s.counts.dead == 0,
        format!(
            "{} unprocessed, {} failed, {} dead; drain {}",
            s.counts.unprocessed,
            s.counts.failed,
            s.counts.dead,
            match facts.drain {
                Some(d) => format!("took {:.1}s", secs(d)),
                None => format!(
                    "did not finish within {:.0}s",
                    secs(facts.settings.bound(facts.settings.drain_timeout))
                ),
            }
        ),
    );
    let unexpected_exits: Vec<String> = facts
        .services
        .iter()
        .flat_map(|service| {
            service
                .process
                .exits()
                .into_iter()
                .filter(|exit| !scenario.expected_exit(service, exit))
                // The final stop is SIGTERM and a clean exit; everything before it counts.
                .filter(|exit| exit.at < facts.load_stopped_at || exit.ended != Ended::Code(0))
                .map(|exit| {
                    format!(
                        "{} {:?} at {:.1}s after {:.1}s up",
                        service.name,
                        exit.ended,
                        secs(exit.at),
                        secs(exit.uptime)
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    checks.add(
        Kind::Liveness,
        "no crash",
        unexpected_exits.is_empty(),
        if unexpected_exits.is_empty() {
            "no service exited unless the suite made it".to_owned()
        } else {
            unexpected_exits.join("; ")
        },
    );
}

/// Up to five ids, for a check's detail.
fn sample_ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = ids.iter().take(5).map(u64::to_string).collect();
    format!(
        " (e.g. {}{})",
        shown.join(", "),
        if ids.len() > 5 { ", ..." } else { "" }
    )
}
