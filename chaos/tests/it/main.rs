//! The chaos package's integration tests, one binary: the real service
//! binaries (this package's `chaos-*` builds of their `main.rs`) run under
//! faults, behind poolers, with TLS, and watched by Prometheus and a browser.

mod common;
mod dashboard_browser;
mod metrics_readme;
mod monitoring;
mod poolers;
mod services;
mod silent_loss;
mod smoke;
mod tls;
