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

use chrono::{Datelike as _, NaiveDate};
use entity::{message_parses, messages, setups, ticker_bias};
use parser::{ParsedMessage, Warning};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait as _, ConnectionTrait as _, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait as _, QueryFilter as _, Statement,
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

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Serialises a day's decisions across workers.
async fn lock_day(txn: &DatabaseTransaction, day: NaiveDate) -> Result<(), DbErr> {
    // Day numbers are offset far from the other keys of this lock class.
    let key = 1_000_000 + day.num_days_from_ce();
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock($1, $2)",
        [outbox::LOCK_CLASS.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// Stores a message's parse, replacing whatever an earlier event stored.
pub async fn save(
    txn: &DatabaseTransaction,
    message: &messages::Model,
    event_id: Uuid,
    parsed: &ParsedMessage,
    text: &str,
) -> Result<Stored, DbErr> {
    let previous_day = message_parses::Entity::find_by_id(message.id)
        .one(txn)
        .await?
        .and_then(|p| p.trading_day);
    setups::Entity::delete_many()
        .filter(setups::Column::MessageId.eq(message.id))
        .exec(txn)
        .await?;
    ticker_bias::Entity::delete_many()
        .filter(ticker_bias::Column::MessageId.eq(message.id))
        .exec(txn)
        .await?;

    let sha = sha256_hex(text);
    let day = parsed.trading_day.filter(|_| parsed.is_aplus());
    if let Some(day) = day {
        lock_day(txn, day).await?;
        insert_setups(txn, message.id, day, parsed).await?;
    }
    // Provisional for an A+ message: deciding the day sets current,
    // superseded or duplicate.
    let status = if day.is_some() {
        "superseded"
    } else {
        "not_aplus"
    };
    upsert_parse(txn, message, event_id, parsed, &sha, text, status, None).await?;

    if let Some(day) = day {
        decide_day(txn, day).await?;
    }
    if let Some(previous) = previous_day
        && Some(previous) != day
    {
        // An edit moved the message to another day, or out of A+.
        lock_day(txn, previous).await?;
        decide_day(txn, previous).await?;
    }
    current_status(txn, message.id).await
}

async fn insert_setups(
    txn: &DatabaseTransaction,
    message_id: i64,
    day: NaiveDate,
    parsed: &ParsedMessage,
) -> Result<(), DbErr> {
    let mut rows = Vec::new();
    let mut biases = Vec::new();
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
            rows.push(setups::ActiveModel {
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
    // A repeated ticker block is merged by the parser, so (message, ticker) is unique.
    ticker_bias::Entity::insert_many(biases).exec(txn).await?;
    setups::Entity::insert_many(rows).exec(txn).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // One row's worth of columns, named at the call.
async fn upsert_parse(
    txn: &DatabaseTransaction,
    message: &messages::Model,
    event_id: Uuid,
    parsed: &ParsedMessage,
    sha: &str,
    text: &str,
    status: &str,
    superseded_by: Option<i64>,
) -> Result<(), DbErr> {
    let to_json = |value: serde_json::Result<serde_json::Value>| {
        value.map_err(|e| DbErr::Custom(format!("serialising a parse: {e}")))
    };
    let row = message_parses::ActiveModel {
        message_id: Set(message.id),
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
        content_sha256: Set(sha.to_owned()),
        content_length: Set(i32::try_from(text.chars().count()).unwrap_or(i32::MAX)),
        status: Set(status.to_owned()),
        superseded_by: Set(superseded_by),
        parsed_at: NotSet,
    };
    use message_parses::Column as C;
    message_parses::Entity::insert(row)
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

async fn current_status(txn: &DatabaseTransaction, message_id: i64) -> Result<Stored, DbErr> {
    let status = message_parses::Entity::find_by_id(message_id)
        .one(txn)
        .await?
        .map(|p| p.status)
        .unwrap_or_default();
    Ok(match status.as_str() {
        "current" => Stored::Current,
        "superseded" => Stored::Superseded,
        "duplicate" => Stored::Duplicate,
        "retracted" => Stored::Retracted,
        _ => Stored::NotAplus,
    })
}

/// Retracts a deleted message: its setups stop counting and its day is
/// decided again without it.
pub async fn retract(
    txn: &DatabaseTransaction,
    message: &messages::Model,
    event_id: Uuid,
) -> Result<Stored, DbErr> {
    let day = message_parses::Entity::find_by_id(message.id)
        .one(txn)
        .await?
        .and_then(|p| p.trading_day);
    if let Some(day) = day {
        lock_day(txn, day).await?;
    }
    let parsed = ParsedMessage::not_aplus(parser::NotAplusReason::Empty, false);
    upsert_parse(
        txn,
        message,
        event_id,
        &parsed,
        &sha256_hex(&message.content),
        &message.content,
        "retracted",
        None,
    )
    .await?;
    // Keep the day it had, so the history still says which day it retracted from.
    txn.execute_raw(stmt(
        "UPDATE message_parses SET trading_day = $2, reason = 'deleted' WHERE message_id = $1",
        [message.id.into(), day.into()],
    ))
    .await?;
    setups::Entity::update_many()
        .col_expr(setups::Column::IsCurrent, Expr::value(false))
        .filter(setups::Column::MessageId.eq(message.id))
        .exec(txn)
        .await?;
    if let Some(day) = day {
        decide_day(txn, day).await?;
    }
    Ok(Stored::Retracted)
}
