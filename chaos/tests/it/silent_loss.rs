//! A short F16 run as part of the ordinary test suite: 5% of the message
//! dispatches are dropped silently on a healthy gateway session for 20
//! seconds, and the bot's history sweep (every 10 seconds) must bring every
//! message, edit and delete back, storing nothing twice. Every invariant and
//! proof of the full scenario applies, with triple time slack for a busy
//! machine.
//!
//! The services are this package's `chaos-*` binaries, built by cargo before
//! this test runs; without them the test fails, it never skips.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaos::{Scenario, Settings};
use tokio_util::sync::CancellationToken;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silently_dropped_dispatches_are_all_brought_back_by_the_history_sweep() {
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chaos-f16-{}", std::process::id()));
    let mut settings = Settings::new(common::binaries(), log_root);
    settings.duration = Duration::from_secs(20);
    settings.rate = 20.0;
    settings.timing_factor = 3.0;
    settings.drain_timeout = Duration::from_secs(45);

    let started = Instant::now();
    let report = chaos::run(
        &settings,
        &[Scenario::SilentLoss],
        &CancellationToken::new(),
        |_| {},
    )
    .await;
    let text = report.render();
    println!(
        "{text}\nF16 run took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let [scenario] = report.scenarios.as_slice() else {
        panic!("one scenario expected:\n{text}");
    };
    assert!(scenario.error.is_none(), "{:?}\n{text}", scenario.error);
    assert!(report.passed(), "F16 failed:\n{text}");
    assert!(scenario.emitted > 100, "{text}");
    assert_eq!(
        scenario.lost + scenario.duplicated + scenario.unexpected,
        0,
        "{text}"
    );
}
