//! Demo traffic: the real A+ setup messages from the fixtures, plus ordinary chatter.
//!
//! The binary uses this to pre-fill history and to post live messages on a timer, so the whole
//! pipeline can be watched working without a Discord token.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::message::{Author, NewMessage};

/// The A+ fixtures file, embedded at build time.
pub const APLUS_FIXTURES_JSON: &str = include_str!("../../fixtures/aplus-messages.json");

/// Ordinary messages posted between setups, so a consumer sees more than A+ posts.
pub const CHATTER: &[&str] = &[
    "gm everyone",
    "SPY looking heavy into the open",
    "anyone trading NVDA earnings?",
    "took profits on the 580 calls, thanks!",
    "what time is the Fed speaker today?",
    "lol that wick",
    "BTO 1 COIN 73c 04/06 @ 1.03",
    "patience today, chop until 10:30",
];

/// Users who post the chatter.
fn chatter_authors() -> [Author; 3] {
    [
        Author::user(900_000_000_000_000_001, "swing_sam"),
        Author::user(900_000_000_000_000_002, "theta_tina"),
        Author::user(900_000_000_000_000_003, "gamma_gus"),
    ]
}

/// One fixture reduced to what is needed to post it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    /// Fixture name (`A01`, ...).
    pub name: String,
    /// The message text (the snapshot's for forwards).
    pub text: String,
    /// Whether the original was a forward.
    pub forwarded: bool,
    /// The original author.
    pub author: Author,
}

impl Fixture {
    /// A message for `channel_id` that looks like the original (a forward stays a forward).
    #[must_use]
    pub fn to_message(&self, channel_id: u64) -> NewMessage {
        let message = if self.forwarded {
            NewMessage::forward(channel_id, self.text.clone())
        } else {
            NewMessage::text(channel_id, self.text.clone())
        };
        message.author(self.author.clone())
    }
}

/// Parses the embedded A+ fixtures.
///
/// # Errors
/// When the fixture file is not the expected JSON (a unit test guards against that).
pub fn aplus_fixtures() -> Result<Vec<Fixture>, serde_json::Error> {
    let entries: Vec<Value> = serde_json::from_str(APLUS_FIXTURES_JSON)?;
    Ok(entries.iter().filter_map(fixture_from_entry).collect())
}

fn fixture_from_entry(entry: &Value) -> Option<Fixture> {
    let message = entry.get("message")?;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let snapshot = message
        .pointer("/message_snapshots/0/message/content")
        .and_then(Value::as_str);
    let (text, forwarded) = match snapshot {
        Some(text) if content.is_empty() => (text, true),
        _ => (content, false),
    };
    let author = message.get("author").map_or_else(Author::default, |a| {
        let id = a
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok());
        let name = a.get("username").and_then(Value::as_str);
        match (id, name) {
            (Some(id), Some(name)) => Author::user(id, name),
            _ => Author::default(),
        }
    });
    Some(Fixture {
        name: entry
            .get("fixture")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        text: text.to_owned(),
        forwarded,
        author,
    })
}

/// Endless demo traffic: A+ fixtures round-robin, each followed by one chatter line, spread
/// round-robin over the channels.
#[derive(Debug, Clone)]
pub struct DemoFeed {
    fixtures: Vec<Fixture>,
    channels: Vec<u64>,
    step: usize,
}

impl DemoFeed {
    /// A feed over `channels`; empty `channels` or fixtures make an empty feed.
    #[must_use]
    pub fn new(fixtures: Vec<Fixture>, channels: Vec<u64>) -> Self {
        Self {
            fixtures,
            channels,
            step: 0,
        }
    }

    /// The next A+ message and the chatter line after it; `None` for an empty feed.
    pub fn next_pair(&mut self) -> Option<(NewMessage, NewMessage)> {
        if self.fixtures.is_empty() || self.channels.is_empty() {
            return None;
        }
        let step = self.step;
        self.step += 1;
        let channel = self.channels[step % self.channels.len()];
        let fixture = &self.fixtures[step % self.fixtures.len()];
        let authors = chatter_authors();
        let chatter = NewMessage::text(channel, CHATTER[step % CHATTER.len()])
            .author(authors[step % authors.len()].clone());
        Some((fixture.to_message(channel), chatter))
    }

    /// `count` messages for history, alternating A+ and chatter, spaced one minute apart and
    /// ending a minute before `now`, oldest first.
    pub fn history(&mut self, count: usize, now: DateTime<Utc>) -> Vec<NewMessage> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let Some((aplus, chatter)) = self.next_pair() else {
                break;
            };
            out.push(aplus);
            if out.len() < count {
                out.push(chatter);
            }
        }
        let total = out.len();
        out.into_iter()
            .enumerate()
            .map(|(i, message)| {
                let minutes_ago = i64::try_from(total - i).unwrap_or(i64::MAX);
                message.at(now - Duration::minutes(minutes_ago))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_parsed_with_its_text() {
        let fixtures = aplus_fixtures().expect("fixture file parses");
        assert!(fixtures.len() >= 10, "{}", fixtures.len());
        assert!(fixtures.iter().all(|f| !f.text.is_empty()));
        let forward = fixtures
            .iter()
            .find(|f| f.forwarded)
            .expect("A01 is a forward");
        assert!(forward.text.starts_with("A+ Trade Setups"));
        let message = forward.to_message(5);
        assert_eq!(message.content, "");
        assert_eq!(message.visible_text(), forward.text);
    }

    #[test]
    fn the_feed_goes_round_robin_over_fixtures_and_channels() {
        let fixtures = aplus_fixtures().expect("fixture file parses");
        let count = fixtures.len();
        let mut feed = DemoFeed::new(fixtures.clone(), vec![1, 2]);
        let (first, _) = feed.next_pair().expect("non-empty feed");
        let (second, _) = feed.next_pair().expect("non-empty feed");
        assert_eq!(first.channel_id, 1);
        assert_eq!(second.channel_id, 2);
        for _ in 2..count {
            feed.next_pair();
        }
        let (wrapped, _) = feed.next_pair().expect("non-empty feed");
        assert_eq!(wrapped.visible_text(), fixtures[0].text);
    }

    #[test]
    fn history_is_oldest_first_and_in_the_past() {
        let now = Utc::now();
        let mut feed = DemoFeed::new(aplus_fixtures().expect("fixture file parses"), vec![1]);
        let history = feed.history(5, now);
        assert_eq!(history.len(), 5);
        let times: Vec<_> = history
            .iter()
            .map(|m| m.at.expect("history has times"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert!(times.iter().all(|t| *t < now));
    }
}
