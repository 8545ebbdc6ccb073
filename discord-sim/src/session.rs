//! Gateway sessions: what IDENTIFY creates and RESUME continues.
//!
//! A session outlives its WebSocket connection, as on Discord: while no connection is attached,
//! dispatches routed to it still get sequence numbers and wait in its replay buffer, and a
//! RESUME with the last sequence number the client saw gets every later one back.

use std::collections::VecDeque;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;

use crate::faults::Target;
use crate::payload;

/// Gateway intent bits the simulator looks at.
pub mod intents {
    /// `GUILDS`: GUILD_CREATE, THREAD_CREATE, CHANNEL_CREATE.
    pub const GUILDS: u64 = 1 << 0;
    /// `GUILD_MESSAGES`: message events in guild channels and threads.
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    /// `DIRECT_MESSAGES`: message events in DMs.
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    /// `MESSAGE_CONTENT` (privileged): without it guild messages arrive with content blanked.
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
}

/// The shard a guild's events go to: `(guild_id >> 22) % shard_count`.
#[must_use]
pub fn shard_of(guild_id: u64, shard_count: u32) -> u32 {
    let count = u64::from(shard_count.max(1));
    // The remainder is below `shard_count`, which is a u32, so the conversion cannot fail.
    u32::try_from((guild_id >> 22) % count).unwrap_or(0)
}

/// Public view of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `session_id` sent in READY.
    pub session_id: String,
    /// `[shard_id, shard_count]` from IDENTIFY (`[0, 1]` when none was sent).
    pub shard: [u32; 2],
    /// Intents from IDENTIFY.
    pub intents: u64,
    /// Whether a connection is attached now.
    pub connected: bool,
    /// Last sequence number assigned.
    pub seq: u64,
    /// How many times it was resumed.
    pub resumes: u32,
}

/// One buffered dispatch.
#[derive(Debug, Clone)]
pub(crate) struct BufferedFrame {
    pub seq: u64,
    pub frame: Utf8Bytes,
    /// Message id for MESSAGE_CREATE frames, so writes can be counted per message.
    pub message_id: Option<u64>,
}

/// Why a RESUME cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// The client claims a sequence number the session never reached.
    FromTheFuture,
    /// Frames after the client's sequence number were already dropped from the buffer.
    TooOld,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub shard: [u32; 2],
    pub intents: u64,
    pub token: String,
    pub seq: u64,
    buffer: VecDeque<BufferedFrame>,
    buffer_cap: usize,
    /// Connection attached now, if any.
    pub conn: Option<u64>,
    /// When the last connection went away, for expiry.
    pub disconnected_at: Option<Instant>,
    pub resumes: u32,
}

impl Session {
    pub fn new(
        id: String,
        shard: [u32; 2],
        intents: u64,
        token: String,
        buffer_cap: usize,
    ) -> Self {
        Self {
            id,
            shard,
            intents,
            token,
            seq: 0,
            buffer: VecDeque::new(),
            buffer_cap: buffer_cap.max(1),
            conn: None,
            disconnected_at: None,
            resumes: 0,
        }
    }

    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            shard: self.shard,
            intents: self.intents,
            connected: self.conn.is_some(),
            seq: self.seq,
            resumes: self.resumes,
        }
    }

    /// Whether events of `guild_id` (`None` = DM) are routed to this session.
    pub fn handles_guild(&self, guild_id: Option<u64>) -> bool {
        match guild_id {
            Some(guild_id) => shard_of(guild_id, self.shard[1]) == self.shard[0],
            // Discord sends DMs to shard 0 only.
            None => self.shard[0] == 0,
        }
    }

    /// Whether this session is picked by `target`.
    pub fn matches(&self, target: &Target) -> bool {
        match target {
            Target::All => true,
            Target::Shard(shard) => self.shard[0] == *shard,
            Target::Session(id) => &self.id == id,
        }
    }

    /// Assigns the next sequence number to a dispatch, buffers it and returns the frame.
    pub fn push(&mut self, event: &str, d_json: &str, message_id: Option<u64>) -> BufferedFrame {
        self.seq += 1;
        let frame = BufferedFrame {
            seq: self.seq,
            frame: Utf8Bytes::from(payload::dispatch_frame(self.seq, event, d_json)),
            message_id,
        };
        if self.buffer.len() == self.buffer_cap {
            self.buffer.pop_front();
        }
        self.buffer.push_back(frame.clone());
        frame
    }

    /// The frames a client that last saw `after_seq` has missed, oldest first.
    pub fn replay_after(&self, after_seq: u64) -> Result<Vec<BufferedFrame>, ReplayError> {
        if after_seq > self.seq {
            return Err(ReplayError::FromTheFuture);
        }
        let oldest_kept = self.buffer.front().map_or(self.seq + 1, |f| f.seq);
        if after_seq + 1 < oldest_kept && after_seq < self.seq {
            return Err(ReplayError::TooOld);
        }
        Ok(self
            .buffer
            .iter()
            .filter(|f| f.seq > after_seq)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(shard: [u32; 2], cap: usize) -> Session {
        Session::new("s".into(), shard, 0, "t".into(), cap)
    }

    #[test]
    fn guilds_are_routed_to_the_shard_discord_would_pick() {
        let guild = (5_u64 << 22) | 123;
        assert_eq!(shard_of(guild, 2), 1);
        assert_eq!(shard_of(guild, 1), 0);
        assert!(session([1, 2], 10).handles_guild(Some(guild)));
        assert!(!session([0, 2], 10).handles_guild(Some(guild)));
        assert!(session([0, 2], 10).handles_guild(None));
        assert!(!session([1, 2], 10).handles_guild(None));
    }

    #[test]
    fn replay_returns_exactly_the_frames_after_the_clients_sequence() {
        let mut s = session([0, 1], 100);
        for i in 0..5 {
            s.push("MESSAGE_CREATE", "{}", Some(i));
        }
        let missed = s.replay_after(2).expect("replayable");
        assert_eq!(
            missed.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(s.replay_after(5).expect("replayable").is_empty());
        assert_eq!(s.replay_after(6).unwrap_err(), ReplayError::FromTheFuture);
    }

    #[test]
    fn replay_fails_once_missed_frames_fell_out_of_the_buffer() {
        let mut s = session([0, 1], 3);
        for _ in 0..6 {
            s.push("X", "{}", None);
        }
        // Buffer holds 4, 5, 6.
        assert_eq!(s.replay_after(2).unwrap_err(), ReplayError::TooOld);
        assert_eq!(s.replay_after(3).expect("replayable").len(), 3);
    }
}
