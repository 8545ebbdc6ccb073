//! Environment shared by the tasks.

use std::process::Command;

/// Variables every test run gets: the database, and loopback exempt from any
/// HTTP proxy (reqwest honours `HTTP_PROXY`; the Discord simulator is local).
pub fn test_environment(command: &mut Command, database_url: &str) {
    command
        .env("DATABASE_URL", database_url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}
