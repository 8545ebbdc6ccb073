//! The one helper for raw, parameterised SQL, shared by every crate that
//! writes its statements by hand (the SQL itself stays beside its reason in
//! each module).

use sea_orm::{DbBackend, Statement, Value};

/// A PostgreSQL statement with positional parameters (`$1`, `$2`, ...).
pub fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
