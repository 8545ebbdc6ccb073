//! Every real fixture through the real pipeline: message stored, event,
//! worker, and the rows it writes compared with the fixture's expectations.

use crate::common;

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{message_parses, setups, ticker_bias};
use outbox::record::NewMessage;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _};
use serde_json::Value;
use testkit::TestDb;

fn load(name: &str) -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("fixture file");
    serde_json::from_str(&text).expect("fixture json")
}

/// The message as the bot stores it: the snapshot's text for a forward.
fn stored_message(fixture: &Value, fallback_id: i64) -> NewMessage {
    let m = &fixture["message"];
    let id = m["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(fallback_id);
    let content = match m["content"].as_str() {
        Some(c) if !c.is_empty() => c.to_owned(),
        _ => m
            .pointer("/message_snapshots/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let sent_at = m["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    NewMessage {
        id,
        guild_id: None,
        channel_id: m["channel_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
        author_id: m
            .pointer("/author/id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(2),
        author_name: m
            .pointer("/author/username")
            .and_then(Value::as_str)
            .unwrap_or("author")
            .to_owned(),
        author_is_bot: false,
        is_forward: m["content"].as_str().is_some_and(str::is_empty)
            && m.get("message_snapshots").is_some(),
        content,
        embeds: m.get("embeds").cloned().unwrap_or(Value::Array(vec![])),
        attachments: serde_json::json!([]),
        sent_at,
        edited_at: None,
        raw: m.clone(),
    }
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap_or_else(|_| panic!("{v} is not a number"))
}

fn decs(v: &Value) -> Vec<Decimal> {
    v.as_array()
        .map(|a| a.iter().map(dec).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_fixture_parses_to_its_expected_setups_through_the_pipeline() {
    let t = TestDb::new().await;
    let fixtures = load("aplus-messages.json");
    let messages: Vec<NewMessage> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| stored_message(f, 9_000_000_000 + i as i64))
        .collect();
    let worker = common::start(common::config(&t));
    // One at a time, in post order, as they would arrive.
    let mut ordered = messages.to_vec();
    ordered.sort_by_key(|m| (m.sent_at, m.id));
    for m in ordered {
        common::record_and_notify(&t, vec![m]).await;
    }
    common::drained(&t, Duration::from_secs(60)).await;
    worker.stop().await;

    for (fixture, message) in fixtures.iter().zip(&messages) {
        let name = fixture["fixture"].as_str().unwrap_or("?");
        let expected = &fixture["expected"];
        let parse = message_parses::Entity::find_by_id(message.id)
            .one(&t.db)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("{name}: no parse stored"));
        assert_eq!(
            parse.is_aplus,
            expected["is_aplus"].as_bool().unwrap(),
            "{name}: is_aplus"
        );
        if !parse.is_aplus {
            assert_eq!(
                parse.reason.as_deref(),
                expected["reason"].as_str(),
                "{name}: reason"
            );
            assert_eq!(parse.status, "not_aplus", "{name}: status");
            continue;
        }
        assert_eq!(
            parse.trading_day.map(|d| d.to_string()).as_deref(),
            expected["trading_day"].as_str(),
            "{name}: trading day"
        );
        assert_eq!(
            parse.trading_day_method.as_deref(),
            expected["trading_day_method"].as_str(),
            "{name}: method"
        );
        assert_eq!(
            parse.header_variant.as_deref(),
            expected["header_variant"].as_str(),
            "{name}: variant"
        );
        assert_eq!(
            parse.header_tag.as_deref(),
            expected["header_tag"].as_str(),
            "{name}: tag"
        );
        assert_eq!(
            parse.is_weekend,
            expected["is_weekend"].as_bool().unwrap(),
            "{name}: weekend"
        );
        assert_eq!(
            parse.mentions_everyone,
            expected["mentions_everyone"].as_bool().unwrap(),
            "{name}: @everyone"
        );
        assert_eq!(
            parse.free_text_lines, expected["free_text_lines"],
            "{name}: free text"
        );

        if parse.status == "duplicate" {
            // A byte-identical re-post adds nothing: none of its setups count.
            let current = setups::Entity::find()
                .filter(setups::Column::MessageId.eq(message.id))
                .filter(setups::Column::IsCurrent.eq(true))
                .all(&t.db)
                .await
                .expect("query");
            assert!(
                current.is_empty(),
                "{name}: a duplicate has no current setups"
            );
        }
        let rows = setups::Entity::find()
            .filter(setups::Column::MessageId.eq(message.id))
            .order_by_asc(setups::Column::Id)
            .all(&t.db)
            .await
            .expect("query");
        let biases = ticker_bias::Entity::find()
            .filter(ticker_bias::Column::MessageId.eq(message.id))
            .all(&t.db)
            .await
            .expect("query");
        let tickers = expected["tickers"].as_array().unwrap();
        let expected_count: usize = tickers
            .iter()
            .map(|t| t["setups"].as_array().unwrap().len())
            .sum();
        assert_eq!(rows.len(), expected_count, "{name}: setup count");
        assert_eq!(
            parse.setup_count as usize, expected_count,
            "{name}: recorded setup count"
        );
        for ticker in tickers {
            let symbol = ticker["ticker"].as_str().unwrap();
            let bias = biases
                .iter()
                .find(|b| b.ticker == symbol)
                .unwrap_or_else(|| panic!("{name}/{symbol}: no bias row"));
            assert_eq!(
                bias.bias.as_deref(),
                ticker["bias"].as_str(),
                "{name}/{symbol}: bias"
            );
            assert_eq!(
                bias.levels,
                decs(&ticker["bias_levels"]),
                "{name}/{symbol}: bias levels"
            );
            for setup in ticker["setups"].as_array().unwrap() {
                let index = setup["index"].as_i64().unwrap() as i32;
                let row = rows
                    .iter()
                    .find(|r| r.ticker == symbol && r.setup_index == index)
                    .unwrap_or_else(|| panic!("{name}/{symbol}#{index}: missing"));
                let at = format!("{name}/{symbol}#{index}");
                assert_eq!(row.label, setup["label"].as_str().unwrap(), "{at}: label");
                assert_eq!(
                    row.direction,
                    setup["direction"].as_str().unwrap(),
                    "{at}: direction"
                );
                assert_eq!(
                    row.strength.as_deref(),
                    setup["strength"].as_str(),
                    "{at}: strength"
                );
                assert_eq!(
                    row.qualifier.as_deref(),
                    setup["qualifier"].as_str(),
                    "{at}: qualifier"
                );
                let (low, high) = if setup["zone"].is_array() {
                    let zone = decs(&setup["zone"]);
                    (zone[0], zone[1])
                } else {
                    (dec(&setup["trigger"]), dec(&setup["trigger"]))
                };
                assert_eq!(
                    (row.trigger_low, row.trigger_high),
                    (low, high),
                    "{at}: trigger"
                );
                assert!(
                    row.trigger_low <= row.trigger_high,
                    "{at}: zone stored low..high"
                );
                assert_eq!(row.targets, decs(&setup["targets"]), "{at}: targets");
                assert_eq!(
                    row.trading_day.to_string(),
                    expected["trading_day"].as_str().unwrap(),
                    "{at}: day"
                );
            }
        }
    }

    // The trading-day policy across fixtures: A06 repeats A05 byte for byte;
    // B07 is a later, longer post for B06's day and supersedes it.
    let status = |id: i64| {
        let db = t.db.clone();
        async move {
            message_parses::Entity::find_by_id(id)
                .one(&db)
                .await
                .expect("query")
                .expect("row")
                .status
        }
    };
    let by_name = |n: &str| {
        fixtures
            .iter()
            .zip(&messages)
            .find(|(f, _)| f["fixture"] == n)
            .map(|(_, m)| m.id)
            .expect("fixture present")
    };
    assert_eq!(status(by_name("A06")).await, "duplicate");
    assert_eq!(status(by_name("A05")).await, "current");
    assert_eq!(status(by_name("B06")).await, "superseded");
    assert_eq!(status(by_name("B07")).await, "current");
    assert_eq!(
        t.scalar(&format!(
            "SELECT count(*) FROM setups WHERE message_id = {} AND is_current",
            by_name("B06")
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn other_alert_formats_are_stored_and_processed_as_not_aplus() {
    let t = TestDb::new().await;
    let fixtures = load("other-alert-formats.json");
    let worker = common::start(common::config(&t));
    let messages: Vec<NewMessage> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut m = stored_message(f, 8_000_000_000 + i as i64);
            if m.content.is_empty() {
                m.content = f["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            m
        })
        .collect();
    let n = messages.len() as i64;
    common::record_and_notify(&t, messages).await;
    common::drained(&t, Duration::from_secs(60)).await;
    worker.stop().await;
    assert_eq!(
        t.scalar("SELECT count(*) FROM message_parses WHERE NOT is_aplus AND status = 'not_aplus'")
            .await,
        n
    );
    assert_eq!(
        t.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'")
            .await,
        n
    );
    assert_eq!(t.scalar("SELECT count(*) FROM setups").await, 0);
}
