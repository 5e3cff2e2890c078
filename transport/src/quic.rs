//! The QUIC face (quinn): ALPN [`ALPN`], the same frames as WebSocket, each
//! prefixed by its length (4 bytes, big-endian).
//!
//! The client opens one bidirectional stream, the *control stream*: its
//! frames (Hello, Subscribe, Send, ...) go up it, and the server's answers
//! (Welcome, SendAck, errors, replays and `Subscribed`) come down it. Live
//! events come on unidirectional streams the server opens, one per *lane*:
//! a room's lane is [`lane_of`] its id, so a room's events stay in order on
//! one stream while a lost packet on one lane does not hold up the others.
//! A client reads every stream at once and, for a room it is subscribing
//! to, holds lane events until the room's `Subscribed` has arrived on the
//! control stream (events with `seq <= head` came in the replay).
//!
//! Connection migration stays on; the idle timeout is the native idle
//! timeout (clients ping or use QUIC keep-alives).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon_core::router::Delivery;
use axon_core::{CloseReason, RoomId, Services, Session, SessionConfig, ShardId};
use axon_schemas::ErrorCode;
use bytes::{BufMut as _, Bytes, BytesMut};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{
    Connection, Endpoint, IdleTimeout, Incoming, RecvStream, SendStream, TransportConfig, VarInt,
};
use tokio::sync::mpsc;

use crate::connection::{FrameIo, IoError, Timeouts, drive, shutting_down};
use crate::tracker::{ConnectionTracker, FaceKind};

/// The QUIC application protocol.
pub const ALPN: &[u8] = b"axon/1";
/// Lane streams per connection.
pub const LANES: u16 = 8;
/// How long a closing connection waits for the peer to read the last frames.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The lane (unidirectional stream) that carries `room`'s live events.
pub fn lane_of(room: &RoomId) -> u16 {
    ShardId::of(room, LANES).0
}

/// Why the QUIC face could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The TLS configuration cannot do QUIC (it needs TLS 1.3).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind QUIC on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// The QUIC face of one server.
#[derive(Clone)]
pub struct QuicFace {
    endpoint: Endpoint,
    services: Services,
    config: Arc<SessionConfig>,
    tracker: Arc<ConnectionTracker>,
    timeouts: Timeouts,
}

impl QuicFace {
    /// Binds the UDP socket with `tls` (its ALPN is set to [`ALPN`]).
    pub fn bind(
        addr: SocketAddr,
        mut tls: rustls::ServerConfig,
        services: Services,
        config: Arc<SessionConfig>,
        tracker: Arc<ConnectionTracker>,
        timeouts: Timeouts,
    ) -> Result<Self, QuicError> {
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
        let mut transport = TransportConfig::default();
        let idle = IdleTimeout::try_from(timeouts.idle)
            .unwrap_or(IdleTimeout::from(VarInt::from_u32(90_000)));
        transport
            .max_idle_timeout(Some(idle))
            // The control stream is the only one a client opens.
            .max_concurrent_bidi_streams(VarInt::from_u32(1))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport));
        server.migration(true);
        let endpoint =
            Endpoint::server(server, addr).map_err(|source| QuicError::Bind { addr, source })?;
        Ok(Self {
            endpoint,
            services,
            config,
            tracker,
            timeouts,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts connections until the server shuts down.
    pub async fn serve(self) {
        let mut shutdown = self.tracker.shutdown_signal();
        loop {
            let incoming = tokio::select! {
                i = self.endpoint.accept() => i,
                () = shutting_down(&mut shutdown) => break,
            };
            let Some(incoming) = incoming else { break };
            let Some(slot) = self.tracker.admit(FaceKind::Quic) else {
                incoming.refuse();
                continue;
            };
            let face = self.clone();
            tokio::spawn(async move {
                face.handle(incoming).await;
                drop(slot);
            });
        }
    }

    /// Closes the endpoint once connections have drained.
    pub async fn close(&self) {
        self.endpoint.close(
            VarInt::from_u32(4000 + u32::from(ErrorCode::ShuttingDown.as_u16())),
            b"shutting down",
        );
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.endpoint.wait_idle()).await;
    }

    async fn handle(self, incoming: Incoming) {
        let setup = async {
            let conn = incoming.await.map_err(|e| e.to_string())?;
            let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, send, recv))
        };
        let (conn, control, recv) = match tokio::time::timeout(self.timeouts.handshake, setup).await
        {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => {
                metrics::counter!("axon_handshake_failures_total", "reason" => "quic").increment(1);
                tracing::debug!(error = %e, "QUIC handshake failed");
                return;
            }
            Err(_) => {
                metrics::counter!("axon_handshake_failures_total", "reason" => "timeout")
                    .increment(1);
                return;
            }
        };
        let (tx, inbound) = mpsc::channel(8);
        let reader = tokio::spawn(read_frames(recv, tx, self.config.max_frame_bytes));
        let io = QuicIo {
            conn,
            control,
            inbound,
            lanes: Default::default(),
        };
        let session = Session::new(self.services.clone(), Arc::clone(&self.config));
        drive(
            session,
            io,
            self.timeouts,
            self.tracker.shutdown_signal(),
            FaceKind::Quic.as_str(),
        )
        .await;
        reader.abort();
    }
}

/// Reads length-prefixed frames from the control stream into `tx`, so the
/// connection loop can wait on them cancel-safely.
async fn read_frames(mut recv: RecvStream, tx: mpsc::Sender<Result<Bytes, IoError>>, max: usize) {
    loop {
        let mut len = [0u8; 4];
        if recv.read_exact(&mut len).await.is_err() {
            return; // finished or reset: the channel closes
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            // The rest of the stream cannot be framed safely without
            // reading what we refuse to hold.
            let _ = tx
                .send(Err(IoError::Fatal {
                    code: ErrorCode::FrameTooLarge,
                    message: format!("frame of {len} bytes; the limit is {max}"),
                }))
                .await;
            return;
        }
        let mut frame = vec![0u8; len];
        if recv.read_exact(&mut frame).await.is_err() {
            let _ = tx
                .send(Err(IoError::Fatal {
                    code: ErrorCode::BadFrame,
                    message: "stream ended inside a frame".into(),
                }))
                .await;
            return;
        }
        if tx.send(Ok(Bytes::from(frame))).await.is_err() {
            return;
        }
    }
}

fn framed(frames: impl Iterator<Item = Bytes>) -> Bytes {
    let mut buf = BytesMut::new();
    for f in frames {
        buf.put_u32(f.len() as u32);
        buf.put_slice(&f);
    }
    buf.freeze()
}

/// One QUIC connection as [`FrameIo`].
struct QuicIo {
    conn: Connection,
    control: SendStream,
    inbound: mpsc::Receiver<Result<Bytes, IoError>>,
    lanes: [Option<SendStream>; LANES as usize],
}

impl FrameIo for QuicIo {
    async fn recv(&mut self) -> Result<Option<Bytes>, IoError> {
        match self.inbound.recv().await {
            Some(Ok(frame)) => Ok(Some(frame)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn send(&mut self, out: &mut Vec<Bytes>) -> Result<(), IoError> {
        let buf = framed(out.drain(..));
        self.control
            .write_all(&buf)
            .await
            .map_err(|e| IoError::Lost(e.to_string()))
    }

    async fn send_events(&mut self, events: &mut Vec<Delivery>) -> Result<(), IoError> {
        let mut per_lane: [Vec<Bytes>; LANES as usize] = Default::default();
        for d in events.drain(..) {
            per_lane[lane_of(&d.event.room_id) as usize].push(d.frame.clone());
        }
        for (lane, frames) in per_lane.into_iter().enumerate() {
            if frames.is_empty() {
                continue;
            }
            let stream = match &mut self.lanes[lane] {
                Some(s) => s,
                slot @ None => slot.insert(
                    self.conn
                        .open_uni()
                        .await
                        .map_err(|e| IoError::Lost(e.to_string()))?,
                ),
            };
            stream
                .write_all(&framed(frames.into_iter()))
                .await
                .map_err(|e| IoError::Lost(e.to_string()))?;
        }
        Ok(())
    }

    async fn close(&mut self, reason: Option<&CloseReason>) {
        // Let the peer read the last frames (the closing error) first.
        let _ = self.control.finish();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.control.stopped()).await;
        let (code, message) = match reason {
            Some(r) => (u32::from(r.websocket_code()), r.message.as_bytes()),
            None => (0, &b""[..]),
        };
        self.conn.close(VarInt::from_u32(code), message);
    }
}
