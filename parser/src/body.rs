//! Reading the lines under the header into ticker blocks.
//!
//! Each line is, in this order of precedence:
//! 1. blank (or only a channel ping): it ends a bias;
//! 2. a continuation of the bias just above (it starts with a dash);
//! 3. a bias line (`⚠️ ...`, `Bias: ...`) for the current ticker;
//! 4. a ticker line opening a new block (`SPY`, `✅ SPY`, `1) SPY`);
//! 5. a setup line, or a setup-looking line that cannot be read (warning);
//! 6. decoration without letters or digits (`❤️=🐐`): ignored;
//! 7. anything else: a free-text line.
//!
//! A ticker line that ends up with neither a setup nor a bias goes back to the
//! free text: it was a short upper-case remark (`GL`, `LFG`), not a ticker.

use rust_decimal::Decimal;

use crate::bias::{continuation_text, read_bias};
use crate::mentions::strip_pings;
use crate::message::TickerBlock;
use crate::price::scan_prices;
use crate::setup::Setup;
use crate::setup_line::{Reading, SetupLine, read_setup};
use crate::text::{has_alphanumeric, starts_with_dash, strip_edit_markers, trim};
use crate::ticker::read_ticker;
use crate::validate::targets_not_beyond;
use crate::warning::{SetupProblem, Warning};

/// The structure read from a message body.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub tickers: Vec<TickerBlock>,
    pub free_text_lines: Vec<String>,
    pub warnings: Vec<Warning>,
}

impl Body {
    /// Reads numbered lines (1-based numbers of the whole message).
    pub(crate) fn read<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Self {
        let mut reader = Reader::default();
        for (number, raw) in lines {
            reader.line(number, raw);
        }
        reader.finish()
    }
}

/// A ticker block being read, with where its ticker line was.
#[derive(Debug)]
struct OpenBlock {
    block: TickerBlock,
    line: usize,
    line_text: String,
}

/// The state of the line-by-line reading.
#[derive(Debug, Default)]
struct Reader {
    blocks: Vec<OpenBlock>,
    /// Free-text lines with their line numbers.
    free_text: Vec<(usize, String)>,
    warnings: Vec<Warning>,
    /// Index in `blocks` of the block the next setup belongs to.
    current: Option<usize>,
    /// Whether the previous line was a bias line (or its continuation).
    in_bias: bool,
}

impl Reader {
    /// Completes the blocks. A "ticker" line followed by neither a setup nor a
    /// bias was most likely a short upper-case remark (`GL`, `LFG`), so it goes
    /// back to the free text, in its place.
    fn finish(mut self) -> Body {
        let mut tickers = Vec::with_capacity(self.blocks.len());
        for OpenBlock {
            mut block,
            line,
            line_text,
        } in self.blocks
        {
            if block.setups.is_empty() && block.bias.is_none() {
                self.free_text.push((line, line_text));
                continue;
            }
            block.bias_levels = block
                .bias
                .as_deref()
                .map(distinct_prices)
                .unwrap_or_default();
            tickers.push(block);
        }
        self.free_text.sort_by_key(|&(line, _)| line);
        Body {
            tickers,
            free_text_lines: self.free_text.into_iter().map(|(_, text)| text).collect(),
            warnings: self.warnings,
        }
    }

    fn line(&mut self, number: usize, raw: &str) {
        let unmarked = strip_edit_markers(raw);
        let unpinged = strip_pings(&unmarked);
        let line = trim(&unpinged);
        // A bias continues only on the line right after it.
        let after_bias = std::mem::take(&mut self.in_bias);
        match classify(line, after_bias) {
            LineKind::Blank | LineKind::Decoration => {}
            LineKind::BiasContinuation(text) => {
                self.add_bias(text);
                self.in_bias = true;
            }
            LineKind::Bias(text) if self.current.is_some() => {
                self.add_bias(text);
                self.in_bias = true;
            }
            LineKind::Ticker(symbol) => self.open_block(number, symbol, line),
            LineKind::Setup(setup) => self.add_setup(number, raw, setup),
            LineKind::UnreadableSetup(problem) => {
                self.warnings.push(Warning::UnparseableSetupLine {
                    line: number,
                    text: raw.to_owned(),
                    problem,
                });
            }
            // A bias before any ticker belongs to no block: keep it as prose.
            LineKind::Bias(_) | LineKind::FreeText => {
                self.free_text.push((number, line.to_owned()));
            }
        }
    }

    fn open_block(&mut self, number: usize, symbol: &str, line: &str) {
        if let Some(existing) = self.blocks.iter().position(|b| b.block.ticker == symbol) {
            self.warnings.push(Warning::DuplicateTicker {
                line: number,
                ticker: symbol.to_owned(),
            });
            self.current = Some(existing);
            return;
        }
        self.blocks.push(OpenBlock {
            block: TickerBlock {
                ticker: symbol.to_owned(),
                bias: None,
                bias_levels: Vec::new(),
                setups: Vec::new(),
            },
            line: number,
            line_text: line.to_owned(),
        });
        self.current = Some(self.blocks.len() - 1);
    }

    /// The block the next setup or bias belongs to.
    fn current_block(&mut self) -> Option<&mut TickerBlock> {
        let index = self.current?;
        self.blocks.get_mut(index).map(|open| &mut open.block)
    }

    /// Appends bias text to the current block, joining parts with a space.
    fn add_bias(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let Some(block) = self.current_block() else {
            return;
        };
        match &mut block.bias {
            Some(bias) if !bias.is_empty() => {
                bias.push(' ');
                bias.push_str(text);
            }
            slot => *slot = Some(text.to_owned()),
        }
    }

    fn add_setup(&mut self, number: usize, raw: &str, line: SetupLine) {
        // Field access (not `current_block`) keeps `warnings` borrowable below.
        let block = self.current.and_then(|i| self.blocks.get_mut(i));
        let Some(OpenBlock { block, .. }) = block else {
            self.warnings.push(Warning::SetupWithoutTicker {
                line: number,
                text: raw.to_owned(),
            });
            return;
        };
        // More setups than u32 can count cannot fit in memory; saturate anyway.
        let index = u32::try_from(block.setups.len() + 1).unwrap_or(u32::MAX);
        for target in targets_not_beyond(line.direction, &line.trigger, &line.targets) {
            self.warnings.push(Warning::TargetNotBeyondTrigger {
                line: number,
                ticker: block.ticker.clone(),
                setup_index: index,
                target,
            });
        }
        if let Some(word) = line.conflicting_direction {
            self.warnings
                .push(Warning::DirectionConflict { line: number, word });
        }
        if let Some(text) = line.ignored_text {
            self.warnings
                .push(Warning::IgnoredText { line: number, text });
        }
        block.setups.push(Setup {
            index,
            label: line.label,
            direction: line.direction,
            strength: line.strength,
            qualifier: line.qualifier,
            trigger: line.trigger,
            targets: line.targets,
            raw_line: raw.to_owned(),
        });
    }
}

/// What one cleaned line is.
#[derive(Debug)]
enum LineKind<'a> {
    Blank,
    BiasContinuation(&'a str),
    Bias(&'a str),
    Ticker(&'a str),
    Setup(SetupLine),
    UnreadableSetup(SetupProblem),
    Decoration,
    FreeText,
}

/// Classifies a cleaned line, in the order of precedence of the module doc.
fn classify(line: &str, after_bias: bool) -> LineKind<'_> {
    if line.is_empty() {
        return LineKind::Blank;
    }
    if after_bias && starts_with_dash(line) {
        return LineKind::BiasContinuation(continuation_text(line));
    }
    if let Some(text) = read_bias(line) {
        return LineKind::Bias(text);
    }
    if let Some(symbol) = read_ticker(line) {
        return LineKind::Ticker(symbol);
    }
    match read_setup(line) {
        Reading::Setup(setup) => LineKind::Setup(setup),
        Reading::Unreadable(problem) => LineKind::UnreadableSetup(problem),
        Reading::NotASetup if has_alphanumeric(line) => LineKind::FreeText,
        Reading::NotASetup => LineKind::Decoration,
    }
}

/// The prices of a text in order, each once.
fn distinct_prices(text: &str) -> Vec<Decimal> {
    let mut levels: Vec<Decimal> = Vec::new();
    for price in scan_prices(text) {
        if !levels.contains(&price) {
            levels.push(price);
        }
    }
    levels
}
