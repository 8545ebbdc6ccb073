//! `message_parses`: the parse outcome of each message.

use sea_orm::entity::prelude::*;

/// One message's parse outcome.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_parses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: i64,
    /// The event whose processing wrote this row.
    pub event_id: Uuid,
    pub parser_version: String,
    pub is_aplus: bool,
    /// Why a message is not an A+ message (`no_aplus_header`, `test_header`, ...).
    pub reason: Option<String>,
    pub trading_day: Option<Date>,
    pub trading_day_method: Option<String>,
    pub header_variant: Option<String>,
    pub header_tag: Option<String>,
    pub is_weekend: bool,
    pub mentions_everyone: bool,
    pub free_text_lines: Json,
    pub warnings: Json,
    pub setup_count: i32,
    pub content_sha256: String,
    pub content_length: i32,
    /// `current`, `superseded`, `duplicate`, `not_aplus` or `retracted`.
    pub status: String,
    /// The message that superseded this one, or that this one duplicates.
    pub superseded_by: Option<i64>,
    pub parsed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
