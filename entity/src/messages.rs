//! `messages`: one row per Discord message id.

use sea_orm::entity::prelude::*;

/// A stored Discord message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// The Discord snowflake.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub guild_id: Option<i64>,
    pub channel_id: i64,
    pub author_id: i64,
    pub author_name: String,
    pub author_is_bot: bool,
    /// The text; for a forwarded message, the snapshot's text.
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub embeds: Json,
    pub attachments: Json,
    pub is_forward: bool,
    /// NUL bytes were replaced before storing.
    pub sanitized: bool,
    pub sent_at: DateTimeWithTimeZone,
    pub edited_at: Option<DateTimeWithTimeZone>,
    pub deleted_at: Option<DateTimeWithTimeZone>,
    pub received_at: DateTimeWithTimeZone,
    /// The message as JSON: for a history row the REST payload as received;
    /// for a gateway row serenity's decoded message serialised again.
    pub raw: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::events::Entity")]
    Events,
    #[sea_orm(has_many = "super::setups::Entity")]
    Setups,
}

impl Related<super::events::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Events.def()
    }
}

impl Related<super::setups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Setups.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
