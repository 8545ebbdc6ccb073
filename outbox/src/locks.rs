//! Every advisory-lock key of the pipeline, in one place.
//!
//! PostgreSQL keeps two advisory-lock spaces apart: one-key (`bigint`) locks
//! and two-key (`int, int`) locks never collide. Message ids use the one-key
//! space; everything else is a two-key lock under [`LOCK_CLASS`], where the
//! single-instance jobs ([`JobLock`]) take small second keys and trading
//! days take keys from [`DAY_KEY_BASE`] up.
//!
//! Two locks live outside this crate because their crates sit below it:
//! `migration`'s session lock while migrating (one-key,
//! `0x6170_6c75_732d_6d69`, far above any Discord snowflake) and
//! `testkit`'s while it builds its template database (`(0x6170_6475, 2)`,
//! a class of its own).
//!
//! The numbers are part of the protocol between running processes: a worker
//! of this version and one of the previous must still exclude each other, so
//! no key may change value.

use chrono::{Datelike as _, NaiveDate};
use sea_orm::{ConnectionTrait as _, DatabaseTransaction};

use crate::OutboxError;
use crate::sql::stmt;

/// Advisory-lock class (first half of a two-key lock) for everything but
/// message ids.
pub const LOCK_CLASS: i32 = 0x6170_6c75; // "aplu"

/// Single-instance jobs: second keys under [`LOCK_CLASS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum JobLock {
    /// Held by the reconciler for a whole pass.
    Reconciler = 1,
}

impl JobLock {
    /// The two keys of `pg_advisory_lock(class, key)`.
    pub fn keys(self) -> (i32, i32) {
        (LOCK_CLASS, self as i32)
    }
}

/// The first trading-day key: day numbers start far above the job keys.
pub const DAY_KEY_BASE: i32 = 1_000_000;

/// The second key, under [`LOCK_CLASS`], of the lock the worker holds while
/// it decides a trading day.
pub fn day_key(day: NaiveDate) -> i32 {
    DAY_KEY_BASE + day.num_days_from_ce()
}

/// Takes the transaction-level advisory locks of these message ids (the
/// one-key space), in id order so that two transactions locking overlapping
/// sets cannot deadlock.
pub async fn lock_message_ids(txn: &DatabaseTransaction, ids: &[i64]) -> Result<(), OutboxError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock(id) FROM unnest($1::bigint[]) AS id ORDER BY id",
        [sorted.into()],
    ))
    .await?;
    Ok(())
}

/// Takes the transaction-level locks of these trading days, in one
/// statement and in ascending key order (the statement orders them), so two
/// batches touching the same days cannot deadlock.
pub async fn lock_days(txn: &DatabaseTransaction, days: &[NaiveDate]) -> Result<(), OutboxError> {
    if days.is_empty() {
        return Ok(());
    }
    let keys: Vec<i32> = days.iter().copied().map(day_key).collect();
    txn.execute_raw(stmt(
        "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k ORDER BY k",
        [LOCK_CLASS.into(), keys.into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_keep_their_values() {
        assert_eq!(LOCK_CLASS, 1_634_757_749);
        assert_eq!(JobLock::Reconciler.keys(), (1_634_757_749, 1));
        let day = NaiveDate::from_ymd_opt(2025, 6, 18).expect("valid date");
        assert_eq!(day_key(day), 1_000_000 + 739_420);
    }
}
