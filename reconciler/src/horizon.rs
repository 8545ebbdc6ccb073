//! Time horizons of a pass, computed from the database clock.
//!
//! Orphan selection and pruning compare row timestamps written by the
//! database with cut-offs; taking `now` from the same clock means a host
//! whose clock jumps (or a reconciler on another host) can never widen what a
//! pass re-fires or deletes. Tests build horizons with [`Horizons::at`] and any
//! `now` they like, for instance one in the future to exercise pruning.

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;

use crate::config::PassConfig;
use crate::error::{Error, Result};
use crate::sql::one;

/// The moments a pass works against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    /// The pass's `now`; the missing-event scan stops here.
    pub now: DateTime<Utc>,
    /// Unclaimed events created before this are orphans.
    pub orphan_cutoff: DateTime<Utc>,
    /// Processed events created before this are pruned, and the
    /// missing-event scan never looks further back than this.
    pub retention_cutoff: DateTime<Utc>,
}

impl Horizons {
    /// The horizons of a pass at `now`.
    pub fn at(now: DateTime<Utc>, config: &PassConfig) -> Result<Self> {
        let back = |d: std::time::Duration, what: &str| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or_else(|| Error::Config(format!("the {what} reaches before the year 0")))
        };
        Ok(Self {
            now,
            orphan_cutoff: back(config.orphan_grace, "orphan grace")?,
            retention_cutoff: back(config.retention, "retention")?,
        })
    }

    /// The horizons of a pass starting now by the database's clock.
    pub async fn from_database<C: ConnectionTrait>(db: &C, config: &PassConfig) -> Result<Self> {
        Self::at(database_now(db).await?, config)
    }
}

/// The database's clock.
pub async fn database_now<C: ConnectionTrait>(db: &C) -> Result<DateTime<Utc>> {
    let row = one(
        db.query_one_raw(stmt("SELECT statement_timestamp() AS now", []))
            .await?,
        "the clock query",
    )?;
    Ok(row.try_get_by("now")?)
}
