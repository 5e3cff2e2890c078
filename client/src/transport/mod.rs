//! How frames travel: one [`Transport`] per connection, with a variant per
//! protocol. Only WebSocket exists today; QUIC will be a second variant of
//! the same enum (and a `quic` module beside [`ws`]), so the connection task
//! does not change when it arrives.
//!
//! A transport moves whole frames (`Bytes`); it does not decode them.

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
    /// The peer closed (with a WebSocket close code, if it gave one).
    Closed { code: Option<u16>, reason: String },
}

/// Where to connect, parsed from the configured URL once.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// `ws://` or `wss://`.
    WebSocket(ws::WsEndpoint),
}

impl Endpoint {
    /// Parses `url`; the scheme picks the transport.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        ws::WsEndpoint::parse(url).map(Endpoint::WebSocket)
    }

    /// Whether connecting needs a TLS configuration.
    pub fn needs_tls(&self) -> bool {
        match self {
            Endpoint::WebSocket(ws) => ws.tls,
        }
    }
}

/// One open connection.
pub(crate) enum Transport {
    /// WebSocket, plain or over TLS.
    WebSocket(ws::WsTransport),
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
        }
    }

    /// Writes one frame.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        match self {
            Transport::WebSocket(ws) => ws.send(frame).await,
        }
    }

    /// The next inbound frame. Cancel-safe: the connection task selects on
    /// it beside its command queue and timers.
    pub async fn recv(&mut self) -> Result<Inbound, ClientError> {
        match self {
            Transport::WebSocket(ws) => ws.recv().await,
        }
    }

    /// Closes politely (bounded in time); errors are ignored, the
    /// connection is over either way.
    pub async fn close(&mut self) {
        match self {
            Transport::WebSocket(ws) => ws.close().await,
        }
    }
}
