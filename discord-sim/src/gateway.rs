//! The WebSocket gateway: one task per connection.
//!
//! The task sends HELLO, then serves the client's opcodes (HEARTBEAT, IDENTIFY, RESUME) and
//! writes whatever the shared state queues for it: dispatches of its session, replays, and
//! injected faults, in the order they were queued.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::faults::GatewayFault;
use crate::net::PeerInfo;
use crate::payload;
use crate::shared::Shared;
use crate::state::{Identify, Outbound, RefuseWith};

/// How long to wait for the client's close frame after sending ours.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /` with an upgrade: becomes a gateway connection.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| run_connection(shared, socket, peer))
}

/// A frame from the client; only `op` and `d` matter.
#[derive(Debug, Deserialize)]
struct ClientFrame {
    op: u8,
    #[serde(default)]
    d: Value,
}

#[derive(Debug, Deserialize)]
struct IdentifyData {
    #[serde(default)]
    token: String,
    #[serde(default)]
    intents: u64,
    shard: Option<[u32; 2]>,
}

#[derive(Debug, Deserialize)]
struct ResumeData {
    #[serde(default)]
    token: String,
    session_id: String,
    #[serde(default)]
    seq: u64,
}

/// How a connection ended, which decides what happens to its session and socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client went away or the socket failed; the session stays resumable.
    Gone,
    /// The client sent a close frame with this code.
    ClientClosed(Option<u16>),
    /// The simulator closed the connection (close frame or abrupt drop).
    Closed,
    /// The simulator resets the TCP connection.
    Reset,
    /// The simulator is shutting down.
    Shutdown,
}

/// Whether to keep serving after handling something.
enum Flow {
    Continue,
    Stop(End),
}

struct Connection {
    shared: Arc<Shared>,
    conn_id: u64,
    socket: WebSocket,
}

async fn run_connection(shared: Arc<Shared>, socket: WebSocket, peer: PeerInfo) {
    let (tx, rx) = mpsc::unbounded_channel();
    let conn_id = shared.with(|s| s.open_connection(tx));
    let span = info_span!("gateway_connection", conn_id, peer = %peer.addr);
    async move {
        debug!("connection opened");
        let mut connection = Connection {
            shared: Arc::clone(&shared),
            conn_id,
            socket,
        };
        let end = connection.serve(rx).await;
        // A client closing with 1000/1001 ends its session on Discord; anything else leaves it
        // resumable.
        let invalidate = matches!(end, End::ClientClosed(Some(1000 | 1001)));
        shared.with(|s| s.close_connection(conn_id, invalidate));
        if end == End::Reset {
            peer.reset_on_drop();
        }
        info!(?end, "connection ended");
        // Dropping the socket here closes the TCP connection (with RST when armed above).
        drop(connection);
    }
    .instrument(span)
    .await;
}

impl Connection {
    async fn serve(&mut self, mut rx: mpsc::UnboundedReceiver<Outbound>) -> End {
        let hello = payload::hello_frame(self.shared.heartbeat_interval_ms());
        if self.send_text(hello).await.is_err() {
            return End::Gone;
        }
        let cancel = self.shared.cancel.clone();
        loop {
            let flow = tokio::select! {
                () = cancel.cancelled() => Flow::Stop(End::Shutdown),
                incoming = self.socket.recv() => self.on_incoming(incoming).await,
                outbound = rx.recv() => match outbound {
                    Some(outbound) => self.on_outbound(outbound).await,
                    // The state dropped our sender: we were forgotten.
                    None => Flow::Stop(End::Gone),
                },
            };
            if let Flow::Stop(end) = flow {
                return end;
            }
        }
    }

    async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), axum::Error> {
        self.socket.send(Message::Text(text.into())).await
    }

    async fn on_incoming(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Flow {
        match incoming {
            None => Flow::Stop(End::Gone),
            Some(Err(error)) => {
                debug!(%error, "socket error");
                Flow::Stop(End::Gone)
            }
            Some(Ok(Message::Text(text))) => self.on_client_frame(text.as_str()).await,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| f.code);
                self.shared.with(|s| s.stats.client_closes += 1);
                debug!(?code, "client closed");
                // Flush the close reply tungstenite queued, so the client sees a clean close.
                let _ = futures::SinkExt::flush(&mut self.socket).await;
                Flow::Stop(End::ClientClosed(code))
            }
            Some(Ok(Message::Binary(_))) => {
                warn!("binary frame from client ignored (ETF is not supported)");
                Flow::Continue
            }
            // tungstenite answers pings itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
        }
    }

    async fn on_client_frame(&mut self, text: &str) -> Flow {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => {
                warn!(%error, "undecodable frame from client");
                return self.close(4002, "Error while decoding payload.").await;
            }
        };
        match frame.op {
            1 => self.on_heartbeat().await,
            2 => self.on_identify(frame.d).await,
            6 => self.on_resume(frame.d).await,
            // Presence, voice state, member requests, soundboard requests: accepted, ignored.
            3 | 4 | 8 | 31 => {
                debug!(op = frame.op, "opcode ignored");
                Flow::Continue
            }
            op => {
                warn!(op, "unknown opcode from client ignored");
                Flow::Continue
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        let conn_id = self.conn_id;
        let ack = self.shared.with(|s| {
            s.stats.heartbeats += 1;
            let ack = s.acks_enabled(conn_id);
            if ack {
                s.stats.heartbeat_acks += 1;
            }
            ack
        });
        if !ack {
            debug!("heartbeat left unacknowledged");
            return Flow::Continue;
        }
        match self.send_text(payload::heartbeat_ack_frame()).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop(End::Gone),
        }
    }

    async fn on_identify(&mut self, d: Value) -> Flow {
        let data: IdentifyData = match serde_json::from_value(d) {
            Ok(data) => data,
            Err(error) => {
                warn!(%error, "malformed IDENTIFY");
                return self.close(4002, "Error while decoding payload.").await;
            }
        };
        let identify = Identify {
            token: data.token,
            intents: data.intents,
            shard: data.shard.unwrap_or([0, 1]),
        };
        let (shard, intents) = (identify.shard, identify.intents);
        let conn_id = self.conn_id;
        match self.shared.with(|s| s.identify(conn_id, identify)) {
            Ok(session_id) => {
                info!(
                    session_id,
                    shard_id = shard[0],
                    shard_count = shard[1],
                    intents,
                    "identified"
                );
                Flow::Continue
            }
            Err(RefuseWith(code)) => {
                warn!(
                    code,
                    shard_id = shard[0],
                    shard_count = shard[1],
                    intents,
                    "IDENTIFY refused"
                );
                self.close(code, close_reason(code)).await
            }
        }
    }

    async fn on_resume(&mut self, d: Value) -> Flow {
        let data: ResumeData = match serde_json::from_value(d) {
            Ok(data) => data,
            Err(error) => {
                warn!(%error, "malformed RESUME");
                return self.close(4002, "Error while decoding payload.").await;
            }
        };
        let conn_id = self.conn_id;
        let resumed = self
            .shared
            .with(|s| s.resume(conn_id, &data.session_id, &data.token, data.seq));
        match resumed {
            Some(replayed) => {
                info!(
                    session_id = data.session_id,
                    seq = data.seq,
                    replayed,
                    "resumed"
                );
                Flow::Continue
            }
            None => {
                info!(
                    session_id = data.session_id,
                    seq = data.seq,
                    "RESUME refused"
                );
                match self.send_text(payload::invalid_session_frame(false)).await {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop(End::Gone),
                }
            }
        }
    }

    async fn on_outbound(&mut self, outbound: Outbound) -> Flow {
        match outbound {
            Outbound::Frame { text, message_id } => {
                if self.send_text(text).await.is_err() {
                    return Flow::Stop(End::Gone);
                }
                self.shared.with(|s| s.note_frame_written(message_id));
                Flow::Continue
            }
            Outbound::Detach => {
                debug!("session moved to another connection");
                Flow::Continue
            }
            Outbound::Fault(fault) => self.on_fault(fault).await,
        }
    }

    async fn on_fault(&mut self, fault: GatewayFault) -> Flow {
        info!(?fault, "injecting gateway fault");
        let frame = match fault {
            GatewayFault::Close { code, reason } => return self.close(code, &reason).await,
            GatewayFault::Drop => return Flow::Stop(End::Closed),
            GatewayFault::Reset => return Flow::Stop(End::Reset),
            GatewayFault::StopHeartbeatAcks => {
                let conn_id = self.conn_id;
                self.shared.with(|s| s.stop_acks(conn_id));
                return Flow::Continue;
            }
            GatewayFault::InvalidSession { resumable } => {
                if !resumable {
                    let conn_id = self.conn_id;
                    self.shared.with(|s| s.detach(conn_id));
                }
                payload::invalid_session_frame(resumable)
            }
            GatewayFault::Reconnect => payload::reconnect_frame(),
            GatewayFault::RequestHeartbeat => payload::heartbeat_request_frame(),
            GatewayFault::RawFrame(text) => text,
        };
        match self.send_text(frame).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop(End::Gone),
        }
    }

    /// Sends a close frame and waits briefly for the client's reply.
    async fn close(&mut self, code: u16, reason: &str) -> Flow {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
            let drain = async {
                while let Some(Ok(message)) = self.socket.recv().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, drain).await;
        }
        Flow::Stop(End::Closed)
    }
}

/// Discord's reason text for its close codes.
fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "Unknown error.",
        4002 => "Error while decoding payload.",
        4004 => "Authentication failed.",
        4005 => "Already authenticated.",
        4010 => "Invalid shard.",
        4011 => "Sharding required.",
        4013 => "Invalid intent(s).",
        4014 => "Disallowed intent(s).",
        _ => "Closed by discord-sim.",
    }
}
