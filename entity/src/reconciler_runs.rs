//! `reconciler_runs`: one row per repair pass.

use sea_orm::entity::prelude::*;

/// What one reconciler pass did and saw.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciler_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub instance: String,
    pub started_at: DateTimeWithTimeZone,
    pub finished_at: DateTimeWithTimeZone,
    pub missing_events_created: i64,
    pub orphans_refired: i64,
    pub retries_due: i64,
    pub dead_events: i64,
    pub pruned_events: i64,
    pub pruned_inbox: i64,
    pub backlog: i64,
    pub ratio: Option<Decimal>,
    pub processing_rate: Option<Decimal>,
    /// Cursor: the next pass looks for messages without events from here.
    pub messages_scanned_through: Option<DateTimeWithTimeZone>,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
