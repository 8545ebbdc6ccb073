//! One test per quirk of the real posts, through the public [`parse`] entry point.

use chrono::{DateTime, NaiveDate, Utc};
use parser::{
    Direction, HeaderVariant, Label, NotAplusReason, ParsedMessage, Qualifier, SetupProblem,
    TradingDayMethod, Trigger, Warning, Zone, parse,
};
use rust_decimal::Decimal;

fn d(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn ds(texts: &[&str]) -> Vec<Decimal> {
    texts.iter().map(|t| d(t)).collect()
}

fn at(stamp: &str) -> DateTime<Utc> {
    stamp.parse().unwrap_or_else(|e| panic!("{stamp}: {e}"))
}

fn date(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, day)
}

const POSTED: &str = "2025-06-02T13:57:00Z";

fn parse_at_noon(text: &str) -> ParsedMessage {
    parse(text, at(POSTED))
}

fn tickers(message: &ParsedMessage) -> Vec<&str> {
    message.tickers.iter().map(|t| t.ticker.as_str()).collect()
}

const SETUP: &str = "🔼 Aggressive Breakout Above 596.90 🔼 599.80, 602.00, 605.50";

#[test]
fn ticker_lines_with_check_marks_numbering_and_trailing_spaces_open_blocks() {
    let text = format!(
        "A+ Trade Setups — Jun 2\n\nSPY \n{SETUP}\n✅ TSLA\n{SETUP}\n1) NVDA\n{SETUP}\n2. MSTR\n{SETUP}"
    );
    let message = parse_at_noon(&text);
    assert_eq!(tickers(&message), ["SPY", "TSLA", "NVDA", "MSTR"]);
    assert!(message.tickers.iter().all(|t| t.setups.len() == 1));
}

#[test]
fn lines_ending_with_a_line_separator_parse_like_plain_lines() {
    let plain = format!("A+ Trade Setups — Jun 2\n\nSPY\n{SETUP}\n{SETUP}\n⚠️ Bias: up\n— more");
    let separated = plain.replace('\n', "\u{2028}\n");
    let bare = plain.replace('\n', "\u{2028}");
    let crlf = plain.replace('\n', "\r\n");
    let expected = parse_at_noon(&plain).tickers;
    for text in [separated, bare, crlf] {
        let got = parse_at_noon(&text).tickers;
        assert_eq!(got.len(), expected.len(), "{text:?}");
        assert_eq!(got[0].bias, expected[0].bias, "{text:?}");
        assert_eq!(got[0].setups.len(), 2, "{text:?}");
        assert_eq!(
            got[0].setups[1].targets, expected[0].setups[1].targets,
            "{text:?}"
        );
    }
}

#[test]
fn an_edited_marker_inside_a_setup_line_is_ignored_but_kept_in_the_raw_line() {
    let raw = "🔻 Aggressive Breakdown Below 133.30 🔻 131.88, 130.41  {edited}";
    let message = parse_at_noon(&format!("A+ Trade Setups — Jun 2\nNVDA\n{raw}"));
    let setup = &message.tickers[0].setups[0];
    assert_eq!(setup.targets, ds(&["131.88", "130.41"]));
    assert_eq!(setup.raw_line, raw);
    assert!(message.warnings.is_empty(), "{:?}", message.warnings);
}

#[test]
fn a_bias_continues_on_the_next_line_starting_with_a_dash() {
    let text = format!(
        "A+ Trade Setups — Jun 2\nSPY\n{SETUP}\n⚠️ Bias: Leaning bearish under 135.95 \n— Breakdown under 134.10 likely to test 130s\n"
    );
    let block = &parse_at_noon(&text).tickers[0];
    assert_eq!(
        block.bias.as_deref(),
        Some("Leaning bearish under 135.95 Breakdown under 134.10 likely to test 130s")
    );
    assert_eq!(block.bias_levels, ds(&["135.95", "134.10", "130"]));
    assert_eq!(
        block.setups.len(),
        1,
        "the continuation must not be read as a setup"
    );
}

#[test]
fn a_dash_line_after_a_blank_line_does_not_continue_the_bias() {
    let text = format!("A+ Trade Setups — Jun 2\nSPY\n{SETUP}\n⚠️ Bias: up\n\n— unrelated note");
    let message = parse_at_noon(&text);
    assert_eq!(message.tickers[0].bias.as_deref(), Some("up"));
    assert_eq!(message.free_text_lines, ["— unrelated note"]);
}

#[test]
fn a_bias_without_the_word_bias_is_kept_whole_and_timeframes_are_not_levels() {
    let text = format!(
        "A+ Trade Setups — Jun 2\nTSLA\n{SETUP}\n⚠️ TSLA chop between 337–347 on the 4h — bulls above 347.25"
    );
    let block = &parse_at_noon(&text).tickers[0];
    assert_eq!(
        block.bias.as_deref(),
        Some("TSLA chop between 337–347 on the 4h — bulls above 347.25")
    );
    assert_eq!(block.bias_levels, ds(&["337", "347", "347.25"]));
}

#[test]
fn a_descending_zone_is_stored_low_to_high() {
    let text =
        "A+ Trade Setups — Jun 2\nMSTR\n🔄 Bounce Zone 402.90–398.30 🔼 (410.10, 417.25, 423.60)";
    let setup = &parse_at_noon(text).tickers[0].setups[0];
    assert_eq!(
        setup.trigger,
        Trigger::Zone(Zone::new(d("398.30"), d("402.90")))
    );
    assert_eq!(
        (setup.trigger.trigger_low(), setup.trigger.trigger_high()),
        (d("398.30"), d("402.90"))
    );
    assert_eq!(setup.label, Label::BounceZone);
}

#[test]
fn the_upper_edge_of_a_zone_is_never_a_target() {
    let text =
        "A+ Trade Setups — Jun 2\nNVDA\n🔄 Bounce Zone 496.10-497.50 🔼 499.80, 502.20, 504.80";
    let setup = &parse_at_noon(text).tickers[0].setups[0];
    assert_eq!(setup.targets, ds(&["499.80", "502.20", "504.80"]));
    assert!(!setup.targets.contains(&d("497.50")));
}

#[test]
fn a_zone_may_have_no_targets() {
    let text = "A+ Trade Setups — Jun 2\nTSLA\n🔄 Bounce Zone: 332.75–336.00";
    let message = parse_at_noon(text);
    assert!(message.is_aplus());
    assert!(message.tickers[0].setups[0].targets.is_empty());
    assert!(message.warnings.is_empty());
}

#[test]
fn targets_may_be_in_parentheses_after_an_arrow_after_targets_or_a_bare_list() {
    let lines = [
        "🔼 Breakout Above 500 (502.50, 505.00)",
        "🔼 Breakout Above 500 🔼 (502.50, 505.00)",
        "🔼 Breakout Above 500 🔼 Targets: 502.50, 505.00",
        "🔼 Breakout Above 500 🔼 502.50, 505.00",
        "🔼 Breakout Above 500 502.50, 505.00",
    ];
    for line in lines {
        let message = parse_at_noon(&format!("A+ Trade Setups — Jun 2\nSPY\n{line}"));
        assert_eq!(
            message.tickers[0].setups[0].targets,
            ds(&["502.50", "505.00"]),
            "{line}"
        );
        assert!(
            message.warnings.is_empty(),
            "{line}: {:?}",
            message.warnings
        );
    }
}

#[test]
fn a_target_on_the_wrong_side_is_kept_with_a_warning() {
    let text = "A+ Trade Setups — Jun 2\nSPY\n🔼 Breakout Above 500 🔼 502, 499";
    let message = parse_at_noon(text);
    assert_eq!(message.tickers[0].setups[0].targets, ds(&["502", "499"]));
    assert_eq!(
        message.warnings,
        [Warning::TargetNotBeyondTrigger {
            line: 3,
            ticker: "SPY".to_owned(),
            setup_index: 1,
            target: d("499"),
        }]
    );
}

#[test]
fn an_unreadable_setup_line_is_reported_and_not_stored() {
    let text = format!("A+ Trade Setups — Jun 2\nSPY\n🔼 Above 596.90 🔼 599.80\n{SETUP}");
    let message = parse_at_noon(&text);
    let setups = &message.tickers[0].setups;
    assert_eq!(setups.len(), 1);
    assert_eq!(setups[0].index, 1);
    assert_eq!(
        message.warnings,
        [Warning::UnparseableSetupLine {
            line: 3,
            text: "🔼 Above 596.90 🔼 599.80".to_owned(),
            problem: SetupProblem::UnknownLabel,
        }]
    );
}

#[test]
fn a_setup_before_any_ticker_is_reported() {
    let message = parse_at_noon(&format!("A+ Trade Setups — Jun 2\n{SETUP}\nSPY\n{SETUP}"));
    assert_eq!(message.setup_count(), 1);
    assert!(matches!(
        message.warnings.as_slice(),
        [Warning::SetupWithoutTicker { line: 2, .. }]
    ));
}

#[test]
fn a_repeated_ticker_continues_its_block() {
    let message = parse_at_noon(&format!(
        "A+ Trade Setups — Jun 2\nSPY\n{SETUP}\nTSLA\n{SETUP}\nSPY\n{SETUP}"
    ));
    assert_eq!(tickers(&message), ["SPY", "TSLA"]);
    let indexes: Vec<u32> = message.tickers[0].setups.iter().map(|s| s.index).collect();
    assert_eq!(indexes, [1, 2]);
    assert!(matches!(
        message.warnings.as_slice(),
        [Warning::DuplicateTicker { line: 6, .. }]
    ));
}

#[test]
fn setup_lines_read_label_direction_strength_and_qualifier() {
    let text = "A+ Trade Setups — Jun 2\nSPY\n\
        ❌ Rejection Short Near 594.40 🔻 (591.00, 588.00)\n\
        🔻 Conservative Breakdown Below 586.00 🔻 (583.75)\n\
        🔻 Breakdown 580 🔻 575\n\
        🔄 Bounce From 584.00 🔼 (586.00)\n\
        🔄 Bounce Zone at 341.10 🔼 (343.20)";
    let message = parse_at_noon(text);
    let got: Vec<_> = message.tickers[0]
        .setups
        .iter()
        .map(|s| {
            (
                s.index,
                s.label,
                s.direction,
                s.strength.map(|x| x.as_str()),
                s.qualifier,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                1,
                Label::Rejection,
                Direction::Short,
                None,
                Some(Qualifier::Near)
            ),
            (
                2,
                Label::ConservativeBreakdown,
                Direction::Short,
                Some("conservative"),
                Some(Qualifier::Below)
            ),
            (3, Label::Breakdown, Direction::Short, None, None),
            (
                4,
                Label::BounceFrom,
                Direction::Long,
                None,
                Some(Qualifier::From)
            ),
            (
                5,
                Label::BounceFrom,
                Direction::Long,
                None,
                Some(Qualifier::At)
            ),
        ]
    );
}

#[test]
fn the_header_gives_the_variant_and_the_tag() {
    let scalp = parse_at_noon(&format!(
        "A+ Scalp Trade Setups. — Wed Jun 11\nSPY\n{SETUP}"
    ));
    assert_eq!(scalp.header_variant, Some(HeaderVariant::Scalp));
    assert_eq!(scalp.header_tag, None);
    let tagged = parse_at_noon(&format!(
        "A+ Trade Setups — Wed May 21 (Scalps)\nSPY\n{SETUP}"
    ));
    assert_eq!(tagged.header_variant, Some(HeaderVariant::Standard));
    assert_eq!(tagged.header_tag.as_deref(), Some("Scalps"));
    assert_eq!(tagged.trading_day, date(2025, 5, 21));
}

#[test]
fn the_trading_day_comes_from_the_header_not_the_post_date() {
    let message = parse(
        &format!("A+ Trade Setups — Friday May 16\nSPY\n{SETUP}"),
        at("2025-05-17T15:11:18Z"),
    );
    assert_eq!(message.trading_day, date(2025, 5, 16));
    assert_eq!(message.trading_day_method, Some(TradingDayMethod::Header));
    assert!(!message.is_weekend);
}

#[test]
fn december_31_posted_on_january_1_is_the_previous_years_trading_day() {
    let message = parse(
        &format!("A+ Scalp Trade Setups – December 31\nSPY\n{SETUP}"),
        at("2026-01-01T15:00:00Z"),
    );
    assert_eq!(message.trading_day, date(2025, 12, 31));
}

#[test]
fn a_typo_month_falls_back_to_the_post_date_in_new_york() {
    // 03:00 UTC on June 13 is still June 12 in New York.
    let message = parse(
        &format!("A+ Scalp Trade Setups — Jne 10\nSPY\n{SETUP}"),
        at("2025-06-13T03:00:00Z"),
    );
    assert_eq!(message.trading_day, date(2025, 6, 12));
    assert_eq!(
        message.trading_day_method,
        Some(TradingDayMethod::FallbackPostTimeEt)
    );
    assert!(matches!(
        message.warnings.as_slice(),
        [Warning::HeaderDateUnreadable { .. }]
    ));
}

#[test]
fn a_header_without_a_date_falls_back_to_the_post_date() {
    let message = parse_at_noon(&format!("A+ Trade Setups\nSPY\n{SETUP}"));
    assert_eq!(message.trading_day, date(2025, 6, 2));
    assert_eq!(message.warnings, [Warning::HeaderDateMissing]);
}

#[test]
fn a_weekend_header_is_kept_and_flagged() {
    let message = parse(
        &format!("A+ Scalp Trade Setups — Sunday June 15\nSPY\n{SETUP}"),
        at("2025-06-15T22:00:00Z"),
    );
    assert!(message.is_aplus());
    assert_eq!(message.trading_day, date(2025, 6, 15));
    assert!(message.is_weekend);
}

#[test]
fn test_draft_and_check_headers_are_not_real_setups() {
    for header in [
        "A+ Test Setups — Jun 10",
        "A+ Trade Setups — Jun 10 (Draft)",
        "A+ Check Setups",
    ] {
        let message = parse_at_noon(&format!("{header}\nSPY\n{SETUP}"));
        assert_eq!(
            message.reason(),
            Some(NotAplusReason::TestHeader),
            "{header}"
        );
        assert!(message.tickers.is_empty());
    }
}

#[test]
fn a_header_without_any_readable_setup_is_not_aplus() {
    let message = parse_at_noon("A+ Trade Setups — Jun 10\n\nSPY\n⚠️ Bias: no trades today");
    assert_eq!(message.reason(), Some(NotAplusReason::NoSetups));
    assert!(message.tickers.is_empty() && message.trading_day.is_none());
}

#[test]
fn empty_text_and_chatter_are_not_aplus() {
    assert_eq!(parse_at_noon("").reason(), Some(NotAplusReason::Empty));
    assert_eq!(
        parse_at_noon(" \n\u{2028}\u{FEFF}\t").reason(),
        Some(NotAplusReason::Empty)
    );
    assert_eq!(
        parse_at_noon("1-2-3-4-5 Tesla Tesla Tesla").reason(),
        Some(NotAplusReason::NoAplusHeader)
    );
    assert_eq!(
        parse_at_noon(&format!("gm\nA+ Trade Setups\nSPY\n{SETUP}")).reason(),
        Some(NotAplusReason::NoAplusHeader)
    );
    let ping = parse_at_noon("@everyone");
    assert_eq!(ping.reason(), Some(NotAplusReason::NoAplusHeader));
    assert!(ping.mentions_everyone);
}

#[test]
fn a_ping_or_decoration_before_the_header_does_not_hide_it() {
    let message = parse_at_noon(&format!(
        "@everyone\n**A+ Trade Setups — Jun 2**\nSPY\n{SETUP}"
    ));
    assert!(message.is_aplus());
    assert!(message.mentions_everyone);
}

#[test]
fn free_text_is_kept_and_decoration_and_pings_are_not() {
    let text = format!(
        "A+ Scalp Trade Setups. — Wed Jun 11\n\nAlso eyes on SAIL (up with news)\n\nSPY\n{SETUP}\n\n@everyone\n❤️=🐐"
    );
    let message = parse_at_noon(&text);
    assert_eq!(
        message.free_text_lines,
        ["Also eyes on SAIL (up with news)"]
    );
    assert!(message.mentions_everyone);
    assert!(message.warnings.is_empty());
}

#[test]
fn a_bias_before_any_ticker_is_free_text() {
    let message = parse_at_noon(&format!(
        "A+ Trade Setups — Jun 2\n⚠️ Bias: market is weak\nSPY\n{SETUP}"
    ));
    assert_eq!(message.free_text_lines, ["⚠️ Bias: market is weak"]);
    assert_eq!(message.tickers[0].bias, None);
}

#[test]
fn a_short_upper_case_remark_is_free_text_not_a_ticker() {
    let text = format!(
        "A+ Trade Setups — Jun 2\nWATCH\nnothing clean today\nSPY\n{SETUP}\n\nGL\n@everyone"
    );
    let message = parse_at_noon(&text);
    assert_eq!(tickers(&message), ["SPY"]);
    assert_eq!(
        message.free_text_lines,
        ["WATCH", "nothing clean today", "GL"]
    );
}

#[test]
fn a_ticker_with_only_a_bias_is_kept() {
    let text = format!(
        "A+ Trade Setups — Jun 2\nSPY\n{SETUP}\nSAIL\n⚠️ Bias: news driven, watching 12.50"
    );
    let message = parse_at_noon(&text);
    assert_eq!(tickers(&message), ["SPY", "SAIL"]);
    assert_eq!(message.tickers[1].bias_levels, ds(&["12.50"]));
}

#[test]
fn an_edited_marker_after_the_header_is_not_its_tag() {
    let message = parse_at_noon(&format!(
        "A+ Trade Setups — Wed May 21 (Scalps) (edited)\nSPY\n{SETUP}"
    ));
    assert_eq!(message.header_tag.as_deref(), Some("Scalps"));
    let plain = parse_at_noon(&format!("A+ Trade Setups — Jun 2 {{edited}}\nSPY\n{SETUP}"));
    assert_eq!(plain.header_tag, None);
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
}
