//! `events`: the outbox. Insert-only; written only by the `outbox` crate.
//!
//! The `txid` column (type `xid8`) is left out: only `outbox` reads it, in SQL.

use sea_orm::entity::prelude::*;

/// One outbox event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// A UUID v7: time ordered.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub message_id: i64,
    /// `message.created`, `message.updated` or `message.deleted`.
    pub kind: String,
    /// The versioned payload (see `outbox::payload`).
    pub payload: Json,
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
    #[sea_orm(has_one = "super::inbox::Entity")]
    Inbox,
}

impl Related<super::messages::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl Related<super::inbox::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Inbox.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
