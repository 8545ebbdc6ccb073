//! The operators' tools: one-shot commands that read the pipeline's state
//! and say what to do, and the dashboard that shows the same verdict.
//!
//! Each is a function over a database connection returning a report with a
//! `render` for the terminal and `Serialize` for `--json`; none writes
//! `events` or `inbox` except through `outbox` (`recover`, `relisten`).

pub mod audit;
pub mod dashboard;
pub mod diagnose;
pub mod orphans;
pub mod recover;
pub mod relisten;
