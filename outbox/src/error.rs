use sea_orm::DbErr;

/// What can go wrong in the outbox, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database refused or could not be reached; retry later.
    #[error("database error")]
    Database(#[from] DbErr),
    /// A row held a value this version cannot read (a newer payload version).
    #[error("unreadable row: {0}")]
    Unreadable(String),
}

impl From<sea_orm::sqlx::Error> for OutboxError {
    fn from(error: sea_orm::sqlx::Error) -> Self {
        OutboxError::Database(DbErr::Custom(error.to_string()))
    }
}
