//! What the bot's history sweeps found, for `diagnose`.
//!
//! The bot sweeps each watched channel's recent history on a schedule and
//! records every sweep in `upstream_sweeps`. A sweep that had to store
//! messages means the gateway silently dropped them (Discord delivered
//! nothing and said nothing): the pipeline still caught up, but the gateway
//! session needs attention. No sweep for a long while means the safety net
//! itself is gone.

use chrono::{DateTime, Utc};
use outbox::sql::stmt;
use sea_orm::ConnectionTrait;
use serde::Serialize;

use crate::error::Result;

/// A recent sweep that found messages missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepLoss {
    /// The channel swept.
    pub channel_id: i64,
    /// When the sweep ran.
    pub swept_at: DateTime<Utc>,
    /// Messages Discord listed that were not stored.
    pub missing: u64,
    /// Messages Discord listed in the window.
    pub listed: u64,
}

/// The sweeps' side of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sweeps {
    /// When any channel was last swept (`None`: never).
    pub last_sweep_at: Option<DateTime<Utc>>,
    /// Sweeps of the last hour that found messages missing, latest first
    /// (at most ten).
    pub losses_1h: Vec<SweepLoss>,
}

/// Reads the last sweep time and the last hour's sweeps that found losses.
pub async fn read<C: ConnectionTrait>(db: &C) -> Result<Sweeps> {
    let last = db
        .query_one_raw(stmt(
            "SELECT max(swept_at) AS last_sweep_at FROM upstream_sweeps WHERE error IS NULL",
            [],
        ))
        .await?;
    let last_sweep_at = match last {
        Some(row) => row.try_get_by::<Option<DateTime<Utc>>, _>("last_sweep_at")?,
        None => None,
    };
    let rows = db
        .query_all_raw(stmt(
            "SELECT channel_id, swept_at, missing, listed FROM upstream_sweeps \
             WHERE missing > 0 AND swept_at > now() - interval '1 hour' \
             ORDER BY swept_at DESC LIMIT 10",
            [],
        ))
        .await?;
    let mut losses_1h = Vec::with_capacity(rows.len());
    for row in rows {
        let missing: i64 = row.try_get_by("missing")?;
        let listed: i64 = row.try_get_by("listed")?;
        losses_1h.push(SweepLoss {
            channel_id: row.try_get_by("channel_id")?,
            swept_at: row.try_get_by("swept_at")?,
            missing: u64::try_from(missing).unwrap_or(0),
            listed: u64::try_from(listed).unwrap_or(0),
        });
    }
    Ok(Sweeps {
        last_sweep_at,
        losses_1h,
    })
}
