//! `ticker_bias`: the bias line of each ticker block.

use sea_orm::entity::prelude::*;

/// A ticker's bias and the levels it names.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticker_bias")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticker: String,
    pub trading_day: Date,
    pub bias: Option<String>,
    pub levels: Vec<Decimal>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
