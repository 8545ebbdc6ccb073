//! Parses every real and synthetic fixture message and checks every expected field.
//!
//! The text is extracted the way the capture worker does it: the message's
//! `content`, or for a forwarded message (empty `content`) the content of its
//! first snapshot. Expected prices are compared exactly, as decimals read from
//! the JSON numbers' text (`584.2` equals the posted `584.20`).
//!
//! The fixtures name labels with the parser's own vocabulary (`BounceFrom`,
//! `BounceZone`), so labels are compared as serialised, without any mapping.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use parser::{NotAplusReason, ParsedMessage, Setup, TickerBlock, TradingDayMethod, Warning, parse};
use rust_decimal::Decimal;
use serde_json::Value;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn load(name: &str) -> Vec<Value> {
    let path = fixture_path(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    value
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not a JSON array"))
}

/// The text the worker parses: `content`, or the first snapshot's content when
/// `content` is empty (a forwarded message).
fn message_text(message: &Value) -> String {
    let content = message["content"].as_str().unwrap_or_default();
    if !content.is_empty() {
        return content.to_owned();
    }
    message["message_snapshots"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn posted_at(message: &Value) -> DateTime<Utc> {
    let stamp = message["timestamp"]
        .as_str()
        .or_else(|| message["created_at"].as_str())
        .unwrap_or("2025-06-02T13:30:00Z");
    stamp
        .parse::<DateTime<Utc>>()
        .or_else(|_| DateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f%:z").map(|t| t.to_utc()))
        .unwrap_or_else(|e| panic!("bad timestamp {stamp}: {e}"))
}

/// A JSON number as the exact decimal its text spells.
fn decimal(value: &Value) -> Decimal {
    let text = value
        .as_number()
        .map(ToString::to_string)
        .unwrap_or_else(|| panic!("not a number: {value}"));
    text.parse()
        .unwrap_or_else(|e| panic!("not a decimal: {text}: {e}"))
}

fn decimals(value: &Value) -> Vec<Decimal> {
    value
        .as_array()
        .map(|a| a.iter().map(decimal).collect())
        .unwrap_or_default()
}

/// How a value serialises, for comparing enums with the fixtures' strings.
fn json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("serialise: {e}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn check_setup(at: &str, got: &Setup, want: &Value) {
    assert_eq!(
        u64::from(got.index),
        want["index"].as_u64().unwrap_or(0),
        "{at}: index"
    );
    assert_eq!(json(got.label), want["label"], "{at}: label");
    assert_eq!(json(got.direction), want["direction"], "{at}: direction");
    assert_eq!(json(got.strength), want["strength"], "{at}: strength");
    assert_eq!(json(got.qualifier), want["qualifier"], "{at}: qualifier");
    match (&want["trigger"], &want["zone"]) {
        (Value::Null, zone) => {
            let edges = decimals(zone);
            assert_eq!(edges.len(), 2, "{at}: expected zone {zone}");
            let got_zone = got
                .trigger
                .zone()
                .unwrap_or_else(|| panic!("{at}: expected a zone, got {:?}", got.trigger));
            assert_eq!(
                (got_zone.low(), got_zone.high()),
                (edges[0], edges[1]),
                "{at}: zone"
            );
        }
        (price, Value::Null) => {
            assert_eq!(got.trigger.price(), Some(decimal(price)), "{at}: trigger");
        }
        (price, zone) => panic!("{at}: fixture has both trigger {price} and zone {zone}"),
    }
    assert_eq!(got.targets, decimals(&want["targets"]), "{at}: targets");
    assert!(
        !got.raw_line.contains(['\n', '\u{2028}']),
        "{at}: raw line keeps a line break"
    );
}

fn check_ticker(at: &str, got: &TickerBlock, want: &Value) {
    let at = format!("{at} {}", got.ticker);
    assert_eq!(
        Some(got.ticker.as_str()),
        want["ticker"].as_str(),
        "{at}: ticker"
    );
    assert_eq!(got.bias.as_deref(), want["bias"].as_str(), "{at}: bias");
    assert_eq!(
        got.bias_levels,
        decimals(&want["bias_levels"]),
        "{at}: bias_levels"
    );
    let setups = want["setups"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.setups.len(), setups.len(), "{at}: setup count");
    for (setup, expected) in got.setups.iter().zip(&setups) {
        check_setup(&format!("{at} #{}", setup.index), setup, expected);
    }
}

fn check_aplus(at: &str, got: &ParsedMessage, want: &Value) {
    assert!(got.is_aplus(), "{at}: expected A+, got {:?}", got.outcome);
    let day = want["trading_day"]
        .as_str()
        .and_then(|d| d.parse::<NaiveDate>().ok());
    assert_eq!(got.trading_day, day, "{at}: trading_day");
    assert_eq!(
        json(got.trading_day_method),
        want["trading_day_method"],
        "{at}: method"
    );
    assert_eq!(
        json(got.header_variant),
        want["header_variant"],
        "{at}: header_variant"
    );
    assert_eq!(
        got.header_tag.as_deref(),
        want["header_tag"].as_str(),
        "{at}: header_tag"
    );
    assert_eq!(
        Some(got.is_weekend),
        want["is_weekend"].as_bool(),
        "{at}: is_weekend"
    );
    assert_eq!(
        Some(got.mentions_everyone),
        want["mentions_everyone"].as_bool(),
        "{at}: mentions_everyone"
    );
    assert_eq!(
        got.free_text_lines,
        strings(&want["free_text_lines"]),
        "{at}: free_text_lines"
    );
    let tickers = want["tickers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = got.tickers.iter().map(|t| t.ticker.as_str()).collect();
    assert_eq!(names.len(), tickers.len(), "{at}: tickers {names:?}");
    for (block, expected) in got.tickers.iter().zip(&tickers) {
        check_ticker(at, block, expected);
    }
    assert_eq!(
        Some(got.setup_count() as u64),
        want["setup_count"].as_u64(),
        "{at}: setup_count"
    );

    // Every post has its targets beyond the trigger and every line reads
    // cleanly. The only remarks expected are about the header's date: the one
    // explaining a fallback trading day, and a weekday that does not match the
    // date (B06/B07 say "Tuesday June 18", and 2025-06-18 is a Wednesday).
    let fallback = got.trading_day_method == Some(TradingDayMethod::FallbackPostTimeEt);
    let unreadable = got
        .warnings
        .iter()
        .filter(|w| matches!(w, Warning::HeaderDateUnreadable { .. }))
        .count();
    assert_eq!(
        unreadable,
        usize::from(fallback),
        "{at}: warnings {:?}",
        got.warnings
    );
    for warning in &got.warnings {
        assert!(
            matches!(
                warning,
                Warning::HeaderDateUnreadable { .. } | Warning::WeekdayMismatch { .. }
            ),
            "{at}: unexpected warning {warning:?}"
        );
    }
}

#[test]
fn every_aplus_fixture_parses_to_its_expected_fields() {
    let fixtures = load("aplus-messages.json");
    assert_eq!(
        fixtures.len(),
        15,
        "fixture count changed: update this test"
    );
    let mut setups_checked = 0;
    for fixture in &fixtures {
        let at = fixture["fixture"].as_str().unwrap_or("?");
        let message = &fixture["message"];
        let want = &fixture["expected"];
        let got = parse(&message_text(message), posted_at(message));
        match want["is_aplus"].as_bool() {
            Some(true) => {
                check_aplus(at, &got, want);
                setups_checked += got.setup_count();
            }
            Some(false) => {
                assert_eq!(json(got.reason()), want["reason"], "{at}: reason");
                assert!(
                    got.tickers.is_empty() && got.trading_day.is_none(),
                    "{at}: not-A+ carries data"
                );
            }
            None => panic!("{at}: fixture without is_aplus"),
        }
    }
    // 8 real posts of 18 setups each, plus the synthetic ones (1+1+3+9+1).
    assert_eq!(setups_checked, 8 * 18 + 15);
}

#[test]
fn a_forwarded_message_is_read_from_its_snapshot() {
    let fixtures = load("aplus-messages.json");
    let forwarded = fixtures
        .iter()
        .find(|f| f["message"]["content"].as_str() == Some(""))
        .unwrap_or_else(|| panic!("no forwarded fixture"));
    assert_eq!(
        parse("", posted_at(&forwarded["message"])).reason(),
        Some(NotAplusReason::Empty)
    );
    assert!(
        parse(
            &message_text(&forwarded["message"]),
            posted_at(&forwarded["message"])
        )
        .is_aplus()
    );
}

#[test]
fn a_byte_identical_repost_parses_identically() {
    let fixtures = load("aplus-messages.json");
    let text_of = |name: &str| {
        let fixture = fixtures.iter().find(|f| f["fixture"] == name);
        fixture
            .map(|f| message_text(&f["message"]))
            .unwrap_or_default()
    };
    let (a05, a06) = (text_of("A05"), text_of("A06"));
    assert_eq!(a05, a06);
    let posted = "2025-05-21T12:55:42Z".parse().unwrap_or_default();
    assert_eq!(parse(&a05, posted), parse(&a06, posted));
}

/// The texts a worker may parse from an alert: its content, and each embed's
/// title, description and fields joined by lines.
fn alert_texts(message: &Value) -> Vec<String> {
    let mut texts = vec![message_text(message)];
    for embed in message["embeds"].as_array().into_iter().flatten() {
        let mut parts: Vec<&str> = [&embed["title"], &embed["description"]]
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        for field in embed["fields"].as_array().into_iter().flatten() {
            parts.extend(
                [&field["name"], &field["value"]]
                    .into_iter()
                    .filter_map(Value::as_str),
            );
        }
        texts.push(parts.join("\n"));
    }
    texts
}

#[test]
fn other_alert_formats_parse_as_not_aplus() {
    let fixtures = load("other-alert-formats.json");
    assert!(!fixtures.is_empty());
    for fixture in &fixtures {
        let at = fixture["fixture"].as_str().unwrap_or("?");
        let message = &fixture["message"];
        for text in alert_texts(message) {
            let got = parse(&text, posted_at(message));
            assert!(!got.is_aplus(), "{at}: {text:?} parsed as A+");
            assert!(
                matches!(
                    got.reason(),
                    Some(NotAplusReason::NoAplusHeader | NotAplusReason::Empty)
                ),
                "{at}: {text:?} gave {:?}",
                got.outcome
            );
            assert!(
                got.tickers.is_empty() && got.warnings.is_empty(),
                "{at}: {got:?}"
            );
        }
    }
}

#[test]
fn results_serialise_with_stable_names() {
    let text = "A+ Scalp Trade Setups — Jne 10\n\nSPY\n🔄 Bounce Zone 402.90–398.30\n@everyone";
    let got = parse(text, "2025-06-12T14:30:00Z".parse().unwrap_or_default());
    let value = json(&got);
    assert_eq!(value["outcome"], serde_json::json!({"kind": "aplus"}));
    assert_eq!(value["trading_day"], "2025-06-12");
    assert_eq!(value["trading_day_method"], "fallback_post_time_ET");
    assert_eq!(value["header_variant"], "scalp");
    let setup = &value["tickers"][0]["setups"][0];
    assert_eq!(setup["label"], "BounceZone");
    assert_eq!(
        setup["trigger"],
        serde_json::json!({"zone": {"low": "398.30", "high": "402.90"}})
    );
    assert_eq!(value["warnings"][0]["kind"], "header_date_unreadable");

    let not = json(parse("BTO 1 COIN 73c 04/06 @ 1.03", Utc::now()));
    assert_eq!(
        not["outcome"],
        serde_json::json!({"kind": "not_aplus", "reason": "no_aplus_header"})
    );
    let warning = json(Warning::HeaderDateMissing);
    assert_eq!(warning, serde_json::json!({"kind": "header_date_missing"}));
}
