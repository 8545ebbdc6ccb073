//! The `pipeline_health` view (read-only, one row). Interval columns are left
//! out; each has a timestamp column it is derived from.

use sea_orm::entity::prelude::*;

/// The pipeline at a glance.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pipeline_health")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub observed_at: DateTimeWithTimeZone,
    pub last_message_at: Option<DateTimeWithTimeZone>,
    pub last_event_at: Option<DateTimeWithTimeZone>,
    pub last_processed_at: Option<DateTimeWithTimeZone>,
    pub backlog: i64,
    pub unclaimed_events: i64,
    pub failed_events: i64,
    pub dead_events: i64,
    pub oldest_pending_at: Option<DateTimeWithTimeZone>,
    pub messages_1h: i64,
    pub ratio_1h: Option<Decimal>,
    pub processing_rate_1h: Option<Decimal>,
    pub listener_connections: i64,
    pub listener_connected: bool,
    pub last_reconciler_run_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
