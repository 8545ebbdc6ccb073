//! The `event_message_ratio` view (read-only).

use sea_orm::entity::prelude::*;

/// Messages and `message.created` events in one time window.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_message_ratio")]
pub struct Model {
    /// `1 hour` or `24 hours`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub time_window: String,
    pub since: DateTimeWithTimeZone,
    pub messages: i64,
    pub created_events: i64,
    /// 1.0 when balanced; `None` when events exist without messages.
    pub ratio: Option<Decimal>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
