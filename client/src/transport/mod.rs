//! How frames travel: one [`Transport`] per connection, with a variant per
//! protocol: WebSocket ([`ws`]) and QUIC ([`quic`]). The connection task
//! sees only whole frames and closes, whichever the protocol.
//!
//! A transport moves whole frames (`Bytes`); it does not decode them.

pub(crate) mod quic;
pub(crate) mod tls;
pub(crate) mod ws;

use std::sync::Arc;

use bytes::Bytes;

use crate::error::ClientError;

/// What a transport received.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One frame.
    Frame(Bytes),
    /// The peer closed (with its WebSocket close code or QUIC application
    /// close code, if it gave one: 4000 + the error code).
    Closed { code: Option<u16>, reason: String },
}

/// Where to connect, parsed from the configured URL once.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// `ws://` or `wss://`.
    WebSocket(ws::WsEndpoint),
    /// `quic://`.
    Quic(quic::QuicEndpoint),
}

impl Endpoint {
    /// Parses `url`; the scheme picks the transport.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let is_quic = url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("quic://"));
        if is_quic {
            quic::QuicEndpoint::parse(url).map(Endpoint::Quic)
        } else {
            ws::WsEndpoint::parse(url).map(Endpoint::WebSocket)
        }
    }

    /// Whether connecting needs a TLS configuration.
    pub fn needs_tls(&self) -> bool {
        match self {
            Endpoint::WebSocket(ws) => ws.tls,
            Endpoint::Quic(_) => true,
        }
    }
}

/// One open connection.
pub(crate) enum Transport {
    /// WebSocket, plain or over TLS.
    WebSocket(ws::WsTransport),
    /// QUIC: a control stream and the server's lanes.
    Quic(quic::QuicTransport),
}

impl Transport {
    /// Opens a connection to `endpoint`; `tls` is required for TLS endpoints.
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Option<&Arc<rustls::ClientConfig>>,
        max_frame_bytes: usize,
    ) -> Result<Self, ClientError> {
        match endpoint {
            Endpoint::WebSocket(ws) => ws::WsTransport::connect(ws, tls, max_frame_bytes)
                .await
                .map(Transport::WebSocket),
            Endpoint::Quic(q) => quic::QuicTransport::connect(q, tls, max_frame_bytes)
                .await
                .map(Transport::Quic),
        }
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        match self {
            Transport::WebSocket(ws) => ws.send(frame).await,
            Transport::Quic(quic) => quic.send(frame).await,
        }
    }

    /// The next inbound frame. Cancel-safe: the connection task selects on
    /// it beside its command queue and timers.
    pub async fn recv(&mut self) -> Result<Inbound, ClientError> {
        match self {
            Transport::WebSocket(ws) => ws.recv().await,
            Transport::Quic(quic) => quic.recv().await,
        }
    }

    /// Closes politely (bounded in time); errors are ignored, the
    /// connection is over either way.
    pub async fn close(&mut self) {
        match self {
            Transport::WebSocket(ws) => ws.close().await,
            Transport::Quic(quic) => quic.close().await,
        }
    }
}
