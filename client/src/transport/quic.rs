//! QUIC: `quic://HOST:PORT` (quinn, rustls, ALPN `axon/1`).
//!
//! The client opens one bidirectional *control stream*: its frames go up,
//! the server's answers (Welcome, SendAck, errors, history, replays and
//! `Subscribed`) come down. Live events come on unidirectional *lane*
//! streams the server opens (at most 8). Every frame on every stream is
//! preceded by its length (4 bytes, big-endian).
//!
//! Background tasks read the control stream and every lane into channels,
//! so [`QuicTransport::recv`] is cancel-safe and merges them into the one
//! inbound path the connection task already has. The channels are bounded:
//! while the application's event buffer is full, the tasks stop reading and
//! QUIC flow control passes the pressure on to the server, as with
//! WebSocket.
//!
//! Joining replay and live: for a room being subscribed or resumed, lane
//! events (`seq > head`) may overtake the replay and `Subscribed` on the
//! control stream. This transport does not reorder them; the per-room
//! [`ResumeCursor`](crate::cursor::ResumeCursor) does, for every transport:
//! while a room's `Subscribed` is outstanding it holds events that do not
//! follow its last `seq` (delivering the replay as it comes) and fetches no
//! gap; at `Subscribed { head }` it drops `seq <= head`, delivers what held
//! events follow, and only then asks history for any gap left. So the
//! result is exactly once and in order, and a gap fill never races the
//! replay (relying on gap fills alone would fetch events the replay is
//! about to bring, and if that fill failed, skip past them).
//!
//! Until the first control frame (`Welcome`, or the refusal) is read, lane
//! frames wait in their channel, so nothing comes before it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axon_schemas::{FrameTooLarge, StreamFramer};
use bytes::{BufMut as _, Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ConnectionError, ReadError, RecvStream, VarInt};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::http::Uri;

use super::{Dial, Inbound};
use crate::error::ClientError;

/// The QUIC application protocol of the native protocol.
const ALPN: &[u8] = b"axon/1";
/// The port of `quic://HOST` without one (the server's default).
const DEFAULT_PORT: u16 = 8443;
/// Longest a close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer asked for a shared endpoint's UDP socket.
const SHARED_RECV_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Control frames, and batches of lane frames, read ahead of the
/// connection task.
const CHANNEL_FRAMES: usize = 64;
/// Most bytes taken from a stream per read. A lane batch holds the frames
/// one read completes, so the lane channel holds at most
/// `CHANNEL_FRAMES` x 16 KiB (1 MiB) read ahead of the application.
const READ_CHUNK: usize = 16 * 1024;

/// A parsed `quic://` URL.
#[derive(Debug, Clone)]
pub(crate) struct QuicEndpoint {
    /// Host as in the URL (without IPv6 brackets); also the TLS server
    /// name, as for `wss://` (Axon's development certificate names
    /// `localhost`, `127.0.0.1` and `::1`).
    host: String,
    port: u16,
}

impl QuicEndpoint {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ClientError::Config(format!("invalid URL {url:?}: {e}")))?;
        if !uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("quic"))
        {
            return Err(ClientError::Config(format!("not a quic:// URL: {url:?}")));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(ClientError::Config(format!(
                "a quic:// URL has no path: {url:?}"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Config(format!("no host in URL {url:?}")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(DEFAULT_PORT);
        Ok(Self { host, port })
    }
}

/// The quinn client configuration for `tls`: ALPN `axon/1`, no idle
/// timeout (liveness is the connection task's heartbeat and the server's
/// idle timeout), no bidirectional streams from the server.
fn quinn_config(tls: &rustls::ClientConfig) -> Result<quinn::ClientConfig, ClientError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Config(format!("TLS configuration for QUIC: {e}")))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(None)
        .max_concurrent_bidi_streams(VarInt::from_u32(0));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// One QUIC client endpoint (one UDP socket) that many clients share
/// through [`ClientConfig::quic_endpoint`](crate::ClientConfig::quic_endpoint).
///
/// By default each QUIC client binds a UDP socket of its own, so a process
/// holds at most as many QUIC connections as it may open files; through a
/// shared endpoint it holds as many as memory allows (a load generator
/// puts 10,000 connections or more on each). Clones are handles to the
/// same socket. It lives as long as a handle or a connection on it does:
/// closing a client closes its connection, not the endpoint.
#[derive(Clone)]
pub struct SharedQuicEndpoint {
    endpoint: quinn::Endpoint,
}

impl std::fmt::Debug for SharedQuicEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQuicEndpoint")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .field("open_connections", &self.endpoint.open_connections())
            .finish()
    }
}

impl SharedQuicEndpoint {
    /// Binds a UDP socket at `local` (e.g. `127.0.0.1:0`). Connections
    /// through it trust what `config` trusts (its
    /// [`tls_config`](crate::ClientConfig::tls_config), or its roots, read
    /// once here). Must be called within a Tokio runtime.
    pub fn bind(local: SocketAddr, config: &crate::ClientConfig) -> Result<Self, ClientError> {
        let tls = match &config.tls_config {
            Some(tls) => Arc::clone(tls),
            None => super::tls::client_config(config)?,
        };
        let bind_failed = |e: std::io::Error| {
            ClientError::connection(format!("binding a UDP socket at {local}"), e)
        };
        let socket = std::net::UdpSocket::bind(local).map_err(bind_failed)?;
        // Thousands of connections share this socket: a default receive
        // buffer (208 KiB on Linux) overflows while the endpoint is busy
        // with handshakes, and every datagram dropped there is a
        // retransmission later. The kernel caps the size at its maximum
        // (`net.core.rmem_max`); a smaller buffer still works.
        let state = quinn::udp::UdpSocketState::new((&socket).into()).map_err(bind_failed)?;
        if let Err(e) = state.set_recv_buffer_size((&socket).into(), SHARED_RECV_BUFFER_BYTES) {
            tracing::debug!(error = %e, "could not enlarge the UDP receive buffer");
        }
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_failed)?;
        endpoint.set_default_client_config(quinn_config(&tls)?);
        Ok(Self { endpoint })
    }

    /// The socket's address.
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        self.endpoint
            .local_addr()
            .map_err(|e| ClientError::connection("reading the UDP socket's address", e))
    }

    /// Connections open on it now.
    pub fn open_connections(&self) -> usize {
        self.endpoint.open_connections()
    }
}

/// What the control-stream reader hands over.
type Reply = Result<Inbound, ClientError>;

/// One open QUIC connection.
pub(crate) struct QuicTransport {
    endpoint: quinn::Endpoint,
    /// `endpoint` is shared with other clients: closing this connection
    /// must not wait for the endpoint to go idle.
    shared: bool,
    conn: quinn::Connection,
    control: quinn::SendStream,
    /// Control-stream frames, then how the connection ended.
    replies: mpsc::Receiver<Reply>,
    /// Frames from every lane (and datagram), merged, a read's worth at a
    /// time.
    lanes: mpsc::Receiver<Result<Vec<Bytes>, ClientError>>,
    /// Lane frames received and not yet returned.
    lane_frames: VecDeque<Bytes>,
    /// The first control frame (`Welcome` or the refusal) has been read:
    /// until then lane frames wait, so that nothing comes before it.
    answered: bool,
    /// The control reader and the lane acceptor (which owns the lane
    /// readers); aborted on drop.
    tasks: Vec<JoinHandle<()>>,
}

impl QuicTransport {
    /// Resolves the host, performs the QUIC/TLS handshake offering
    /// `axon/1` (through the shared endpoint of `dial`, or a UDP socket of
    /// its own), opens the control stream and starts the readers.
    pub async fn connect(endpoint: &QuicEndpoint, dial: &Dial<'_>) -> Result<Self, ClientError> {
        let target = format!("{}:{}", endpoint.host, endpoint.port);
        let addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| ClientError::connection(format!("resolving {target}"), e))?
            .next()
            .ok_or_else(|| ClientError::Connection {
                message: format!("{target} resolves to no address"),
                source: None,
            })?;
        let (quic, shared, connecting) = match dial.quic {
            Some(shared) => {
                let connecting = shared.endpoint.connect(addr, &endpoint.host);
                (shared.endpoint.clone(), true, connecting)
            }
            None => {
                let tls = dial
                    .tls
                    .ok_or_else(|| ClientError::Config("quic:// without TLS roots".into()))?;
                let config = quinn_config(tls)?;
                let local = super::local_socket_addr(dial.local_addr, &addr)?;
                let quic = quinn::Endpoint::client(local)
                    .map_err(|e| ClientError::connection("binding a UDP socket", e))?;
                let connecting = quic.connect_with(config, addr, &endpoint.host);
                (quic, false, connecting)
            }
        };
        let conn = connecting
            .map_err(|e| ClientError::Config(format!("QUIC connect to {target}: {e}")))?
            .await
            .map_err(|e| ClientError::connection(format!("QUIC handshake with {target}"), e))?;
        let (control, control_recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::connection("opening the control stream", e))?;

        let max_frame_bytes = dial.max_frame_bytes;
        let (reply_tx, replies) = mpsc::channel(CHANNEL_FRAMES);
        let (lane_tx, lanes) = mpsc::channel(CHANNEL_FRAMES);
        let tasks = vec![
            tokio::spawn(read_control(
                conn.clone(),
                control_recv,
                reply_tx,
                max_frame_bytes,
            )),
            tokio::spawn(read_datagrams(
                conn.clone(),
                lane_tx.clone(),
                max_frame_bytes,
            )),
            tokio::spawn(accept_lanes(conn.clone(), lane_tx, max_frame_bytes)),
        ];
        Ok(Self {
            endpoint: quic,
            shared,
            conn,
            control,
            replies,
            lanes,
            lane_frames: VecDeque::new(),
            answered: false,
            tasks,
        })
    }

    /// Writes one frame, length first, up the control stream.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        let mut buf = BytesMut::with_capacity(4 + frame.len());
        buf.put_u32(frame.len() as u32);
        buf.put_slice(&frame);
        self.control
            .write_all(&buf)
            .await
            .map_err(|e| ClientError::connection("QUIC write", e))
    }

    /// The next frame from the control stream or any lane (control first
    /// when both have one). Cancel-safe: it only receives from channels.
    pub async fn recv(&mut self) -> Result<Inbound, ClientError> {
        if !self.answered {
            let reply = next_reply(&mut self.replies).await;
            self.answered = matches!(reply, Ok(Inbound::Frame(_)));
            return reply;
        }
        loop {
            if let Some(frame) = self.lane_frames.pop_front() {
                // Control first when both have one.
                if let Ok(reply) = self.replies.try_recv() {
                    self.lane_frames.push_front(frame);
                    return reply;
                }
                return Ok(Inbound::Frame(frame));
            }
            tokio::select! {
                biased;
                reply = next_reply(&mut self.replies) => return reply,
                // A closed lane channel disables this branch; the end of
                // the connection is reported by the control reader.
                Some(lane) = self.lanes.recv() => self.lane_frames.extend(lane?),
            }
        }
    }

    /// Finishes the control stream and closes the connection (code 0),
    /// waiting briefly for the server to acknowledge.
    pub async fn close(&mut self) {
        let _ = self.control.finish();
        self.conn.close(VarInt::from_u32(0), b"");
        if !self.shared {
            // Our own socket: let it send the close before it goes. A
            // shared endpoint outlives this connection and sends it anyway.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.endpoint.wait_idle()).await;
        }
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // The readers hold handles to the connection: close it explicitly
        // rather than wait for the last handle to go.
        self.conn.close(VarInt::from_u32(0), b"");
    }
}

/// The next control-stream item; a closed channel is a closed connection.
async fn next_reply(replies: &mut mpsc::Receiver<Reply>) -> Reply {
    replies.recv().await.unwrap_or(Ok(Inbound::Closed {
        code: None,
        reason: String::new(),
    }))
}

/// Reads a stream's length-prefixed frames a chunk at a time.
struct FrameReader {
    recv: RecvStream,
    framer: StreamFramer,
}

impl FrameReader {
    fn new(recv: RecvStream, max: usize) -> Self {
        Self {
            recv,
            framer: StreamFramer::new(max),
        }
    }

    /// The frames the next read completes (at least one); `Ok(None)` at a
    /// clean end of the stream.
    async fn next(&mut self) -> Result<Option<Vec<Bytes>>, ReadFailure> {
        loop {
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => {
                    let mut frames = Vec::new();
                    self.framer
                        .push(chunk.bytes, &mut frames)
                        .map_err(ReadFailure::TooLarge)?;
                    if !frames.is_empty() {
                        return Ok(Some(frames));
                    }
                }
                Ok(None) if self.framer.is_between_frames() => return Ok(None),
                Ok(None) => return Err(ReadFailure::EndedInsideFrame),
                Err(e) => return Err(ReadFailure::Read(e)),
            }
        }
    }
}

enum ReadFailure {
    Read(ReadError),
    TooLarge(FrameTooLarge),
    EndedInsideFrame,
}

impl ReadFailure {
    /// What the connection task should see: a close with the server's
    /// code, or an error.
    fn into_reply(self) -> Reply {
        match self {
            ReadFailure::Read(ReadError::ConnectionLost(e)) => Ok(closed(&e)),
            ReadFailure::Read(e) => Err(ClientError::connection("QUIC read", e)),
            ReadFailure::TooLarge(e) => {
                Err(ClientError::Protocol(format!("the server announced a {e}")))
            }
            ReadFailure::EndedInsideFrame => Err(ClientError::Protocol(
                "the server ended the control stream inside a frame".into(),
            )),
        }
    }
}

/// How a lost connection is reported: the server closes with application
/// code 4000 + its error code (after an `Error` frame with `close`).
fn closed(e: &ConnectionError) -> Inbound {
    match e {
        ConnectionError::ApplicationClosed(close) => Inbound::Closed {
            code: u16::try_from(close.error_code.into_inner()).ok(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        other => Inbound::Closed {
            code: None,
            reason: other.to_string(),
        },
    }
}

/// Reads the control stream into `tx`; at its end, reports how the
/// connection closed.
async fn read_control(
    conn: quinn::Connection,
    recv: RecvStream,
    tx: mpsc::Sender<Reply>,
    max: usize,
) {
    let mut reader = FrameReader::new(recv, max);
    loop {
        let frames = match reader.next().await {
            Ok(Some(frames)) => frames,
            Ok(None) => {
                // The server finished the stream; its close follows.
                let reason = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
                let _ = tx
                    .send(Ok(match reason {
                        Ok(e) => closed(&e),
                        Err(_) => Inbound::Closed {
                            code: None,
                            reason: "control stream finished".into(),
                        },
                    }))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx.send(e.into_reply()).await;
                return;
            }
        };
        for frame in frames {
            if tx.send(Ok(Inbound::Frame(frame))).await.is_err() {
                return;
            }
        }
    }
}

/// Accepts every lane the server opens and reads them all at once into
/// `tx`. The lane readers live in a [`JoinSet`], so aborting this task
/// stops them too.
async fn accept_lanes(
    conn: quinn::Connection,
    tx: mpsc::Sender<Result<Vec<Bytes>, ClientError>>,
    max: usize,
) {
    let mut readers = JoinSet::new();
    while let Ok(lane) = conn.accept_uni().await {
        readers.spawn(read_lane(lane, tx.clone(), max));
    }
    // The connection is over; let the readers hand on what they hold.
    while readers.join_next().await.is_some() {}
}

/// Reads the datagrams the server sends (ephemeral frames, one per
/// datagram, no length prefix) into `tx` until the connection ends.
async fn read_datagrams(
    conn: quinn::Connection,
    tx: mpsc::Sender<Result<Vec<Bytes>, ClientError>>,
    max: usize,
) {
    while let Ok(datagram) = conn.read_datagram().await {
        if datagram.len() > max {
            tracing::warn!(len = datagram.len(), "ignoring an oversized datagram");
            continue;
        }
        if tx.send(Ok(vec![datagram])).await.is_err() {
            return;
        }
    }
}

/// Reads one lane into `tx` until it ends. Connection loss is not reported
/// here (the control reader reports it, after the frames before it).
async fn read_lane(
    lane: RecvStream,
    tx: mpsc::Sender<Result<Vec<Bytes>, ClientError>>,
    max: usize,
) {
    let mut reader = FrameReader::new(lane, max);
    loop {
        let item = match reader.next().await {
            Ok(Some(frames)) => Ok(frames),
            Ok(None) | Err(ReadFailure::Read(_)) => return,
            Err(ReadFailure::TooLarge(e)) => Err(ClientError::Protocol(format!(
                "the server announced a lane {e}"
            ))),
            Err(ReadFailure::EndedInsideFrame) => Err(ClientError::Protocol(
                "the server ended a lane inside a frame".into(),
            )),
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_endpoints() {
        let local = QuicEndpoint::parse("quic://127.0.0.1:8443").unwrap();
        assert_eq!((local.host.as_str(), local.port), ("127.0.0.1", 8443));
        let named = QuicEndpoint::parse("quic://chat.example.org/").unwrap();
        assert_eq!(
            (named.host.as_str(), named.port),
            ("chat.example.org", DEFAULT_PORT)
        );
        let v6 = QuicEndpoint::parse("quic://[::1]:9").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9));
        assert!(QuicEndpoint::parse("quic://localhost:8443/_axon/v1/ws").is_err());
        assert!(QuicEndpoint::parse("ws://localhost:8443").is_err());
    }
}
