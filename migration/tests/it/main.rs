//! The schema's tests, in one binary, against a real PostgreSQL.

mod migrations;
mod roles;
