//! sea-orm entities for the pipeline's tables, and read-only entities for the
//! views operators query.
//!
//! Entities describe rows; they are never event payloads. Payloads are their
//! own versioned types in `outbox`, so a schema change cannot silently change
//! what is on the wire.

pub mod event_message_ratio;
pub mod events;
pub mod inbox;
pub mod message_parses;
pub mod message_tombstones;
pub mod messages;
pub mod pipeline_health;
pub mod reconciler_runs;
pub mod setups;
pub mod ticker_bias;

pub mod prelude {
    //! The entities under short names.
    pub use crate::event_message_ratio::Entity as EventMessageRatio;
    pub use crate::events::Entity as Events;
    pub use crate::inbox::Entity as Inbox;
    pub use crate::message_parses::Entity as MessageParses;
    pub use crate::message_tombstones::Entity as MessageTombstones;
    pub use crate::messages::Entity as Messages;
    pub use crate::pipeline_health::Entity as PipelineHealth;
    pub use crate::reconciler_runs::Entity as ReconcilerRuns;
    pub use crate::setups::Entity as Setups;
    pub use crate::ticker_bias::Entity as TickerBias;
}
