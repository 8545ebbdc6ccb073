//! `setups`: one row per parsed setup.

use sea_orm::entity::prelude::*;

/// A parsed trade setup.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "setups")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: i64,
    pub trading_day: Date,
    pub ticker: String,
    /// Position of the setup within its ticker block, from 1.
    pub setup_index: i32,
    /// `Rejection`, `AggressiveBreakdown`, ... (see the parser's `Label`).
    pub label: String,
    /// `long` or `short`.
    pub direction: String,
    pub strength: Option<String>,
    pub qualifier: Option<String>,
    pub trigger_low: Decimal,
    pub trigger_high: Decimal,
    pub targets: Vec<Decimal>,
    #[sea_orm(column_type = "Text")]
    pub raw_line: String,
    pub warning: Option<String>,
    /// Belongs to the message that currently stands for its trading day.
    pub is_current: bool,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::messages::Entity",
        from = "Column::MessageId",
        to = "super::messages::Column::Id"
    )]
    Message,
}

impl Related<super::messages::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
