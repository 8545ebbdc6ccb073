//! The outbox's tests, in one binary, against a real PostgreSQL.

mod consume;
mod listen;
mod record;
