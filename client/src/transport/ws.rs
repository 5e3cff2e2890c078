//! WebSocket: `ws://` (plain TCP) or `wss://` (rustls), subprotocol
//! `axon.v1`, one binary message per frame.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Dial, Inbound};
use crate::error::ClientError;

/// The WebSocket subprotocol of the native protocol.
const SUBPROTOCOL: &str = "axon.v1";
/// Longest a close handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Read buffer: a typical frame fits; larger ones are assembled across reads.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Anything a WebSocket can run on: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A parsed `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub(crate) struct WsEndpoint {
    url: String,
    host: String,
    port: u16,
    /// `wss://`.
    pub tls: bool,
}

impl WsEndpoint {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ClientError::Config(format!("invalid URL {url:?}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            other => {
                return Err(ClientError::Config(format!(
                    "unsupported URL scheme {other:?} in {url:?}: use ws://, wss:// or quic://"
                )));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Config(format!("no host in URL {url:?}")))?;
        // `[::1]` in a URL is `::1` to DNS and to TLS.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
            tls,
        })
    }
}

/// One open WebSocket connection.
pub(crate) struct WsTransport {
    ws: WebSocketStream<Box<dyn Io>>,
}

impl WsTransport {
    /// TCP connect, TLS handshake if `wss://`, then the WebSocket upgrade
    /// offering `axon.v1`.
    pub async fn connect(endpoint: &WsEndpoint, dial: &Dial<'_>) -> Result<Self, ClientError> {
        let tls = dial.tls;
        let max_frame_bytes = dial.max_frame_bytes;
        let tcp = match dial.local_addr {
            None => TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await,
            Some(local) => connect_from(local, &endpoint.host, endpoint.port).await?,
        }
        .map_err(|e| {
            ClientError::connection(
                format!("TCP connect to {}:{}", endpoint.host, endpoint.port),
                e,
            )
        })?;
        // Frames are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if endpoint.tls {
            let tls = tls.ok_or_else(|| ClientError::Config("wss:// without TLS roots".into()))?;
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|e| ClientError::Config(format!("TLS server name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::connection("TLS handshake", e))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let mut request = endpoint
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Config(format!("WebSocket request: {e}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(max_frame_bytes))
            .max_frame_size(Some(max_frame_bytes));
        let (ws, response) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
            .await
            .map_err(|e| ClientError::connection("WebSocket upgrade", e))?;
        let protocol = response.headers().get("Sec-WebSocket-Protocol");
        if protocol.is_none_or(|p| p != SUBPROTOCOL) {
            return Err(ClientError::Protocol(format!(
                "the server did not accept subprotocol {SUBPROTOCOL}"
            )));
        }
        Ok(Self { ws })
    }

    /// Writes one frame as one binary message.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), ClientError> {
        self.ws
            .send(Message::Binary(frame))
            .await
            .map_err(|e| ClientError::connection("WebSocket write", e))
    }

    /// The next binary message, skipping control messages.
    pub async fn recv(&mut self) -> Result<Inbound, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => return Ok(Inbound::Frame(bytes)),
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Inbound::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                // tungstenite answers pings itself; text is not part of axon.v1.
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Frame(_))) => {}
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    return Ok(Inbound::Closed {
                        code: None,
                        reason: String::new(),
                    });
                }
                Some(Err(e)) => return Err(ClientError::connection("WebSocket read", e)),
            }
        }
    }

    /// Sends a normal close and waits briefly for the server's.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.ws.close(None).await;
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// TCP to `host:port` from `local`: tries each address of the host that
/// is of `local`'s family, as `TcpStream::connect` tries them all. The
/// outer error is a configuration error (no address of that family), the
/// inner one the connect's.
async fn connect_from(
    local: IpAddr,
    host: &str,
    port: u16,
) -> Result<std::io::Result<TcpStream>, ClientError> {
    let addrs = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs,
        Err(e) => return Ok(Err(e)),
    };
    let mut last = None;
    for target in addrs {
        let Ok(bind) = super::local_socket_addr(Some(local), &target) else {
            continue;
        };
        let attempt = async {
            let socket = if target.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(bind)?;
            socket.connect(target).await
        };
        match attempt.await {
            Ok(tcp) => return Ok(Ok(tcp)),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Ok(Err(e)),
        None => Err(ClientError::Config(format!(
            "{host}:{port} has no address of the family of local address {local}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_endpoints() {
        let plain = WsEndpoint::parse("ws://127.0.0.1:8008/_axon/v1/ws").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("127.0.0.1", 8008, false)
        );
        let tls = WsEndpoint::parse("wss://chat.example.org/_axon/v1/ws").unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.tls),
            ("chat.example.org", 443, true)
        );
        let v6 = WsEndpoint::parse("ws://[::1]:9/_axon/v1/ws").unwrap();
        assert_eq!(v6.host, "::1");
        assert!(matches!(
            WsEndpoint::parse("http://localhost/"),
            Err(ClientError::Config(_))
        ));
        assert!(WsEndpoint::parse("not a url").is_err());
    }

    #[tokio::test]
    async fn tcp_connects_from_the_local_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let local: IpAddr = "127.0.0.3".parse().unwrap();
        let (tcp, accepted) =
            tokio::join!(connect_from(local, "127.0.0.1", port), listener.accept());
        let tcp = tcp.unwrap().unwrap();
        assert_eq!(tcp.local_addr().unwrap().ip(), local);
        assert_eq!(accepted.unwrap().1.ip(), local);
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(matches!(
            connect_from(v6, "127.0.0.1", port).await,
            Err(ClientError::Config(_))
        ));
    }
}
