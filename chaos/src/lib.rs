//! The chaos suite: proves, under faults, that the pipeline loses no message
//! and applies no effect twice, the way Jepsen checks a database.
//!
//! Each scenario starts the real services as child processes under a small
//! supervisor ([`supervisor`]): the bot, one or more workers and reconcilers,
//! against a private PostgreSQL ([`database`]) and the fake Discord, run
//! in-process ([`stack`]). A load generator ([`load`]) posts messages at a
//! steady rate, some into history only; a sampler ([`sampler`]) checks the
//! instantaneous invariants every second on its own connection; a monitor
//! ([`monitor`]) reads `/readyz` and `/metrics` from outside; an independent
//! listener ([`notifications`]) hears every NOTIFY. Meanwhile the scenario
//! ([`scenarios`]) kills, pauses, cuts or restarts something, with the help
//! of [`faults`] (signals timed to land inside a transaction, session
//! terminations, connection-slot exhaustion) and a freezable TCP [`proxy`]. Then the load
//! stops, the pipeline drains, and the checker ([`checker`]) compares what
//! was stored with what the fake Discord emitted, reads the history of
//! committed effects, and each scenario proves that its fault really forced
//! the recovery path it is about. [`report`] writes the result per scenario
//! (lost / duplicated / unexpected / recovered, restarts, samples, recovery
//! times) and as a table.
//!
//! The invariants ([`invariants`]) are those of the reliability table: I0
//! nothing lost and nothing unexpected, I1 one `message.created` event per
//! message at every sample, I2 no event without its message, I3 no effect
//! applied twice, I4 nothing left unprocessed after the drain. A fault
//! script sees the stack through [`script`]; what is known at the end is in
//! [`facts`].
//!
//! The services run as processes, not tasks, because the faults only mean
//! something to a whole process. This package builds them from their own
//! `main.rs` as `chaos-bot`, `chaos-worker` and `chaos-reconciler` (see
//! [`bins`]), so `cargo test` always has fresh ones for the smoke test.

pub mod bins;
pub mod checker;
pub mod database;
pub mod facts;
pub mod faults;
pub mod invariants;
pub mod load;
pub mod monitor;
pub mod notifications;
pub mod probe;
pub mod prometheus;
pub mod proxy;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod scenarios;
pub mod script;
pub mod settings;
pub mod stack;
pub mod supervisor;
pub mod timeline;
pub mod verdict;

pub use bins::Binaries;
pub use report::{ScenarioReport, SuiteReport};
pub use scenarios::Scenario;
pub use settings::Settings;

use tokio_util::sync::CancellationToken;

/// Runs `scenarios` one after another and reports on all of them. A
/// cancelled run stops after the scenario in progress has cleaned up.
pub async fn run(
    settings: &Settings,
    scenarios: &[Scenario],
    cancel: &CancellationToken,
    mut on_done: impl FnMut(&ScenarioReport),
) -> SuiteReport {
    let mut reports = Vec::new();
    for scenario in scenarios {
        if cancel.is_cancelled() {
            break;
        }
        tracing::info!(scenario = scenario.name(), "scenario starting");
        let report = scenario::run(*scenario, settings, cancel).await;
        on_done(&report);
        reports.push(report);
    }
    SuiteReport {
        seed: settings.seed,
        scenarios: reports,
    }
}
