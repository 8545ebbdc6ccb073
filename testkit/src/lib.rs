//! Test support for the workspace. Development only.
//!
//! [`cluster`] runs private PostgreSQL clusters with the machine's binaries;
//! [`packages`] finds (or installs) the other tools tests run.
//! With the `db` feature (the default): [`TestDb`] gives each test a fresh,
//! migrated database on the server named by `DATABASE_URL`, or on a private
//! cluster when it is unset; [`factory`] builds rows; [`eventually`] waits for
//! a condition instead of sleeping; [`pgbouncer`] puts a private PgBouncer
//! in front of the server; [`tls`] makes certificates for a server with TLS. A test that cannot get a database fails
//! with a message that says what to install: it never skips.

pub mod cluster;
pub mod packages;
pub mod secrets;

#[cfg(feature = "db")]
pub mod child;

#[cfg(feature = "db")]
mod db;
#[cfg(feature = "db")]
pub mod factory;
#[cfg(feature = "db")]
pub mod pgbouncer;
#[cfg(feature = "db")]
pub mod tls;
#[cfg(feature = "db")]
mod wait;

#[cfg(feature = "db")]
pub use db::{PasswordForm, PasswordRole, TestDb, server_url};
#[cfg(feature = "db")]
pub use migration::roles::Role;
#[cfg(feature = "db")]
pub use wait::eventually;
