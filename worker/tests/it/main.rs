//! The worker's tests, in one binary (one build and one link instead of
//! one per file): the worker in-process and as its binary against a real
//! PostgreSQL.

mod batch;
mod common;
mod deaf;
mod fixtures;
mod lease;
mod load;
mod policy;
mod secrets;
mod shutdown;
