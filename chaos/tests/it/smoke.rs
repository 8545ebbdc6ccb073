//! A short chaos run as part of the ordinary test suite: the bot killed at
//! random under load, then PostgreSQL restarted twice under load, each for
//! 25 seconds. Every invariant and proof of the full suite applies; the time
//! bounds get triple slack, because this runs next to other tests on a busy
//! machine.
//!
//! The services are this package's `chaos-bot`, `chaos-worker` and
//! `chaos-reconciler` binaries (built from the services' own `main.rs`), so
//! cargo builds them, fresh, before this test runs, whichever way the tests
//! were started. Without them the test fails; it never skips.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaos::{Scenario, Settings};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_bot_and_restarting_postgres_under_load_loses_nothing_and_applies_nothing_twice()
 {
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chaos-smoke-{}", std::process::id()));
    let mut settings = Settings::new(common::binaries(), log_root);
    settings.duration = Duration::from_secs(25);
    settings.rate = 10.0;
    settings.timing_factor = 3.0;
    settings.drain_timeout = Duration::from_secs(60);

    let started = Instant::now();
    let report = chaos::run(
        &settings,
        &[Scenario::KillBot, Scenario::PgRestart],
        &CancellationToken::new(),
        |_| {},
    )
    .await;
    let text = report.render();
    println!(
        "{text}\nsmoke run took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report.scenarios.len(), 2, "{text}");
    for scenario in &report.scenarios {
        assert!(
            scenario.error.is_none(),
            "{} could not run: {:?}\n{text}",
            scenario.name,
            scenario.error
        );
    }
    assert!(report.passed(), "a chaos scenario failed:\n{text}");
    // The checker counted real traffic, not an empty run.
    for scenario in &report.scenarios {
        assert!(scenario.emitted > 100, "{text}");
        assert_eq!(
            scenario.lost + scenario.duplicated + scenario.unexpected,
            0,
            "{text}"
        );
    }
}
