//! The reconciler's integration tests, one binary: each module is one area
//! (the binary's commands, the pass, the service, stale listeners, a dead
//! host, secrets in logs) against a real PostgreSQL; `common` holds the
//! helpers they share.

mod cli;
mod common;
mod dead_host;
mod listeners;
mod pass;
mod secrets;
mod service;
