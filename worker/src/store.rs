//! Writing parse outcomes, setups and biases, and deciding which message
//! stands for each trading day.
//!
//! Trading-day policy: a byte-identical re-post of an A+ message is a
//! `duplicate` of the first post of that text and adds nothing; among the
//! other A+ messages of a day, ordered by post time, a later message replaces
//! the standing one only if it is longer ("newer and longer wins"). The
//! standing message is `current` and only its setups have `is_current`; the
//! others keep their setups as history. A deleted message is `retracted` and
//! the day is decided again without it.
//!
//! The whole day is decided again from its stored parses each time one of
//! them changes, so the outcome does not depend on the order in which events
//! are processed (a re-post handled before its original still ends up the
//! duplicate). Work on one day is serialised with an advisory lock, so two
//! workers never decide the same day at once.
//!
//! [`apply`] takes a whole batch of messages: a handful of statements
//! whatever its size, and day locks and decisions only for the A+ days it
//! touched.

use chrono::NaiveDate;
use entity::{message_parses, setups, ticker_bias};
use outbox::sql::stmt;
use parser::{ParsedMessage, Warning};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait as _, DatabaseTransaction, DbErr, EntityTrait as _,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It stands for its trading day.
    Current,
    /// An A+ message that another one of its day replaced (or did not replace).
    Superseded,
    /// A byte-identical re-post of an earlier A+ message.
    Duplicate,
    /// Not an A+ message (chatter, other alert formats).
    NotAplus,
    /// Deleted in Discord: its setups no longer count.
    Retracted,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Serialises decisions on these days across workers (the day locks are
/// `outbox::locks`', like every advisory-lock key).
async fn lock_days(txn: &DatabaseTransaction, days: &[NaiveDate]) -> Result<(), DbErr> {
    outbox::locks::lock_days(txn, days)
        .await
        .map_err(|error| match error {
            outbox::OutboxError::Database(error) => error,
            other => DbErr::Custom(other.to_string()),
        })
}

/// A message as the worker reads it, with what an earlier event derived from it.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: i64,
    pub content: String,
    pub embeds: serde_json::Value,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    pub deleted: bool,
    /// The trading day of its stored A+ parse: it has setups and biases, and
    /// that day must be decided again when the message changes.
    pub previous_day: Option<NaiveDate>,
}

/// Reads these messages and their previous parse's day, in one query. Ids
/// that are not stored are missing from the result.
pub async fn read(txn: &DatabaseTransaction, ids: &[i64]) -> Result<Vec<Current>, DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            // A scalar sub-select, not a join: with stale statistics (a
            // table that grew fast) the planner would hash all the parses.
            r#"SELECT m.id, m.content, m.embeds, m.sent_at, m.deleted_at IS NOT NULL AS deleted,
                      (SELECT p.trading_day FROM message_parses p WHERE p.message_id = m.id)
               FROM messages m
               WHERE m.id = ANY($1)"#,
            [ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Current {
                id: r.try_get_by_index(0)?,
                content: r.try_get_by_index(1)?,
                embeds: r.try_get_by_index(2)?,
                sent_at: r.try_get_by_index(3)?,
                deleted: r.try_get_by_index(4)?,
                previous_day: r.try_get_by_index(5)?,
            })
        })
        .collect()
}

/// What to store for one message.
#[derive(Debug)]
pub enum Change {
    /// Its parse (of `text`), replacing whatever an earlier event stored.
    Save { parsed: ParsedMessage, text: String },
    /// It was deleted: its setups stop counting.
    Retract,
}

/// One message's change, with the event it is recorded under.
#[derive(Debug)]
pub struct Item {
    pub message: Current,
    pub event_id: Uuid,
    pub change: Change,
}

impl Item {
    /// The trading day of the new parse, for an A+ message.
    fn day(&self) -> Option<NaiveDate> {
        match &self.change {
            Change::Save { parsed, .. } => parsed.trading_day.filter(|_| parsed.is_aplus()),
            Change::Retract => None,
        }
    }
}

/// Stores a batch of messages' changes set-based, then decides every trading
/// day they touched, and returns what became of each message.
///
/// A handful of statements whatever the batch size: setups and biases are
/// deleted only for messages that had them, days are locked (in one
/// statement, in order) and decided only for the A+ days touched.
pub async fn apply(txn: &DatabaseTransaction, items: &[Item]) -> Result<Vec<Stored>, DbErr> {
    // Setups and biases of an earlier A+ parse are replaced by the new parse;
    // a retracted message keeps its setups as history.
    let replaced: Vec<i64> = items
        .iter()
        .filter(|i| i.message.previous_day.is_some() && matches!(i.change, Change::Save { .. }))
        .map(|i| i.message.id)
        .collect();
    if !replaced.is_empty() {
        txn.execute_raw(stmt(
            "DELETE FROM setups WHERE message_id = ANY($1)",
            [replaced.clone().into()],
        ))
        .await?;
        txn.execute_raw(stmt(
            "DELETE FROM ticker_bias WHERE message_id = ANY($1)",
            [replaced.into()],
        ))
        .await?;
    }

    // Every day whose decision may change: the new A+ day, and the day the
    // message had before (an edit moved it, took it out of A+, or deleted it).
    let mut days: Vec<NaiveDate> = items
        .iter()
        .flat_map(|i| [i.day(), i.message.previous_day])
        .flatten()
        .collect();
    days.sort_unstable();
    days.dedup();
    lock_days(txn, &days).await?;

    let mut setup_rows = Vec::new();
    let mut bias_rows = Vec::new();
    let mut parse_rows = Vec::with_capacity(items.len());
    let mut retracted = Vec::new();
    for item in items {
        let message = &item.message;
        match &item.change {
            Change::Save { parsed, text } => {
                let day = item.day();
                if let Some(day) = day {
                    setup_models(message.id, day, parsed, &mut setup_rows, &mut bias_rows);
                }
                // Provisional for an A+ message: deciding the day sets
                // current, superseded or duplicate.
                let status = if day.is_some() {
                    "superseded"
                } else {
                    "not_aplus"
                };
                parse_rows.push(parse_model(
                    message.id,
                    item.event_id,
                    parsed,
                    text,
                    status,
                )?);
            }
            Change::Retract => {
                let parsed = ParsedMessage::not_aplus(parser::NotAplusReason::Empty, false);
                let mut row = parse_model(
                    message.id,
                    item.event_id,
                    &parsed,
                    &message.content,
                    "retracted",
                )?;
                // Keep the day it had, so the history still says which day
                // it retracted from.
                row.trading_day = Set(message.previous_day);
                row.reason = Set(Some("deleted".to_owned()));
                parse_rows.push(row);
                retracted.push(message.id);
            }
        }
    }
    // A repeated ticker block is merged by the parser, so (message, ticker) is unique.
    if !bias_rows.is_empty() {
        ticker_bias::Entity::insert_many(bias_rows)
            .exec(txn)
            .await?;
    }
    if !setup_rows.is_empty() {
        setups::Entity::insert_many(setup_rows).exec(txn).await?;
    }
    upsert_parses(txn, parse_rows).await?;
    if !retracted.is_empty() {
        txn.execute_raw(stmt(
            "UPDATE setups SET is_current = false WHERE message_id = ANY($1) AND is_current",
            [retracted.into()],
        ))
        .await?;
    }
    for day in &days {
        decide_day(txn, *day).await?;
    }
    statuses(txn, items).await
}

/// What became of each message, in `items` order. Only A+ messages need a
/// read: deciding their day set their status.
async fn statuses(txn: &DatabaseTransaction, items: &[Item]) -> Result<Vec<Stored>, DbErr> {
    let decided: Vec<i64> = items
        .iter()
        .filter(|i| i.day().is_some())
        .map(|i| i.message.id)
        .collect();
    let mut status: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    if !decided.is_empty() {
        for row in txn
            .query_all_raw(stmt(
                "SELECT message_id, status FROM message_parses WHERE message_id = ANY($1)",
                [decided.into()],
            ))
            .await?
        {
            status.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
    }
    Ok(items
        .iter()
        .map(|item| match &item.change {
            Change::Retract => Stored::Retracted,
            Change::Save { .. } if item.day().is_none() => Stored::NotAplus,
            Change::Save { .. } => match status.get(&item.message.id).map(String::as_str) {
                Some("current") => Stored::Current,
                Some("duplicate") => Stored::Duplicate,
                _ => Stored::Superseded,
            },
        })
        .collect())
}

/// The setups and biases of an A+ parse, appended to `setups` and `biases`.
fn setup_models(
    message_id: i64,
    day: NaiveDate,
    parsed: &ParsedMessage,
    setups: &mut Vec<setups::ActiveModel>,
    biases: &mut Vec<ticker_bias::ActiveModel>,
) {
    for block in &parsed.tickers {
        biases.push(ticker_bias::ActiveModel {
            message_id: Set(message_id),
            ticker: Set(block.ticker.clone()),
            trading_day: Set(day),
            bias: Set(block.bias.clone()),
            levels: Set(block.bias_levels.clone()),
        });
        for setup in &block.setups {
            let warning = parsed.warnings.iter().find_map(|w| match w {
                Warning::TargetNotBeyondTrigger {
                    ticker,
                    setup_index,
                    target,
                    ..
                } if *ticker == block.ticker && *setup_index == setup.index => Some(format!(
                    "target {target} is not beyond the trigger in the setup's direction"
                )),
                _ => None,
            });
            setups.push(setups::ActiveModel {
                id: NotSet,
                message_id: Set(message_id),
                trading_day: Set(day),
                ticker: Set(block.ticker.clone()),
                setup_index: Set(i32::try_from(setup.index).unwrap_or(i32::MAX)),
                label: Set(setup.label.as_str().to_owned()),
                direction: Set(setup.direction.as_str().to_owned()),
                strength: Set(setup.strength.map(|s| s.as_str().to_owned())),
                qualifier: Set(setup.qualifier.map(|q| q.as_str().to_owned())),
                trigger_low: Set(setup.trigger_low()),
                trigger_high: Set(setup.trigger_high()),
                targets: Set(setup.targets.clone()),
                raw_line: Set(outbox::sanitize::text(&setup.raw_line).into_owned()),
                warning: Set(warning),
                is_current: Set(false),
                created_at: NotSet,
            });
        }
    }
}

/// A message's parse row, parsed from `text`.
fn parse_model(
    message_id: i64,
    event_id: Uuid,
    parsed: &ParsedMessage,
    text: &str,
    status: &str,
) -> Result<message_parses::ActiveModel, DbErr> {
    let to_json = |value: serde_json::Result<serde_json::Value>| {
        value.map_err(|e| DbErr::Custom(format!("serialising a parse: {e}")))
    };
    Ok(message_parses::ActiveModel {
        message_id: Set(message_id),
        event_id: Set(event_id),
        parser_version: Set(parser::PARSER_VERSION.to_string()),
        is_aplus: Set(parsed.is_aplus()),
        reason: Set(parsed.reason().map(|r| r.as_str().to_owned())),
        trading_day: Set(parsed.trading_day.filter(|_| parsed.is_aplus())),
        trading_day_method: Set(parsed.trading_day_method.map(|m| m.as_str().to_owned())),
        header_variant: Set(parsed.header_variant.map(|v| v.as_str().to_owned())),
        header_tag: Set(parsed.header_tag.clone()),
        is_weekend: Set(parsed.is_weekend),
        mentions_everyone: Set(parsed.mentions_everyone),
        free_text_lines: Set(to_json(serde_json::to_value(&parsed.free_text_lines))?),
        warnings: Set(to_json(serde_json::to_value(&parsed.warnings))?),
        setup_count: Set(i32::try_from(parsed.setup_count()).unwrap_or(i32::MAX)),
        content_sha256: Set(sha256_hex(text)),
        content_length: Set(i32::try_from(text.chars().count()).unwrap_or(i32::MAX)),
        status: Set(status.to_owned()),
        superseded_by: Set(None),
        parsed_at: NotSet,
    })
}

/// Writes parse rows, replacing the earlier parse of each message, in one statement.
async fn upsert_parses(
    txn: &DatabaseTransaction,
    rows: Vec<message_parses::ActiveModel>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    use message_parses::Column as C;
    message_parses::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(C::MessageId)
                .update_columns([
                    C::EventId,
                    C::ParserVersion,
                    C::IsAplus,
                    C::Reason,
                    C::TradingDay,
                    C::TradingDayMethod,
                    C::HeaderVariant,
                    C::HeaderTag,
                    C::IsWeekend,
                    C::MentionsEveryone,
                    C::FreeTextLines,
                    C::Warnings,
                    C::SetupCount,
                    C::ContentSha256,
                    C::ContentLength,
                    C::Status,
                    C::SupersededBy,
                ])
                .value(C::ParsedAt, Expr::current_timestamp())
                .to_owned(),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// Decides which A+ message stands for `day`: the first posted, replaced by
/// each later one that is longer than the one standing.
///
/// Only rows whose decision changes are written, so a day with many posts
/// (a flood, a bot re-posting) costs one read of the day per event, not a
/// rewrite of it.
async fn decide_day(txn: &DatabaseTransaction, day: NaiveDate) -> Result<(), DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            r#"SELECT p.message_id, p.content_length, p.status, p.superseded_by, p.content_sha256
               FROM message_parses p
               JOIN messages m ON m.id = p.message_id
               WHERE p.trading_day = $1 AND p.is_aplus
                 AND p.status IN ('current', 'superseded', 'duplicate')
               ORDER BY m.sent_at, m.id"#,
            [day.into()],
        ))
        .await?;
    struct Row {
        id: i64,
        length: i32,
        status: String,
        superseded_by: Option<i64>,
        sha: String,
    }
    let rows = rows
        .iter()
        .map(|r| {
            Ok(Row {
                id: r.try_get_by_index(0)?,
                length: r.try_get_by_index(1)?,
                status: r.try_get_by_index(2)?,
                superseded_by: r.try_get_by_index(3)?,
                sha: r.try_get_by_index(4)?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;

    // Fold in post order. A text seen before is a duplicate of its first
    // post. Among the others, `decided[i]` says who took over from row i, or
    // who stood when row i was posted and was not displaced by it.
    let mut first_post: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    let mut decided: Vec<(&str, Option<i64>)> = vec![("superseded", None); rows.len()];
    let mut standing: Option<usize> = None;
    for (i, row) in rows.iter().enumerate() {
        if let Some(&original) = first_post.get(row.sha.as_str()) {
            decided[i] = ("duplicate", Some(original));
            continue;
        }
        first_post.insert(&row.sha, row.id);
        match standing {
            Some(s) if row.length <= rows[s].length => decided[i].1 = Some(rows[s].id),
            Some(s) => {
                decided[s].1 = Some(row.id);
                standing = Some(i);
            }
            None => standing = Some(i),
        }
    }
    let Some(current_index) = standing else {
        return Ok(());
    };
    decided[current_index] = ("current", None);
    let current = rows[current_index].id;

    let mut changed_ids = Vec::new();
    let mut changed_status = Vec::new();
    let mut changed_by = Vec::new();
    let mut setups_to_check = vec![current];
    for (row, (status, by)) in rows.iter().zip(&decided) {
        if row.status != *status || row.superseded_by != *by {
            changed_ids.push(row.id);
            changed_status.push((*status).to_owned());
            changed_by.push(*by);
            if row.status == "current" {
                setups_to_check.push(row.id);
            }
        }
    }
    if !changed_ids.is_empty() {
        txn.execute_raw(stmt(
            r#"UPDATE message_parses p
                  SET status = c.status, superseded_by = nullif(c.superseded_by, 0)
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS c(message_id, status, superseded_by)
                WHERE p.message_id = c.message_id"#,
            // Message ids are positive, so 0 can stand for "none" in the array.
            [
                changed_ids.into(),
                changed_status.into(),
                changed_by.iter().map(|b| b.unwrap_or(0)).collect::<Vec<i64>>().into(),
            ],
        ))
        .await?;
    }
    txn.execute_raw(stmt(
        "UPDATE setups SET is_current = (message_id = $1) \
         WHERE message_id = ANY($2) AND is_current IS DISTINCT FROM (message_id = $1)",
        [current.into(), setups_to_check.into()],
    ))
    .await?;
    Ok(())
}
