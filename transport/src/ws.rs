//! The WebSocket face: the HTTP upgrade at [`WS_PATH`] with subprotocol
//! [`SUBPROTOCOL`], then one binary WebSocket message per frame.
//!
//! hyper serves the HTTP request (on the plain and the TLS listener alike)
//! and hands over the upgraded connection; tokio-tungstenite speaks
//! WebSocket on it, with buffers sized here rather than tungstenite's
//! defaults (a 128 KiB read buffer per connection would be 32 times the
//! memory budget of an idle connection).

use std::sync::Arc;
use std::time::Duration;

use axon_core::router::Delivery;
use axon_core::{CloseReason, Services, Session, SessionConfig};
use axon_schemas::ErrorCode;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::connection::{FrameIo, IoError, Timeouts, drive};
use crate::tracker::{ConnectionSlot, ConnectionTracker, FaceKind};

/// Where the WebSocket face is served on the HTTP listeners.
pub const WS_PATH: &str = "/_axon/v1/ws";
/// The WebSocket subprotocol clients must offer.
pub const SUBPROTOCOL: &str = "axon.v1";

/// Read buffer per connection, and the most read from the socket at once.
/// Every connection holds one for its whole life, so it is sized for the
/// frames clients send most (hello, send, ping, typing: a few hundred
/// bytes), not the largest: a larger message grows the buffer to its size
/// as it arrives and takes one read per 512 bytes. 4 KiB here was a third of
/// an idle connection's memory (docs/benchmarks.md, "Idle connections").
const READ_BUFFER_BYTES: usize = 512;
/// Frames are written out once this much is buffered (and at every flush).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// A connection whose peer does not read more than this is failed.
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Longest a close handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The WebSocket limits of a connection under `config`.
fn ws_config(config: &SessionConfig) -> WebSocketConfig {
    // A frame may be at most max_frame_bytes; allow the WebSocket framing
    // a little room so the session, not tungstenite, reports the limit.
    let max = config.max_frame_bytes + 1024;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Response body of the upgrade answers.
pub type Body = Full<Bytes>;

/// The WebSocket face of one server.
#[derive(Clone)]
pub struct WsFace {
    services: Services,
    config: Arc<SessionConfig>,
    tracker: Arc<ConnectionTracker>,
    timeouts: Timeouts,
}

fn plain(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *r.status_mut() = status;
    r
}

fn header_has_token(
    req: &Request<impl Sized>,
    name: hyper::header::HeaderName,
    token: &str,
) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

impl WsFace {
    /// The face, serving sessions with `services` under `config`.
    pub fn new(
        services: Services,
        config: Arc<SessionConfig>,
        tracker: Arc<ConnectionTracker>,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            services,
            config,
            tracker,
            timeouts,
        }
    }

    /// Answers an upgrade request for [`WS_PATH`]: `101` and a spawned
    /// connection, or a `4xx`/`503` saying what is wrong.
    pub fn upgrade<B>(&self, mut req: Request<B>, kind: FaceKind) -> Response<Body> {
        if req.method() != Method::GET {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "the WebSocket endpoint takes GET with an upgrade\n",
            );
        }
        let upgrade_ok = header_has_token(&req, CONNECTION, "upgrade")
            && header_has_token(&req, UPGRADE, "websocket");
        let version_ok = req
            .headers()
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
        let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
            metrics::counter!("axon_handshake_failures_total", "reason" => "not_websocket")
                .increment(1);
            return plain(
                StatusCode::BAD_REQUEST,
                "expected a WebSocket upgrade (Sec-WebSocket-Key missing)\n",
            );
        };
        if !upgrade_ok || !version_ok {
            metrics::counter!("axon_handshake_failures_total", "reason" => "not_websocket")
                .increment(1);
            return plain(
                StatusCode::BAD_REQUEST,
                "expected a WebSocket version 13 upgrade\n",
            );
        }
        if !header_has_token(&req, SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
            metrics::counter!("axon_handshake_failures_total", "reason" => "subprotocol")
                .increment(1);
            return plain(
                StatusCode::BAD_REQUEST,
                "offer the WebSocket subprotocol axon.v1\n",
            );
        }
        let Some(slot) = self.tracker.admit(kind) else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections, or shutting down; retry later\n",
            );
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(self.clone().serve(on_upgrade, slot));
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

impl WsFace {
    /// Runs one upgraded connection to its end. Only what the connection
    /// needs while it lives is kept in its task: the face is taken apart
    /// before the task starts (a plain fn returning an `async move` block,
    /// not an `async fn`, whose arguments rustc would store twice), and the
    /// upgrade, over once the connection is up, is boxed.
    fn serve(
        self,
        on_upgrade: hyper::upgrade::OnUpgrade,
        slot: ConnectionSlot,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Self {
            services,
            config,
            tracker,
            timeouts,
        } = self;
        let shutdown = tracker.shutdown_signal();
        let ws_config = ws_config(&config);
        async move {
            let upgrade = Box::pin(async move {
                match on_upgrade.await {
                    Ok(upgraded) => Some(
                        WebSocketStream::from_raw_socket(
                            TokioIo::new(upgraded),
                            Role::Server,
                            Some(ws_config),
                        )
                        .await,
                    ),
                    Err(e) => {
                        tracing::debug!(error = %e, "WebSocket upgrade failed");
                        None
                    }
                }
            });
            let Some(ws) = upgrade.await else { return };
            drive(
                Session::new(services, config),
                WsIo { ws },
                timeouts,
                shutdown,
                slot.traffic(),
            )
            .await;
            drop(slot);
        }
    }
}

/// One WebSocket connection as [`FrameIo`].
struct WsIo<S> {
    ws: WebSocketStream<S>,
}

impl<S> WsIo<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    /// Writes `frames`, one binary message each, with one flush.
    async fn write(&mut self, frames: impl Iterator<Item = Bytes> + Send) -> Result<(), IoError> {
        for frame in frames {
            self.ws
                .feed(Message::Binary(frame))
                .await
                .map_err(|e| IoError::Lost(e.to_string()))?;
        }
        self.ws
            .flush()
            .await
            .map_err(|e| IoError::Lost(e.to_string()))
    }
}

impl<S> FrameIo for WsIo<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Result<Option<Bytes>, IoError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(frame))) => return Ok(Some(frame)),
                Some(Ok(Message::Text(_))) => {
                    return Err(IoError::Refused {
                        code: ErrorCode::BadFrame,
                        message: "text messages are not accepted: send each frame as one binary message",
                    });
                }
                // tungstenite queues the pong; send it now.
                Some(Ok(Message::Ping(_))) => {
                    let _ = self.ws.flush().await;
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Err(WsError::Capacity(e))) => {
                    return Err(IoError::Fatal {
                        code: ErrorCode::FrameTooLarge,
                        message: e.to_string(),
                    });
                }
                Some(Err(WsError::Protocol(e))) => {
                    return Err(IoError::Fatal {
                        code: ErrorCode::BadFrame,
                        message: e.to_string(),
                    });
                }
                Some(Err(e)) => return Err(IoError::Lost(e.to_string())),
            }
        }
    }

    async fn send(&mut self, out: &mut Vec<Bytes>) -> Result<(), IoError> {
        self.write(out.drain(..)).await
    }

    /// Like [`send`](Self::send), straight from the deliveries: no list
    /// of frames is built per write.
    async fn send_events(&mut self, events: &mut Vec<Delivery>) -> Result<(), IoError> {
        self.write(events.drain(..).map(|d| d.frame.clone())).await
    }

    async fn close(&mut self, reason: Option<&CloseReason>) {
        let frame = reason.map(|r| {
            // A close frame's reason is at most 123 bytes.
            let mut text = r.message.clone();
            while text.len() > 120 {
                text.pop();
            }
            CloseFrame {
                code: CloseCode::from(r.websocket_code()),
                reason: text.into(),
            }
        });
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.ws.close(frame).await;
            // Read until the peer's close arrives (or the timeout).
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
