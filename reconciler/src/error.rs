use outbox::OutboxError;
use sea_orm::DbErr;

/// What can go wrong in the reconciler, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or could not be reached; retry later.
    #[error("database error")]
    Database(#[from] DbErr),
    /// The same, reported by the driver underneath (the advisory-lock connection).
    #[error("database connection error")]
    Connection(#[from] sea_orm::sqlx::Error),
    /// An outbox operation failed.
    #[error("outbox operation failed")]
    Outbox(#[from] OutboxError),
    /// A value read from the database was not what this version expects.
    #[error("unexpected database content: {0}")]
    Unexpected(String),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The schedule line does not parse.
    #[error(transparent)]
    Schedule(#[from] crate::service::schedule::ScheduleError),
    /// Binding the HTTP listener or another local resource failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and all its causes on one line (see [`service::telemetry::error_chain`]).
pub use service::telemetry::error_chain as chain;
