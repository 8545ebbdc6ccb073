//! Reading history: pages of `GET /channels/{id}/messages?after=`, each
//! stored in ascending order as one transaction, and the edits and deletes
//! it reveals applied.

use std::collections::HashSet;

use outbox::record::{NewMessage, Recorded};
use serde_json::Value;
use serenity::all::Message;

use super::changes::changes;
use super::{BackfillError, BackfillReport, Backfiller, Pass};
use crate::convert::{self, Update};
use crate::ingest::{Applied, Write};
use crate::reads;
use crate::stats::Rejection;

/// Messages per history page (Discord's maximum).
pub const PAGE_SIZE: u8 = 100;

/// A history page, read.
struct Page {
    /// Its messages that may be stored, ascending.
    rows: Vec<NewMessage>,
    /// The largest id in the page, rejected messages included, so the
    /// cursor moves past them.
    max_id: u64,
    /// Every id the page listed, rejected ones included: what Discord still
    /// has in the page's range.
    listed: HashSet<i64>,
}

impl Backfiller {
    /// Pages history from `pass.start` until a page comes back short.
    pub(super) async fn pages_after(
        &self,
        channel_id: u64,
        pass: Pass,
        guild_id: Option<u64>,
    ) -> Result<BackfillReport, BackfillError> {
        let start = pass.start;
        let mut report = BackfillReport {
            started_after: start,
            caught_up_to: start,
            ..BackfillReport::default()
        };
        let mut after = start;
        loop {
            if pass.yield_to_backfill {
                self.backfills_idle().await;
            }
            let page = self
                .rest
                .messages_after(channel_id, after, PAGE_SIZE)
                .await?;
            report.pages += 1;
            if page.is_empty() {
                if pass.known_up_to > after {
                    // History ends here: a stored message known before the
                    // first page and above the cursor is gone from Discord.
                    let (edits, deletes) = self
                        .apply_changes(
                            channel_id,
                            after,
                            pass.known_up_to,
                            &HashSet::new(),
                            Vec::new(),
                        )
                        .await?;
                    report.edits += edits;
                    report.deletes += deletes;
                    report.changes += edits + deletes;
                }
                self.stats.backfill_page();
                break;
            }
            let full = page.len() >= usize::from(PAGE_SIZE);
            report.seen += page.len() as u64;
            self.stats.received(pass.source, page.len() as u64);
            let Page {
                rows,
                max_id,
                listed,
            } = self.rows(page, guild_id);
            let edited: Vec<Update> = rows
                .iter()
                .filter(|row| row.edited_at.is_some())
                .map(convert::edit_of)
                .collect();
            for id in &listed {
                let hour =
                    convert::snowflake_unix_millis(u64::try_from(*id).unwrap_or(0)) / 1000 / 3600
                        * 3600;
                *report.listed_by_hour.entry(hour).or_default() += 1;
            }
            if !rows.is_empty() {
                let applied = self
                    .writer
                    .write_now(&Write::Many {
                        messages: rows,
                        source: pass.source,
                    })
                    .await?;
                if let Applied::Many { recorded, .. } = applied {
                    for (id, recorded) in &recorded {
                        if matches!(recorded, Recorded::Stored { .. }) {
                            report.stored += 1;
                            if u64::try_from(*id).is_ok_and(|id| id < pass.settled_before) {
                                report.missing += 1;
                            }
                        }
                    }
                }
            }
            // The last page of a sweep reaches the end of history: the range
            // it speaks for extends to every message stored before it began.
            let up_to = if full {
                max_id
            } else {
                max_id.max(pass.known_up_to)
            };
            if up_to > after {
                let (edits, deletes) = self
                    .apply_changes(channel_id, after, up_to, &listed, edited)
                    .await?;
                report.edits += edits;
                report.deletes += deletes;
                report.changes += edits + deletes;
            }
            self.stats.backfill_page();
            if max_id <= after {
                // No progress (a page of ids not after the cursor): stop
                // rather than loop on the same page.
                break;
            }
            after = max_id;
            report.caught_up_to = after;
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Applies what changed, within the id range `(after, up_to]` a page
    /// covered, to messages stored before (see [`changes`]). Returns how
    /// many edits and deletes were applied.
    async fn apply_changes(
        &self,
        channel_id: u64,
        after: u64,
        up_to: u64,
        listed: &HashSet<i64>,
        edited: Vec<Update>,
    ) -> Result<(u64, u64), BackfillError> {
        let (Ok(channel), Ok(after), Ok(up_to)) = (
            i64::try_from(channel_id),
            i64::try_from(after),
            i64::try_from(up_to),
        ) else {
            return Ok((0, 0));
        };
        let stored = reads::messages_in_range(&self.db, channel, after, up_to)
            .await
            .map_err(|e| self.database_failed(e))?;
        let (mut edits, mut deletes) = (0, 0);
        for write in changes(channel, &stored, listed, edited) {
            self.writer.write_now(&write).await?;
            if matches!(write, Write::Delete { .. }) {
                deletes += 1;
                self.stats.history_change("delete");
            } else {
                edits += 1;
                self.stats.history_change("edit");
            }
        }
        if edits + deletes > 0 {
            tracing::info!(
                channel_id,
                changes = edits + deletes,
                "applied edits and deletes found in history"
            );
        }
        Ok((edits, deletes))
    }

    /// Converts a page into rows, ascending, counting what is rejected.
    fn rows(&self, page: Vec<Value>, guild_id: Option<u64>) -> Page {
        let mut max_id = 0;
        let mut listed = HashSet::with_capacity(page.len());
        let mut rows = Vec::with_capacity(page.len());
        for raw in page {
            if let Some(id) = raw
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
            {
                max_id = max_id.max(id);
                if let Ok(id) = i64::try_from(id) {
                    listed.insert(id);
                }
            }
            let message = match serde_json::from_value::<Message>(raw.clone()) {
                Ok(message) => message,
                Err(error) => {
                    self.stats.rejected(Rejection::Undecodable);
                    let message_id = raw.get("id").and_then(Value::as_str).unwrap_or("?");
                    tracing::warn!(message_id, %error, "history message does not decode; skipped");
                    continue;
                }
            };
            let row = convert::check_author(&message, self.settings.keep_bot_messages)
                .and_then(|()| convert::new_message(&message, raw, guild_id));
            match row {
                Ok(row) => rows.push(row),
                Err(reason) => {
                    self.stats.rejected(reason);
                    if reason == Rejection::SnowflakeOutOfRange {
                        tracing::warn!(message_id = message.id.get(), %reason, "history message rejected");
                    }
                }
            }
        }
        rows.sort_by_key(|r| r.id);
        Page {
            rows,
            max_id,
            listed,
        }
    }
}
