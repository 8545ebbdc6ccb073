//! The messages of a load: one in a hundred is a real A+ setup post from the
//! fixtures (so the worker parses and decides trading days, as it does in
//! production), the rest ordinary chatter, spread over the watched channels.

use discord_sim::{CHATTER, Fixture, NewMessage, aplus_fixtures};

/// One message in this many is an A+ setup post.
const APLUS_EVERY: u64 = 100;

/// An endless, repeatable stream of messages.
#[derive(Debug)]
pub struct Traffic {
    fixtures: Vec<Fixture>,
    channels: Vec<u64>,
    n: u64,
}

impl Traffic {
    /// A stream over `channels` (round robin).
    pub fn new(channels: Vec<u64>) -> Self {
        Self {
            // The fixtures are compiled into the simulator, whose unit test
            // parses them; should that ever fail, the load is all chatter.
            fixtures: aplus_fixtures().unwrap_or_default(),
            channels,
            n: 0,
        }
    }

    /// The next `count` messages.
    pub fn take(&mut self, count: usize) -> Vec<NewMessage> {
        (0..count).map(|_| self.next_message()).collect()
    }

    /// The next message.
    pub fn next_message(&mut self) -> NewMessage {
        let n = self.n;
        self.n += 1;
        let channel = self.channels[(n as usize) % self.channels.len().max(1)];
        match self.aplus(n) {
            Some(fixture) => fixture.to_message(channel),
            None => NewMessage::text(channel, chatter(n)),
        }
    }

    /// Texts only, for rows written straight into the database.
    pub fn texts(&mut self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                let n = self.n;
                self.n += 1;
                match self.aplus(n) {
                    Some(fixture) => fixture.text.clone(),
                    None => chatter(n),
                }
            })
            .collect()
    }

    fn aplus(&self, n: u64) -> Option<&Fixture> {
        if n % APLUS_EVERY != APLUS_EVERY / 2 || self.fixtures.is_empty() {
            return None;
        }
        self.fixtures
            .get((n / APLUS_EVERY) as usize % self.fixtures.len())
    }
}

/// Ordinary chatter, numbered so no two texts are equal.
fn chatter(n: u64) -> String {
    format!("{} (#{n})", CHATTER[(n as usize) % CHATTER.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_in_a_hundred_is_an_aplus_post() {
        let mut traffic = Traffic::new(vec![1, 2, 3]);
        let fixtures: Vec<String> = aplus_fixtures()
            .expect("fixtures parse")
            .into_iter()
            .map(|f| f.text)
            .collect();
        let texts = traffic.texts(1_000);
        let aplus = texts.iter().filter(|t| fixtures.contains(t)).count();
        assert_eq!(aplus, 10);
    }
}
