//! How frames travel: one [`Transport`] per connection, with a variant per
//! protocol: WebSocket ([`ws`]) and QUIC ([`quic`]). The connection task
//! sees only whole frames and closes, whichever the protocol.
//!
//! A transport moves whole frames (`Bytes`); it does not decode them.

pub(crate) mod quic;
pub(crate) mod tls;
pub(crate) mod ws;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

    /// Whether connecting needs a TLS configuration of the client's own
    /// (not when a shared QUIC endpoint brings its own).
    pub fn needs_tls(&self, shared_quic: bool) -> bool {
        match self {
            Endpoint::WebSocket(ws) => ws.tls,
            Endpoint::Quic(_) => !shared_quic,
        }
    }
}

/// How to open a connection: what the configuration says beyond the URL.
pub(crate) struct Dial<'a> {
    /// TLS for `wss://`, and for `quic://` on a socket of its own.
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
    /// Source address of the socket.
    pub local_addr: Option<IpAddr>,
    /// A shared QUIC endpoint.
    pub quic: Option<&'a quic::SharedQuicEndpoint>,
    /// Largest inbound frame.
    pub max_frame_bytes: usize,
}

/// The address to bind before connecting to `target`: `local` (port 0),
/// or the unspecified address of the target's family.
pub(crate) fn local_socket_addr(
    local: Option<IpAddr>,
    target: &SocketAddr,
) -> Result<SocketAddr, ClientError> {
    match local {
        Some(ip) if ip.is_ipv4() != target.is_ipv4() => Err(ClientError::Config(format!(
            "local address {ip} is not of the family of the server's address {target}"
        ))),
        Some(ip) => Ok(SocketAddr::new(ip, 0)),
        None if target.is_ipv4() => Ok((Ipv4Addr::UNSPECIFIED, 0).into()),
        None => Ok((Ipv6Addr::UNSPECIFIED, 0).into()),
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
    /// Opens a connection to `endpoint` as `dial` says; TLS endpoints need
    /// `dial.tls` (or, for QUIC, a shared endpoint).
    pub async fn connect(endpoint: &Endpoint, dial: &Dial<'_>) -> Result<Self, ClientError> {
        match endpoint {
            Endpoint::WebSocket(ws) => ws::WsTransport::connect(ws, dial)
                .await
                .map(Transport::WebSocket),
            Endpoint::Quic(q) => quic::QuicTransport::connect(q, dial)
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
