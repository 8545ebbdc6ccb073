//! The load: messages posted to the fake Discord at a steady rate, across
//! the watched channels. Most are posted live (the gateway dispatches them
//! to the bot); every twentieth goes into history only, as if posted while
//! the bot was away, so only a backfill can find it. Every tenth live
//! message is a real A+ setup post, so the worker writes setups, not just
//! parse rows.
//!
//! Every tenth tick also edits, and every twenty-fifth deletes, one of the
//! last hundred live messages, so edits and deletes meet the faults too (the
//! checker wants Discord's final text and deletions in `messages`).
//!
//! History-only posts go to a channel of their own. A backfill reads a
//! channel from its newest stored message on, as Discord's history allows,
//! so a history-only post among live ones of the same channel would model a
//! gateway that skips one message of a healthy session, which Discord does
//! not do (a session's dispatches are sequenced, and a resume replays the
//! gap). In a quiet channel it models what happens: messages posted while
//! the bot was not listening.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use discord_sim::{CHATTER, Fixture, NewMessage, Sim, aplus_fixtures};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::timeline::Timeline;

/// One message in this many goes into history only.
const HISTORY_ONLY_EVERY: u64 = 20;
/// One message in this many is an A+ setup post.
const APLUS_EVERY: u64 = 10;
/// One tick in this many also edits a recent live message.
const EDIT_EVERY: u64 = 10;
/// One tick in this many also deletes a recent live message.
const DELETE_EVERY: u64 = 25;
/// Edits and deletes pick among this many of the latest live messages.
const RECENT: usize = 100;

/// One posted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// Its snowflake.
    pub id: u64,
    /// When it was posted.
    pub at: Duration,
    /// Live (dispatched) or history only.
    pub live: bool,
}

/// What the load did.
#[derive(Debug, Default, Clone)]
pub struct LoadLog {
    /// Every message posted, in order.
    pub posted: Vec<Posted>,
    /// Edits made.
    pub edits: u64,
    /// Deletes made.
    pub deletes: u64,
    /// Posts, edits and deletes the simulator refused (should stay zero).
    pub errors: u64,
}

impl LoadLog {
    /// Messages posted within `[from, to)`.
    pub fn posted_between(&self, from: Duration, to: Duration) -> usize {
        self.posted
            .iter()
            .filter(|p| p.at >= from && p.at < to)
            .count()
    }
}

/// The running load generator.
#[derive(Debug)]
pub struct Load {
    log: Arc<Mutex<LoadLog>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts posting `rate` messages a second: live ones across
    /// `live_channels`, history-only ones in `quiet_channel`.
    pub fn start(
        sim: Sim,
        live_channels: Vec<u64>,
        quiet_channel: u64,
        rate: f64,
        timeline: Timeline,
    ) -> Self {
        let log = Arc::new(Mutex::new(LoadLog::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(post(
            sim,
            live_channels,
            quiet_channel,
            rate,
            timeline,
            Arc::clone(&log),
            stop.clone(),
        ));
        Self { log, stop, task }
    }

    /// Stops posting and returns the log.
    pub async fn finish(self) -> LoadLog {
        self.stop.cancel();
        // The loop ends on cancellation; after a panic the log so far is kept.
        let _ = self.task.await;
        lock(&self.log).clone()
    }
}

fn lock(log: &Mutex<LoadLog>) -> MutexGuard<'_, LoadLog> {
    // Updates are single pushes; a poisoned lock still guards a consistent log.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn post(
    sim: Sim,
    channels: Vec<u64>,
    quiet_channel: u64,
    rate: f64,
    timeline: Timeline,
    log: Arc<Mutex<LoadLog>>,
    stop: CancellationToken,
) {
    // The fixtures are compiled in and a unit test of the simulator parses
    // them; should that ever fail, the load is plain chatter.
    let fixtures: Vec<Fixture> = aplus_fixtures().unwrap_or_default();
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut ticker = tokio::time::interval(period);
    // Keep the spacing after a stall rather than bursting to catch up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    let mut recent: VecDeque<u64> = VecDeque::with_capacity(RECENT);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let live = n % HISTORY_ONLY_EVERY != HISTORY_ONLY_EVERY - 1;
        let channel = if live {
            channels[(n as usize) % channels.len()]
        } else {
            quiet_channel
        };
        let message = match fixtures.get((n / APLUS_EVERY) as usize % fixtures.len().max(1)) {
            Some(fixture) if live && n % APLUS_EVERY == 3 => fixture.to_message(channel),
            _ => NewMessage::text(
                channel,
                format!("{} (#{n})", CHATTER[(n as usize) % CHATTER.len()]),
            ),
        };
        let result = if live {
            sim.post(message)
        } else {
            sim.post_history(message)
        };
        let at = timeline.now();
        let mut log = lock(&log);
        match result {
            Ok(id) => {
                log.posted.push(Posted { id, at, live });
                if live {
                    if recent.len() == RECENT {
                        recent.pop_front();
                    }
                    recent.push_back(id);
                }
            }
            Err(_) => log.errors += 1,
        }
        // A spread-out but repeatable pick among the recent messages.
        let pick = |len: usize| (n as usize).wrapping_mul(7919) % len;
        if n % EDIT_EVERY == EDIT_EVERY / 2 && !recent.is_empty() {
            let id = recent[pick(recent.len())];
            match sim.edit(id, &format!("edited at tick {n}")) {
                Ok(()) => log.edits += 1,
                Err(_) => log.errors += 1,
            }
        }
        if n % DELETE_EVERY == DELETE_EVERY / 2 && !recent.is_empty() {
            let index = pick(recent.len());
            if let Some(id) = recent.remove(index) {
                match sim.delete(id) {
                    Ok(()) => log.deletes += 1,
                    Err(_) => log.errors += 1,
                }
            }
        }
        n += 1;
    }
}
