//! Throughput of [`parser::parse`] on the real fixture posts.
//!
//! Run with `cargo bench -p parser`. Each workload parses every real fixture
//! message over and over for several rounds of about half a second, and the
//! median rate of the rounds is reported in messages per second. A baseline
//! measured in the same run — counting the lines of each text and scanning it
//! for "A+", i.e. the cost of merely reading the text once — puts the figure in
//! proportion to the machine it ran on: the ratio is what to compare between
//! runs and machines.
//!
//! Needs nothing beyond the standard library and the crate's dev-dependencies.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Timed rounds per workload; the median resists a noisy round or two.
const ROUNDS: usize = 9;
/// Target length of one round.
const ROUND_TIME: Duration = Duration::from_millis(500);
/// A calibration run at least this long decides how many passes make a round.
const CALIBRATION_TIME: Duration = Duration::from_millis(50);

/// One message to parse: its text and post time.
struct Sample {
    text: String,
    posted_at: DateTime<Utc>,
}

fn main() {
    let samples = real_samples();
    let bytes: usize = samples.iter().map(|s| s.text.len()).sum();
    println!(
        "workload: {} real fixture messages ({bytes} bytes), {ROUNDS} rounds of ~{} ms each",
        samples.len(),
        ROUND_TIME.as_millis()
    );

    let parse_rate = measure("parser::parse", &samples, |sample| {
        black_box(parser::parse(black_box(&sample.text), sample.posted_at));
    });
    let baseline_rate = measure(
        "baseline: lines().count() + contains(\"A+\")",
        &samples,
        |sample| {
            let text = black_box(sample.text.as_str());
            black_box((text.lines().count(), text.contains("A+")));
        },
    );

    println!(
        "ratio: parse runs at 1/{:.1} of the baseline's rate ({:.1} µs per message vs {:.3} µs)",
        baseline_rate / parse_rate,
        1e6 / parse_rate,
        1e6 / baseline_rate
    );
}

/// Runs `work` over all samples repeatedly and returns the median rate in
/// messages per second, printing the figures.
fn measure(name: &str, samples: &[Sample], work: impl Fn(&Sample)) -> f64 {
    let pass = || samples.iter().for_each(&work);
    // Warm up caches and the allocator, then find how many passes fill a round.
    let mut passes: u64 = 1;
    let per_pass = loop {
        let start = Instant::now();
        (0..passes).for_each(|_| pass());
        let elapsed = start.elapsed();
        if elapsed >= CALIBRATION_TIME {
            break elapsed.as_secs_f64() / passes as f64;
        }
        passes *= 2;
    };
    let passes_per_round = ((ROUND_TIME.as_secs_f64() / per_pass).ceil() as u64).max(1);

    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            (0..passes_per_round).for_each(|_| pass());
            let messages = passes_per_round * samples.len() as u64;
            messages as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let (low, high) = (rates[0], rates[rates.len() - 1]);
    println!("{name}: median {median:.0} messages/s (rounds from {low:.0} to {high:.0})");
    median
}

/// The real posts of the fixtures (not the synthetic ones), extracted as the
/// worker does: `content`, or the first snapshot's content when it is empty.
fn real_samples() -> Vec<Sample> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/aplus-messages.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let fixtures: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let samples: Vec<Sample> = fixtures
        .as_array()
        .into_iter()
        .flatten()
        .filter(|fixture| {
            fixture["provenance"]
                .as_str()
                .is_some_and(|p| p.starts_with("real"))
        })
        .map(|fixture| {
            let message = &fixture["message"];
            let content = message["content"].as_str().unwrap_or_default();
            let snapshot = message["message_snapshots"][0]["message"]["content"].as_str();
            let text = if content.is_empty() {
                snapshot.unwrap_or_default()
            } else {
                content
            };
            let stamp = message["timestamp"].as_str().unwrap_or_default();
            Sample {
                text: text.to_owned(),
                posted_at: stamp
                    .parse()
                    .unwrap_or_else(|e| panic!("timestamp {stamp:?}: {e}")),
            }
        })
        .collect();
    assert!(
        !samples.is_empty(),
        "no real fixtures in {}",
        path.display()
    );
    samples
}
