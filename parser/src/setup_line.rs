//! Reading one setup line:
//! `<emoji> [Strength] Kind [Zone] [Short|Long] [Qualifier] [=|:] trigger <targets>`.
//!
//! Examples from real posts:
//! - `❌ Rejection Near 586.49 (584.20, 582.00, 579.70)`
//! - `❌ Rejection Short Near 594.40 🔻 (591.00, 588.00, 585.50)`
//! - `🔻 Aggressive Breakdown 602.55 🔻 601.28, 598.85, 596.50`
//! - `🔄 Bounce Zone = 354.30–356.00 🔼 Targets: 362.40, 368.11, 373.00`
//! - `🔄 Bounce Zone at 341.10 🔼 (343.20, 344.60, 346.00)`

use rust_decimal::Decimal;

use crate::price::{read_trigger, scan_prices};
use crate::setup::{Direction, Label, Qualifier, Strength};
use crate::text::{is_blank, is_one_of, starts_with_dash, strip_leading_marker, trim};
use crate::trigger::Trigger;
use crate::warning::SetupProblem;

/// Emoji that open setup lines in the posts.
const SETUP_SIGNS: [char; 8] = ['❌', '🔻', '🔼', '🔄', '🔺', '⬆', '⬇', '✖'];

/// Words that may open a setup line.
const OPENING_WORDS: [&str; 7] = [
    "aggressive",
    "conservative",
    "rejection",
    "breakdown",
    "breakout",
    "bounce",
    "reject",
];

/// Words that may introduce targets after the trigger.
const TARGET_WORDS: [&str; 6] = ["target", "targets", "tp", "tps", "pt", "pts"];

/// The kind word of a setup line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rejection,
    Breakdown,
    Breakout,
    Bounce,
}

/// A setup line that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetupLine {
    pub label: Label,
    pub direction: Direction,
    pub strength: Option<Strength>,
    pub qualifier: Option<Qualifier>,
    pub trigger: Trigger,
    pub targets: Vec<Decimal>,
    /// A direction word that contradicts the label (kept out of `direction`).
    pub conflicting_direction: Option<String>,
    /// Words after the trigger that are not targets.
    pub ignored_text: Option<String>,
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Not a setup line at all.
    NotASetup,
    /// A setup.
    Setup(SetupLine),
    /// A line that looks like a setup but cannot be read.
    Unreadable(SetupProblem),
}

/// Reads a cleaned line (edit markers and pings removed) as a setup line.
pub(crate) fn read_setup(line: &str) -> Reading {
    let line = trim(line);
    // Dash-led lines continue prose (`— Breakdown under 134.10 likely ...`).
    if starts_with_dash(line) || !line.bytes().any(|b| b.is_ascii_digit()) {
        return Reading::NotASetup;
    }
    let body = strip_leading_marker(line);
    let opens_with_sign = line.starts_with(SETUP_SIGNS);
    let opens_with_word = first_word(body).is_some_and(|(word, _)| is_one_of(word, &OPENING_WORDS));
    if !opens_with_sign && !opens_with_word {
        return Reading::NotASetup;
    }
    match read_body(body) {
        Ok(setup) => Reading::Setup(setup),
        Err(problem) => Reading::Unreadable(problem),
    }
}

/// The alphabetic word at the start of `text` and the text after it.
fn first_word(text: &str) -> Option<(&str, &str)> {
    let len = text
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(text.len());
    (len > 0).then(|| text.split_at(len))
}

/// Skips blanks and the `=` / `:` that may stand before a trigger.
fn skip_separators(text: &str) -> &str {
    text.trim_start_matches(|c: char| is_blank(c) || matches!(c, '=' | ':'))
}

fn read_body(body: &str) -> Result<SetupLine, SetupProblem> {
    let (first, mut rest) = first_word(body).ok_or(SetupProblem::UnknownLabel)?;
    let strength = strength_of(first);
    let kind_word = if strength.is_some() {
        let (word, after) =
            first_word(rest.trim_start_matches(is_blank)).ok_or(SetupProblem::UnknownLabel)?;
        rest = after;
        word
    } else {
        first
    };
    let kind = kind_of(kind_word).ok_or(SetupProblem::UnknownLabel)?;

    let mut direction_word = None;
    let mut qualifier = None;
    loop {
        let here = skip_separators(rest);
        let Some((word, after)) = first_word(here) else {
            rest = here;
            break;
        };
        if word.eq_ignore_ascii_case("zone") {
            // `Bounce Zone 402.90–398.30`: the trigger itself says whether it is a zone.
        } else if let Some(direction) = direction_of(word) {
            direction_word = Some((direction, word));
        } else if let (None, Some(q)) = (qualifier, qualifier_of(word)) {
            qualifier = Some(q);
        } else {
            return Err(SetupProblem::UnexpectedWord);
        }
        rest = after;
    }

    let (trigger, len) = read_trigger(rest).ok_or(SetupProblem::MissingTrigger)?;
    let tail = &rest[len..];
    let (direction, conflicting_direction) = direction_for(kind, direction_word);
    Ok(SetupLine {
        label: label_for(kind, strength, &trigger),
        direction,
        strength,
        qualifier,
        trigger,
        targets: scan_prices(tail),
        conflicting_direction,
        ignored_text: ignored_text(tail),
    })
}

fn strength_of(word: &str) -> Option<Strength> {
    if word.eq_ignore_ascii_case("aggressive") {
        Some(Strength::Aggressive)
    } else if word.eq_ignore_ascii_case("conservative") {
        Some(Strength::Conservative)
    } else {
        None
    }
}

fn kind_of(word: &str) -> Option<Kind> {
    let kinds = [
        ("rejection", Kind::Rejection),
        ("reject", Kind::Rejection),
        ("breakdown", Kind::Breakdown),
        ("breakout", Kind::Breakout),
        ("bounce", Kind::Bounce),
    ];
    kinds
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, kind)| kind)
}

fn direction_of(word: &str) -> Option<Direction> {
    if word.eq_ignore_ascii_case("long") {
        Some(Direction::Long)
    } else if word.eq_ignore_ascii_case("short") {
        Some(Direction::Short)
    } else {
        None
    }
}

fn qualifier_of(word: &str) -> Option<Qualifier> {
    let qualifiers = [
        ("near", Qualifier::Near),
        ("below", Qualifier::Below),
        ("above", Qualifier::Above),
        ("from", Qualifier::From),
        ("at", Qualifier::At),
        ("under", Qualifier::Under),
        ("over", Qualifier::Over),
    ];
    qualifiers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, qualifier)| qualifier)
}

/// The setup's direction. A breakout is long and a breakdown short whatever
/// the line says (a contradicting word is reported); a rejection is short and
/// a bounce long unless the line names the other direction.
fn direction_for(kind: Kind, word: Option<(Direction, &str)>) -> (Direction, Option<String>) {
    let fixed = match kind {
        Kind::Breakout => Some(Direction::Long),
        Kind::Breakdown => Some(Direction::Short),
        Kind::Rejection | Kind::Bounce => None,
    };
    let default = if kind == Kind::Bounce {
        Direction::Long
    } else {
        Direction::Short
    };
    match (fixed, word) {
        (Some(fixed), Some((said, text))) if said != fixed => (fixed, Some(text.to_owned())),
        (Some(fixed), _) => (fixed, None),
        (None, Some((said, _))) => (said, None),
        (None, None) => (default, None),
    }
}

/// The label: strength and kind combined; a bounce is a zone bounce when its
/// trigger is a zone and a bounce from a level otherwise.
fn label_for(kind: Kind, strength: Option<Strength>, trigger: &Trigger) -> Label {
    match (kind, strength) {
        (Kind::Rejection, _) => Label::Rejection,
        (Kind::Breakdown, Some(Strength::Aggressive)) => Label::AggressiveBreakdown,
        (Kind::Breakdown, Some(Strength::Conservative)) => Label::ConservativeBreakdown,
        (Kind::Breakdown, None) => Label::Breakdown,
        (Kind::Breakout, Some(Strength::Aggressive)) => Label::AggressiveBreakout,
        (Kind::Breakout, Some(Strength::Conservative)) => Label::ConservativeBreakout,
        (Kind::Breakout, None) => Label::Breakout,
        (Kind::Bounce, _) => match trigger {
            Trigger::Zone(_) => Label::BounceZone,
            Trigger::Price(_) => Label::BounceFrom,
        },
    }
}

/// The text after the trigger when it holds words other than target keywords.
fn ignored_text(tail: &str) -> Option<String> {
    let mut words = tail
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty());
    words
        .any(|word| !is_one_of(word, &TARGET_WORDS))
        .then(|| trim(tail).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Zone;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    fn ds(texts: &[&str]) -> Vec<Decimal> {
        texts.iter().map(|t| d(t)).collect()
    }

    fn setup(line: &str) -> SetupLine {
        match read_setup(line) {
            Reading::Setup(setup) => setup,
            other => panic!("{line:?} was not read as a setup: {other:?}"),
        }
    }

    #[test]
    fn targets_in_parentheses_are_read() {
        let s = setup("❌ Rejection Near 586.49 (584.20, 582.00, 579.70)");
        assert_eq!(s.label, Label::Rejection);
        assert_eq!(s.direction, Direction::Short);
        assert_eq!(s.qualifier, Some(Qualifier::Near));
        assert_eq!(s.trigger, Trigger::Price(d("586.49")));
        assert_eq!(s.targets, ds(&["584.20", "582.00", "579.70"]));
    }

    #[test]
    fn targets_after_an_arrow_emoji_are_read_with_or_without_parentheses() {
        let bare = setup("🔻 Aggressive Breakdown 602.55 🔻 601.28, 598.85, 596.50");
        let wrapped = setup("🔻 Aggressive Breakdown 602.55 🔻 (601.28, 598.85, 596.50)");
        assert_eq!(bare.targets, ds(&["601.28", "598.85", "596.50"]));
        assert_eq!(bare.targets, wrapped.targets);
        assert_eq!(bare.qualifier, None);
        assert_eq!(bare.label, Label::AggressiveBreakdown);
    }

    #[test]
    fn targets_after_the_word_targets_are_read() {
        let s = setup("🔄 Bounce Zone = 354.30–356.00 🔼 Targets: 362.40, 368.11, 373.00");
        assert_eq!(s.label, Label::BounceZone);
        assert_eq!(s.targets, ds(&["362.40", "368.11", "373.00"]));
        assert_eq!(s.ignored_text, None);
    }

    #[test]
    fn a_descending_zone_is_stored_low_to_high_and_its_upper_edge_is_not_a_target() {
        let s = setup("🔄 Bounce Zone 402.90–398.30 🔼 (410.10, 417.25, 423.60)");
        assert_eq!(
            s.trigger,
            Trigger::Zone(Zone::new(d("398.30"), d("402.90")))
        );
        assert_eq!(s.targets, ds(&["410.10", "417.25", "423.60"]));
    }

    #[test]
    fn a_zone_may_have_no_targets() {
        let s = setup("🔄 Bounce Zone: 332.75–336.00");
        assert_eq!(s.label, Label::BounceZone);
        assert!(s.targets.is_empty());
    }

    #[test]
    fn a_bounce_zone_at_one_price_is_a_bounce_from_that_price() {
        let s = setup("🔄 Bounce Zone at 341.10 🔼 (343.20, 344.60, 346.00)");
        assert_eq!(s.label, Label::BounceFrom);
        assert_eq!(s.qualifier, Some(Qualifier::At));
        assert_eq!(s.direction, Direction::Long);
    }

    #[test]
    fn rejection_short_near_keeps_the_qualifier() {
        let s = setup("❌ Rejection Short Near 594.40 🔻 (591.00, 588.00, 585.50)");
        assert_eq!((s.label, s.direction), (Label::Rejection, Direction::Short));
        assert_eq!(s.qualifier, Some(Qualifier::Near));
    }

    #[test]
    fn a_breakout_that_says_short_stays_long_and_reports_the_conflict() {
        let s = setup("🔼 Breakout Short Above 500 🔼 505");
        assert_eq!(s.direction, Direction::Long);
        assert_eq!(s.conflicting_direction.as_deref(), Some("Short"));
    }

    #[test]
    fn words_after_the_trigger_are_reported() {
        let s = setup("🔼 Breakout Above 500 if volume confirms");
        assert_eq!(s.ignored_text.as_deref(), Some("if volume confirms"));
        assert!(s.targets.is_empty());
    }

    #[test]
    fn a_setup_looking_line_that_cannot_be_read_says_why() {
        assert_eq!(
            read_setup("🔼 Above 596.90 🔼 599.80"),
            Reading::Unreadable(SetupProblem::UnknownLabel)
        );
        assert_eq!(
            read_setup("🔼 Breakout Retest 596.90"),
            Reading::Unreadable(SetupProblem::UnexpectedWord)
        );
        assert_eq!(
            read_setup("🔼 Breakout Above soon, maybe 5"),
            Reading::Unreadable(SetupProblem::UnexpectedWord)
        );
        assert_eq!(
            read_setup("🔻 Breakdown Below —— 5"),
            Reading::Unreadable(SetupProblem::MissingTrigger)
        );
    }

    #[test]
    fn prose_and_dash_continuations_are_not_setups() {
        assert_eq!(
            read_setup("— Breakdown under 134.10 likely to test 130s"),
            Reading::NotASetup
        );
        assert_eq!(
            read_setup("Also eyes on SAIL (up with news)"),
            Reading::NotASetup
        );
        assert_eq!(read_setup("🔼 Breakout soon"), Reading::NotASetup);
    }
}
