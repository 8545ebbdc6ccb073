//! The bot's integration tests, one binary: each module is one area, and
//! `common` holds what they share (a simulator world, the bot running in
//! this process, queries on what was stored).

mod bad_input;
mod binary;
mod capture;
mod changes;
mod common;
mod group;
mod ingest;
mod pool;
mod recovery;
mod secrets;
mod shards;
mod sweep;
