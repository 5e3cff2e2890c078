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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon_core::router::Delivery;
use axon_core::{CloseReason, RoomId, Services, Session, SessionConfig, ShardId};
use axon_schemas::{ErrorCode, LENGTH_PREFIX_BYTES, StreamFramer};
use bytes::{BufMut as _, Bytes, BytesMut};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{
    AckFrequencyConfig, Connection, Endpoint, IdleTimeout, Incoming, RecvStream, SendStream,
    TransportConfig, VarInt,
};

use crate::connection::{FrameIo, IoError, Timeouts, drive, shutting_down};
use crate::tracker::{ConnectionSlot, ConnectionTracker, FaceKind};

/// The QUIC application protocol.
pub const ALPN: &[u8] = b"axon/1";
/// Lane streams per connection.
pub const LANES: u16 = 8;
/// Datagram bytes held per connection, each way, before the oldest go.
const DATAGRAM_BUFFER_BYTES: usize = 16 * 1024;
/// Bytes a connection's streams may hold that the peer has not yet
/// acknowledged (quinn's `send_window`). quinn's default is 10 MB per
/// connection, which a server of many connections cannot give each one
/// (quinn's documentation says so); with this bound a lagging connection's
/// writes wait and its subscriber queue applies the lag policy, as the
/// kernel's socket buffer does for WebSocket. 512 KiB still carries 5 MB/s
/// to a client 100 ms away.
const SEND_WINDOW_BYTES: u64 = 512 * 1024;
/// Ack-eliciting packets a client may receive before it must acknowledge
/// (the QUIC acknowledgement-frequency extension, which quinn clients
/// support; others ignore the request). Without it a client acknowledges
/// every second packet: in a 1 x 1,000 fan-out, sending datagrams (nearly
/// all of them acknowledgements) was 14 % of the load generator's CPU, and
/// this cuts the datagrams on the loopback per delivery from 0.35 to 0.27
/// (docs/benchmarks.md). A client still acknowledges at once when packets
/// arrive out of order, so loss detection is as before, and within its
/// `max_ack_delay` in any case.
const ACK_ELICITING_THRESHOLD: u32 = 9;
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

/// Receive buffer asked for on the server's UDP socket.
const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;

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
            .send_window(SEND_WINDOW_BYTES)
            .ack_frequency_config(Some({
                let mut acks = AckFrequencyConfig::default();
                acks.ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD));
                acks
            }))
            // Datagrams carry ephemeral frames both ways (one frame per
            // datagram). The buffers fill only while datagrams wait, and
            // the oldest is dropped when they are full.
            .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES))
            .datagram_send_buffer_size(DATAGRAM_BUFFER_BYTES);
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport));
        server.migration(true);
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| QuicError::Bind { addr, source })?;
        // Every connection shares this one socket. The default receive
        // buffer (208 KiB on Linux) overflowed while 100k clients
        // connected (hundreds of thousands of datagrams dropped, each a
        // retransmission later); the kernel caps the size at
        // `net.core.rmem_max`, and a smaller buffer still works.
        match quinn::udp::UdpSocketState::new((&socket).into()) {
            Ok(state) => {
                if let Err(e) = state.set_recv_buffer_size((&socket).into(), RECV_BUFFER_BYTES) {
                    tracing::debug!(error = %e, "could not enlarge the QUIC receive buffer");
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not inspect the QUIC socket"),
        }
        let runtime = quinn::default_runtime().ok_or_else(|| QuicError::Bind {
            addr,
            source: std::io::Error::other("no async runtime"),
        })?;
        let endpoint = Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )
        .map_err(|source| QuicError::Bind { addr, source })?;
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
            let connection = QuicConnection {
                services: self.services.clone(),
                config: Arc::clone(&self.config),
                timeouts: self.timeouts,
                shutdown: self.tracker.shutdown_signal(),
            };
            tokio::spawn(connection.run(incoming, slot));
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
}

/// What one connection's task keeps: no copy of the endpoint or tracker.
struct QuicConnection {
    services: Services,
    config: Arc<SessionConfig>,
    timeouts: Timeouts,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl QuicConnection {
    /// Runs one connection to its end. A plain fn returning an `async move`
    /// block, not an `async fn` (whose arguments rustc stores twice), so an
    /// idle connection's task holds one copy of what it needs.
    fn run(
        self,
        incoming: Incoming,
        slot: ConnectionSlot,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Self {
            services,
            config,
            timeouts,
            shutdown,
        } = self;
        async move {
            // Boxed: the handshake's state is large and over once it is
            // done; kept inline it would stay in every connection's task.
            let handshake = Box::pin(tokio::time::timeout(timeouts.handshake, async move {
                let conn = incoming.await.map_err(|e| e.to_string())?;
                let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((conn, send, recv))
            }));
            let (conn, control, recv) = match handshake.await {
                Ok(Ok(parts)) => parts,
                Ok(Err(e)) => {
                    metrics::counter!("axon_handshake_failures_total", "reason" => "quic")
                        .increment(1);
                    tracing::debug!(error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    metrics::counter!("axon_handshake_failures_total", "reason" => "timeout")
                        .increment(1);
                    return;
                }
            };
            let max_frame_bytes = config.max_frame_bytes;
            drive(
                Session::new(services, config),
                QuicIo {
                    conn,
                    control,
                    recv,
                    framer: StreamFramer::new(max_frame_bytes),
                    ready: VecDeque::new(),
                    failed: None,
                    max_frame_bytes,
                    lanes: Default::default(),
                },
                timeouts,
                shutdown,
                slot.traffic(),
            )
            .await;
            drop(slot);
        }
    }
}

/// Size of the buffers [`framed`] fills: small enough that the allocator
/// reuses them from its free lists. One buffer per write, grown to the size
/// of the batch (large while receivers lag), had the allocator take fresh
/// memory from the kernel again and again, and the kernel zeroing those
/// (huge) pages was 61 % of the server's CPU in the QUIC fan-out
/// (docs/benchmarks.md).
const FRAMED_BUFFER_BYTES: usize = 16 * 1024;

/// `frames`, each behind its length, in exactly-sized buffers of at most
/// [`FRAMED_BUFFER_BYTES`] (a larger frame gets a buffer of its own). quinn
/// keeps the buffers it is given as they are (`write_all_chunks`) until the
/// peer acknowledges them, so the bytes are copied once here and not again.
fn framed<F: AsRef<[u8]>>(frames: &[F]) -> Vec<Bytes> {
    let mut buffers = Vec::new();
    let mut rest = frames;
    while !rest.is_empty() {
        let mut len = 0;
        let mut count = 0;
        for frame in rest {
            let framed_len = LENGTH_PREFIX_BYTES + frame.as_ref().len();
            if count > 0 && len + framed_len > FRAMED_BUFFER_BYTES {
                break;
            }
            len += framed_len;
            count += 1;
        }
        let (these, later) = rest.split_at(count);
        let mut buf = BytesMut::with_capacity(len);
        for frame in these {
            let frame = frame.as_ref();
            buf.put_u32(frame.len() as u32);
            buf.put_slice(frame);
        }
        buffers.push(buf.freeze());
        rest = later;
    }
    buffers
}

/// Most bytes taken from the control stream per read.
const READ_CHUNK: usize = 64 * 1024;

/// One QUIC connection as [`FrameIo`].
struct QuicIo {
    conn: Connection,
    control: SendStream,
    recv: RecvStream,
    /// Cuts the control stream into frames.
    framer: StreamFramer,
    /// Control frames read and not yet returned.
    ready: VecDeque<Bytes>,
    /// Why the control stream cannot go on, returned once `ready` (the
    /// frames before the failure) is empty.
    failed: Option<IoError>,
    /// Limit of a datagram's frame (the framer applies it on the stream).
    max_frame_bytes: usize,
    lanes: [Option<SendStream>; LANES as usize],
}

impl FrameIo for QuicIo {
    async fn recv(&mut self) -> Result<Option<Bytes>, IoError> {
        // Cancel-safe: `read_chunk` and `read_datagram` are, and a chunk's
        // frames move into `ready` in the same poll that returns it.
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            if let Some(failure) = self.failed.take() {
                return Err(failure);
            }
            let chunk = tokio::select! {
                chunk = self.recv.read_chunk(READ_CHUNK, true) => chunk,
                // A datagram is one whole frame, without a length prefix.
                Ok(datagram) = self.conn.read_datagram() => {
                    if datagram.len() > self.max_frame_bytes {
                        return Err(IoError::Refused {
                            code: ErrorCode::FrameTooLarge,
                            message: "datagram over the frame size limit",
                        });
                    }
                    return Ok(Some(datagram));
                }
            };
            match chunk {
                Ok(Some(chunk)) => {
                    let mut frames = Vec::new();
                    let pushed = self.framer.push(chunk.bytes, &mut frames);
                    self.ready.extend(frames);
                    if let Err(e) = pushed {
                        // The rest of the stream cannot be framed safely
                        // without reading what we refuse to hold.
                        self.failed = Some(IoError::Fatal {
                            code: ErrorCode::FrameTooLarge,
                            message: e.to_string(),
                        });
                    }
                }
                Ok(None) if self.framer.is_between_frames() => return Ok(None),
                Ok(None) => {
                    return Err(IoError::Fatal {
                        code: ErrorCode::BadFrame,
                        message: "stream ended inside a frame".into(),
                    });
                }
                Err(e) => return Err(IoError::Lost(e.to_string())),
            }
        }
    }

    async fn send_ephemeral(&mut self, frames: &mut Vec<Bytes>) -> Result<(), IoError> {
        let mut reliable = Vec::new();
        for frame in frames.drain(..) {
            let fits = self
                .conn
                .max_datagram_size()
                .is_some_and(|max| frame.len() <= max);
            // A datagram the peer cannot take (too large, or datagrams
            // off) goes down the control stream instead.
            if fits && self.conn.send_datagram(frame.clone()).is_ok() {
                metrics::counter!("axon_quic_datagrams_out_total").increment(1);
            } else {
                reliable.push(frame);
            }
        }
        if reliable.is_empty() {
            return Ok(());
        }
        self.send(&mut reliable).await
    }

    async fn send(&mut self, out: &mut Vec<Bytes>) -> Result<(), IoError> {
        let mut buffers = framed(out);
        out.clear();
        self.control
            .write_all_chunks(&mut buffers)
            .await
            .map_err(|e| IoError::Lost(e.to_string()))
    }

    async fn send_events(&mut self, events: &mut Vec<Delivery>) -> Result<(), IoError> {
        // Framed straight from the shared frames: each lane's bytes are
        // copied once, into the buffers quinn keeps.
        let mut per_lane: [Vec<&Bytes>; LANES as usize] = Default::default();
        for d in events.iter() {
            per_lane[lane_of(&d.event.room_id) as usize].push(&d.frame);
        }
        let buffers = per_lane.map(|frames| framed(&frames));
        events.clear();
        for (lane, mut buffers) in buffers.into_iter().enumerate() {
            if buffers.is_empty() {
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
                .write_all_chunks(&mut buffers)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    /// What the peer reads: every frame behind its length, in order.
    fn stream_of(frames: &[Bytes]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn framed_buffers_read_as_one_stream_and_stay_small() {
        let frames: Vec<Bytes> = (0..200).map(|i| frame(300 + i, i as u8)).collect();
        let buffers = framed(&frames);
        assert!(buffers.len() > 1, "{} buffers", buffers.len());
        for b in &buffers {
            assert!(
                b.len() <= FRAMED_BUFFER_BYTES,
                "a buffer of {} bytes",
                b.len()
            );
        }
        assert_eq!(buffers.concat(), stream_of(&frames));
    }

    #[test]
    fn a_frame_larger_than_a_buffer_goes_whole_in_its_own() {
        let frames = [
            frame(10, 1),
            frame(FRAMED_BUFFER_BYTES * 2, 2),
            frame(10, 3),
        ];
        let buffers = framed(&frames);
        let lens: Vec<usize> = buffers.iter().map(Bytes::len).collect();
        assert_eq!(lens, [14, 4 + FRAMED_BUFFER_BYTES * 2, 14]);
        assert_eq!(buffers.concat(), stream_of(&frames));
    }

    #[test]
    fn no_frames_no_buffers() {
        assert!(framed::<Bytes>(&[]).is_empty());
    }
}
