//! Small helpers for reading the rows of the raw, parameterised SQL this
//! crate runs (statements themselves are built with `outbox::sql::stmt`).
//!
//! Counts come back as `bigint` and are never negative; durations are read
//! as seconds (`extract(epoch FROM ...)::float8`) so no interval type crosses
//! the boundary.

use sea_orm::{QueryResult, Value};

use crate::error::{Error, Result};

/// A `bigint` count column as `u64`.
pub(crate) fn count(row: &QueryResult, column: &str) -> Result<u64> {
    let n: Option<i64> = row.try_get_by(column)?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// A nullable `float8` column.
pub(crate) fn float(row: &QueryResult, column: &str) -> Result<Option<f64>> {
    Ok(row.try_get_by::<Option<f64>, _>(column)?)
}

/// The one row a query must return.
pub(crate) fn one(row: Option<QueryResult>, what: &str) -> Result<QueryResult> {
    row.ok_or_else(|| Error::Unexpected(format!("{what} returned no row")))
}

/// A duration the database will read as an `interval`, written in seconds.
pub(crate) fn interval_secs(d: std::time::Duration) -> Value {
    d.as_secs_f64().into()
}
