//! Property tests: no input makes the parser panic, and every output keeps the
//! invariants the rest of the pipeline relies on.

use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Utc, Weekday};
use parser::{PARSER_VERSION, ParsedMessage, Warning, parse};
use proptest::prelude::*;
use rust_decimal::Decimal;

/// The text of every fixture message, extracted as the worker does.
static FIXTURE_TEXTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/aplus-messages.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let fixtures: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("json: {e}"));
    let texts: Vec<String> = fixtures
        .as_array()
        .into_iter()
        .flatten()
        .map(|fixture| {
            let message = &fixture["message"];
            let content = message["content"].as_str().unwrap_or_default();
            let snapshot = message["message_snapshots"][0]["message"]["content"].as_str();
            if content.is_empty() {
                snapshot.unwrap_or_default()
            } else {
                content
            }
            .to_owned()
        })
        .collect();
    assert!(!texts.is_empty(), "no fixture texts");
    texts
});

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// Whether a target is beyond the trigger in the setup's direction.
fn beyond(direction: parser::Direction, low: Decimal, high: Decimal, target: Decimal) -> bool {
    match direction {
        parser::Direction::Long => target > high,
        parser::Direction::Short => target < low,
    }
}

/// Checks every invariant of a parse result.
fn check_invariants(message: &ParsedMessage) -> Result<(), TestCaseError> {
    prop_assert_eq!(message.parser_version, PARSER_VERSION);
    prop_assert!(serde_json::to_string(message).is_ok());
    if !message.is_aplus() {
        prop_assert!(message.reason().is_some());
        prop_assert!(message.tickers.is_empty());
        prop_assert!(message.trading_day.is_none() && message.trading_day_method.is_none());
        prop_assert!(message.header_variant.is_none() && message.header_tag.is_none());
        prop_assert!(message.free_text_lines.is_empty() && !message.is_weekend);
        return Ok(());
    }
    let day = message.trading_day;
    prop_assert!(
        day.is_some() && message.trading_day_method.is_some() && message.header_variant.is_some()
    );
    prop_assert!(message.setup_count() >= 1);
    let weekend = day.is_some_and(|d| matches!(d.weekday(), Weekday::Sat | Weekday::Sun));
    prop_assert_eq!(message.is_weekend, weekend);
    if let Some(tag) = &message.header_tag {
        prop_assert!(!tag.trim().is_empty());
    }
    for line in &message.free_text_lines {
        prop_assert!(!line.trim().is_empty() && !line.contains(is_line_break));
    }

    let mut expected_target_warnings = 0;
    for block in &message.tickers {
        prop_assert!(!block.ticker.is_empty());
        prop_assert!(
            !block.setups.is_empty() || block.bias.is_some(),
            "empty block {}",
            block.ticker
        );
        prop_assert!(
            block
                .ticker
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'.')
        );
        if block.bias.is_none() {
            prop_assert!(block.bias_levels.is_empty());
        }
        for (i, setup) in block.setups.iter().enumerate() {
            prop_assert_eq!(
                setup.index as usize,
                i + 1,
                "index sequence in {}",
                block.ticker
            );
            let (low, high) = (setup.trigger.trigger_low(), setup.trigger.trigger_high());
            prop_assert!(low <= high, "zone {} > {}", low, high);
            if let Some(zone) = setup.trigger.zone() {
                prop_assert!(zone.low() <= zone.high());
            }
            prop_assert!(!setup.raw_line.contains(is_line_break));
            for &target in &setup.targets {
                if !beyond(setup.direction, low, high, target) {
                    expected_target_warnings += 1;
                    let warned = message.warnings.iter().any(|w| {
                        matches!(w, Warning::TargetNotBeyondTrigger { ticker, setup_index, target: t, .. }
                            if *ticker == block.ticker && *setup_index == setup.index && *t == target)
                    });
                    prop_assert!(
                        warned,
                        "no warning for target {} of {}#{}",
                        target,
                        block.ticker,
                        setup.index
                    );
                }
            }
        }
    }
    let target_warnings = message
        .warnings
        .iter()
        .filter(|w| matches!(w, Warning::TargetNotBeyondTrigger { .. }))
        .count();
    prop_assert_eq!(target_warnings, expected_target_warnings);
    Ok(())
}

/// Parses twice (the parser must be deterministic) and checks the invariants.
fn parse_and_check(text: &str, posted_at: DateTime<Utc>) -> Result<(), TestCaseError> {
    let first = parse(text, posted_at);
    prop_assert_eq!(&first, &parse(text, posted_at));
    check_invariants(&first)
}

/// Any instant chrono can represent, from year -262143 to +262142.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (min..=max).prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap_or_default()),
        // Around the real posts, where the year choice matters most.
        (1_700_000_000i64..1_900_000_000)
            .prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap_or_default()),
    ]
}

/// Text built from the pieces A+ posts are made of, so that random strings
/// reach deep into the parser instead of stopping at the header: a header
/// (real, test, typo or none) followed by lines of shuffled fragments.
fn post_like_text() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "A+ Trade Setups — Thursday May 15",
        "A+ Scalp Trade Setups. — Wed Jun 11",
        "A+ Trade Setups — Wed May 21 (Scalps)",
        "A+ Scalp Trade Setups – December 31",
        "A+ Scalp Trade Setups — Jne 10",
        "A+ Scalp Trade Setups — Sunday Feb 29",
        "A+ Trade Setups",
        "A+ Test Setups — Jun 10",
        "@everyone",
        "",
    ]);
    let piece = prop::sample::select(vec![
        "SPY",
        "✅ TSLA",
        "1) NVDA",
        "2. MSTR ",
        "GL",
        "❌ ",
        "🔻 ",
        "🔼 ",
        "🔄 ",
        "⚠️ ",
        "Bias: ",
        "— ",
        "Rejection ",
        "Short ",
        "Long ",
        "Near ",
        "Aggressive ",
        "Conservative ",
        "Breakdown ",
        "Breakout ",
        "Bounce ",
        "Zone ",
        "From ",
        "at ",
        "Below ",
        "Above ",
        "= ",
        ": ",
        "586.49",
        "584.20 ",
        "402.90–398.30",
        "496.10-497.50 ",
        " (584.20, 582.00, 579.70)",
        "🔼 599.80, 602.00",
        "Targets: ",
        "1.5",
        "99999999999999999999",
        ", ",
        "{edited}",
        "@everyone",
        "❤️=🐐",
        "130s",
        "4h",
        "0",
        ".",
        "-",
        "–",
        " ",
        "\u{FEFF}",
        "\u{FE0F}",
        "\u{2028}",
    ]);
    let whole_line = prop::sample::select(vec![
        "SPY",
        "✅ NVDA",
        "❌ Rejection Short Near 594.40 🔻 (591.00, 588.00, 585.50)",
        "🔻 Aggressive Breakdown 602.55 🔻 601.28, 598.85, 596.50",
        "🔼 Conservative Breakout Above 435.50 🔼 437.00, 438.50  {edited}",
        "🔼 Breakout Above 500 🔼 499, 505",
        "🔄 Bounce Zone = 354.30–356.00 🔼 Targets: 362.40, 368.11",
        "🔄 Bounce Zone 402.90–398.30",
        "🔄 Bounce Zone at 341.10 🔼 (343.20, 344.60)",
        "⚠️ Bias: watching 591.80–592.15 zone",
        "— breakdown under 134.10 likely to test 130s",
    ]);
    let fragments = prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat());
    let line = prop_oneof![whole_line.prop_map(str::to_owned), fragments];
    let newline = prop::sample::select(vec!["\n", "\u{2028}\n", "\r\n", "\n\n"]);
    let lines = prop::collection::vec((line, newline), 0..30);
    (header, lines).prop_map(|(header, lines)| {
        let mut text = header.to_owned();
        for (line, newline) in lines {
            text.push_str(newline);
            text.push_str(&line);
        }
        text
    })
}

/// An edit applied to a fixture text.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertChar(usize, char),
    DeleteChar(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        '\n', '\u{2028}', '\r', ' ', '—', '–', '-', '.', ',', '(', ')', '0', '9', 'A', '+', '⚠',
        '\u{FE0F}', '🔻', 'é',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), prop_oneof![interesting, any::<char>()])
            .prop_map(|(at, c)| Mutation::InsertChar(at, c)),
        any::<usize>().prop_map(Mutation::DeleteChar),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let mut chars: Vec<char> = text.chars().collect();
    let line_count = lines.len().max(1);
    match *mutation {
        Mutation::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % line_count);
            }
            lines.join("\n")
        }
        Mutation::DuplicateLine(i) => {
            if let Some(&line) = lines.get(i % line_count) {
                lines.insert(i % line_count, line);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            lines.swap(a % line_count, b % line_count);
            lines.join("\n")
        }
        Mutation::InsertChar(at, c) => {
            chars.insert(at % (chars.len() + 1), c);
            chars.into_iter().collect()
        }
        Mutation::DeleteChar(at) => {
            if !chars.is_empty() {
                let len = chars.len();
                chars.remove(at % len);
            }
            chars.into_iter().collect()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic_and_keep_invariants(text in any::<String>(), posted_at in any_instant()) {
        parse_and_check(&text, posted_at)?;
    }

    #[test]
    fn arbitrary_unicode_lines_never_panic(lines in prop::collection::vec("\\PC{0,40}", 0..20), posted_at in any_instant()) {
        parse_and_check(&lines.join("\n"), posted_at)?;
        parse_and_check(&format!("A+ Trade Setups — Jun 2\n{}", lines.join("\u{2028}\n")), posted_at)?;
    }

    #[test]
    fn post_like_text_never_panics_and_keeps_invariants(text in post_like_text(), posted_at in any_instant()) {
        parse_and_check(&text, posted_at)?;
    }

    #[test]
    fn mutated_fixtures_never_panic_and_keep_invariants(
        index in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..8),
        posted_at in any_instant(),
    ) {
        let texts = &*FIXTURE_TEXTS;
        let mut text = texts[index % texts.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        parse_and_check(&text, posted_at)?;
    }

    #[test]
    fn a_real_post_parses_the_same_at_any_time_of_its_trading_day(index in any::<usize>(), minutes in 0i64..(24 * 60)) {
        let texts = &*FIXTURE_TEXTS;
        let text = &texts[index % texts.len()];
        let base = parse(text, DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default());
        let later = parse(text, DateTime::from_timestamp(1_750_000_000 + minutes * 60, 0).unwrap_or_default());
        // Only the fallback date may move with the post time.
        if base.trading_day_method == Some(parser::TradingDayMethod::Header) {
            prop_assert_eq!(base, later);
        } else {
            prop_assert_eq!(base.tickers, later.tickers);
        }
    }
}
