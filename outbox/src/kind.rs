//! Event kinds: the `events.kind` column.

use std::fmt;
use std::str::FromStr;

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A message was stored for the first time.
    MessageCreated,
    /// A stored message's text or edit time changed.
    MessageUpdated,
    /// A stored message was deleted in Discord.
    MessageDeleted,
}

impl EventKind {
    /// The name stored in `events.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageCreated => "message.created",
            EventKind::MessageUpdated => "message.updated",
            EventKind::MessageDeleted => "message.deleted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "message.created" => Ok(EventKind::MessageCreated),
            "message.updated" => Ok(EventKind::MessageUpdated),
            "message.deleted" => Ok(EventKind::MessageDeleted),
            other => Err(format!("unknown event kind `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in [
            EventKind::MessageCreated,
            EventKind::MessageUpdated,
            EventKind::MessageDeleted,
        ] {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert!("message.exploded".parse::<EventKind>().is_err());
    }
}
