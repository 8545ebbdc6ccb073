//! Gateway connections and sessions: opening and closing connections, IDENTIFY, RESUME and the
//! resume window. A session outlives its connection until it expires or is invalidated.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::{Connection, Identify, Outbound, RefuseWith, State, bare_token};
use crate::payload;
use crate::session::{Session, SessionInfo, intents};

impl State {
    /// Drops sessions that stayed disconnected longer than the resume window.
    pub(super) fn expire_sessions(&mut self) {
        let window = self.settings.resume_window;
        let now = Instant::now();
        self.sessions.retain(|_, s| match s.disconnected_at {
            Some(at) if s.conn.is_none() => now.duration_since(at) <= window,
            _ => true,
        });
    }

    pub fn open_connection(&mut self, tx: UnboundedSender<Outbound>) -> u64 {
        let id = self.next_connection_id;
        self.next_connection_id += 1;
        self.connections.insert(
            id,
            Connection {
                tx,
                session_id: None,
                shard: None,
                heartbeat_acks: true,
            },
        );
        self.stats.connections_opened += 1;
        self.stats.connections_open += 1;
        id
    }

    /// Forgets a connection; its session (if any) stays resumable unless `invalidate`.
    pub fn close_connection(&mut self, conn_id: u64, invalidate: bool) {
        let Some(conn) = self.connections.remove(&conn_id) else {
            return;
        };
        self.stats.connections_open = self.stats.connections_open.saturating_sub(1);
        if let Some(session_id) = conn.session_id {
            if invalidate {
                self.sessions.remove(&session_id);
            } else if let Some(session) = self.sessions.get_mut(&session_id)
                && session.conn == Some(conn_id)
            {
                session.conn = None;
                session.disconnected_at = Some(Instant::now());
            }
        }
        self.recount_connected();
    }

    pub(super) fn recount_connected(&mut self) {
        self.stats.sessions_connected =
            self.sessions.values().filter(|s| s.conn.is_some()).count() as u64;
    }

    pub fn acks_enabled(&self, conn_id: u64) -> bool {
        self.heartbeat_acks
            && self
                .connections
                .get(&conn_id)
                .is_some_and(|c| c.heartbeat_acks)
    }

    pub fn stop_acks(&mut self, conn_id: u64) {
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.heartbeat_acks = false;
        }
    }

    pub fn detach(&mut self, conn_id: u64) {
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = None;
        }
    }

    /// Handles IDENTIFY on `conn_id`: checks it, makes a session and queues READY and the
    /// GUILD_CREATEs of the shard's guilds.
    pub fn identify(&mut self, conn_id: u64, identify: Identify) -> Result<String, RefuseWith> {
        let refusal = self.identify_refusal(conn_id, &identify);
        if let Some(code) = refusal {
            self.stats.identifies_refused += 1;
            return Err(RefuseWith(code));
        }
        let token = bare_token(&identify.token).to_owned();
        // A client identifying again for a shard has given up its disconnected sessions for that
        // shard; dropping them keeps their buffers from growing and their dispatches from being
        // counted for no one.
        self.sessions
            .retain(|_, s| !(s.conn.is_none() && s.token == token && s.shard == identify.shard));
        let session_id = format!("{:032x}", rand::random::<u128>());
        let mut session = Session::new(
            session_id.clone(),
            identify.shard,
            identify.intents,
            token,
            self.settings.replay_buffer,
        );
        session.conn = Some(conn_id);
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = Some(session_id.clone());
            conn.shard = Some(identify.shard[0]);
        }
        let guild_ids: Vec<u64> = self
            .guilds
            .keys()
            .copied()
            .filter(|g| session.handles_guild(Some(*g)))
            .collect();
        let ready = payload::ready(
            &self.settings.bot,
            self.settings.application_id,
            &guild_ids,
            &session_id,
            &self.settings.gateway_url,
            Some(identify.shard),
        );
        deliver(
            &mut session,
            &self.connections,
            "READY",
            &ready.to_string(),
            None,
        );
        let mut dispatched = 1;
        if identify.intents & intents::GUILDS != 0 {
            for guild_id in &guild_ids {
                let d = self.guild_create_payload(*guild_id);
                deliver(
                    &mut session,
                    &self.connections,
                    "GUILD_CREATE",
                    &d.to_string(),
                    None,
                );
                dispatched += 1;
            }
        }
        self.sessions.insert(session_id.clone(), session);
        self.stats.dispatches += dispatched;
        self.stats.identifies += 1;
        self.recount_connected();
        Ok(session_id)
    }

    fn identify_refusal(&self, conn_id: u64, identify: &Identify) -> Option<u16> {
        let already = self
            .connections
            .get(&conn_id)
            .is_some_and(|c| c.session_id.is_some());
        let token = bare_token(&identify.token);
        let bad_token = token.is_empty()
            || self
                .settings
                .bad_token
                .as_deref()
                .is_some_and(|bad| bare_token(bad) == token);
        let [shard_id, shard_count] = identify.shard;
        if already {
            Some(4005)
        } else if bad_token {
            Some(4004)
        } else if let Some(code) = self.identify_close_code {
            Some(code)
        } else if shard_count == 0 || shard_id >= shard_count {
            Some(4010)
        } else if identify.intents & self.settings.disallowed_intents != 0 {
            Some(4014)
        } else {
            None
        }
    }

    /// Handles RESUME on `conn_id`: replays what the session missed, then RESUMED. Returns the
    /// number of frames replayed, or `None` when the session cannot be resumed (it is then
    /// discarded and the caller answers INVALID_SESSION false).
    pub fn resume(
        &mut self,
        conn_id: u64,
        session_id: &str,
        token: &str,
        seq: u64,
    ) -> Option<usize> {
        self.expire_sessions();
        let token = bare_token(token);
        let replay = match self.sessions.get(session_id) {
            Some(session) if session.token == token => session.replay_after(seq).ok(),
            _ => None,
        };
        let Some(replay) = replay else {
            self.sessions.remove(session_id);
            self.stats.resumes_refused += 1;
            self.recount_connected();
            return None;
        };
        let session = self.sessions.get_mut(session_id)?;
        if let Some(old) = session.conn
            && old != conn_id
            && let Some(old_conn) = self.connections.get_mut(&old)
        {
            // Discord moves the session to the new connection; the old one gets nothing more.
            old_conn.session_id = None;
            let _ = old_conn.tx.send(Outbound::Detach);
        }
        session.conn = Some(conn_id);
        session.disconnected_at = None;
        session.resumes += 1;
        let shard = session.shard[0];
        let replayed = replay.len();
        if let Some(conn) = self.connections.get_mut(&conn_id) {
            conn.session_id = Some(session_id.to_owned());
            conn.shard = Some(shard);
            for frame in replay {
                let _ = conn.tx.send(Outbound::Frame {
                    text: frame.frame,
                    message_id: frame.message_id,
                });
            }
        }
        deliver(session, &self.connections, "RESUMED", "{}", None);
        self.stats.dispatches += 1;
        self.stats.replayed += replayed as u64;
        self.stats.resumes += 1;
        self.recount_connected();
        Some(replayed)
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self.sessions.values().map(Session::info).collect();
        sessions.sort_by(|a, b| a.shard.cmp(&b.shard).then(a.session_id.cmp(&b.session_id)));
        sessions
    }
}

/// Gives `session` the next sequence number for an event and queues the frame on its
/// connection, if one is attached.
pub(super) fn deliver(
    session: &mut Session,
    connections: &HashMap<u64, Connection>,
    event: &str,
    d_json: &str,
    message_id: Option<u64>,
) {
    let frame = session.push(event, d_json, message_id);
    if let Some(conn) = session.conn.and_then(|id| connections.get(&id)) {
        // A closed receiver means the connection task is ending; the frame stays in the replay
        // buffer for the RESUME that follows.
        let _ = conn.tx.send(Outbound::Frame {
            text: frame.frame,
            message_id: frame.message_id,
        });
    }
}
