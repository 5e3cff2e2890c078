//! HTTP/1.1 listeners (hyper): the accept loop shared by the public and
//! admin listeners, and the public routes.
//!
//! The public listeners (`listen.http` plain, `listen.https` with TLS) carry
//! the native WebSocket face at `/_axon/v1/ws` (on the plain listener only
//! where `native.plain_ws` allows), `GET /` with a banner, the Matrix
//! client-server API (`axon-matrix`) under `/_matrix/` and
//! `/.well-known/matrix/`, and Matrix's `404 M_UNRECOGNIZED` for everything
//! else.
//!
//! On shutdown a listener stops accepting, and each open connection finishes
//! the request in hand and closes (hyper's graceful shutdown).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use axon_matrix::MatrixApi;
use axon_transport::FaceKind;
use axon_transport::ws::{WS_PATH, WsFace};

use crate::shutdown::{DrainGuard, Shutdown};

/// Response body of every route served here.
pub type Body = Full<Bytes>;

/// Longest a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The JSON body Matrix requires for endpoints a server does not know.
pub const UNRECOGNIZED_BODY: &str =
    r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#;

/// The client's address, put into every request's extensions by the
/// accept loop (for per-IP rate limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// One HTTP listener: where it is, whether it speaks TLS, what it serves.
pub struct HttpListener<S> {
    /// Name in logs and metrics (`http`, `https`, `admin`).
    pub name: &'static str,
    /// The bound socket.
    pub listener: TcpListener,
    /// TLS, for the HTTPS listener.
    pub tls: Option<TlsAcceptor>,
    /// The routes.
    pub service: S,
}

impl<S> HttpListener<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    /// Accepts connections until `shutdown` fires; each connection holds a
    /// clone of `guard` until it has closed.
    pub async fn serve(self, mut shutdown: Shutdown, guard: DrainGuard) {
        let Self {
            name,
            listener,
            tls,
            service,
        } = self;
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.recv() => break,
            };
            metrics::counter!("axon_http_connections_total", "listener" => name).increment(1);
            let conn = Connection {
                name,
                peer,
                tls: tls.clone(),
                service: service.clone(),
                shutdown: shutdown.clone(),
                _guard: guard.clone(),
            };
            tokio::spawn(conn.run(stream));
        }
        // The socket closes before this listener's drain guard goes, so once
        // the drain completes no connection attempt can reach it.
        drop(listener);
        drop(guard);
        tracing::debug!(listener = name, "stopped accepting");
    }
}

/// One accepted connection.
struct Connection<S> {
    name: &'static str,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: Shutdown,
    _guard: DrainGuard,
}

impl<S> Connection<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        match self.tls.take() {
            None => self.drive(TokioIo::new(stream)).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
                    _ = self.shutdown.recv() => return,
                };
                match handshake {
                    Ok(Ok(tls)) => self.drive(TokioIo::new(tls)).await,
                    Ok(Err(e)) => {
                        tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => {
                        tracing::debug!(listener = self.name, peer = %self.peer, "TLS handshake timed out")
                    }
                }
            }
        }
    }

    async fn drive<I>(mut self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let (service, peer) = (self.service.clone(), self.peer);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            service.call(req)
        });
        let conn = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = self.shutdown.recv() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// A response with a body and a content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The public routes: the WebSocket face, `GET /`, the Matrix API, and
/// Matrix's answer to everything else.
#[derive(Clone)]
pub struct PublicRoutes {
    banner: Arc<str>,
    ws: Option<(WsFace, FaceKind)>,
    matrix: Option<MatrixApi>,
}

impl Default for PublicRoutes {
    fn default() -> Self {
        Self::new()
    }
}

impl PublicRoutes {
    /// The routes of this build.
    pub fn new() -> Self {
        let banner = format!("Axon {} is running.\n", env!("CARGO_PKG_VERSION"));
        Self {
            banner: banner.into(),
            ws: None,
            matrix: None,
        }
    }

    /// The same routes plus the Matrix client-server API.
    pub fn with_matrix(mut self, api: MatrixApi) -> Self {
        self.matrix = Some(api);
        self
    }

    /// The same routes plus the WebSocket face at `/_axon/v1/ws`.
    pub fn with_websocket(mut self, face: WsFace, kind: FaceKind) -> Self {
        self.ws = Some((face, kind));
        self
    }

    /// Answers one request.
    pub fn route<B>(&self, req: &Request<B>) -> Response<Body> {
        let response = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/") => respond(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                self.banner.as_bytes().to_vec(),
            ),
            (_, "/") => {
                // Matrix: a known path with an unsupported method is 405 M_UNRECOGNIZED.
                let mut r = respond(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "application/json",
                    UNRECOGNIZED_BODY,
                );
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                r
            }
            _ => respond(StatusCode::NOT_FOUND, "application/json", UNRECOGNIZED_BODY),
        };
        metrics::counter!("axon_http_requests_total", "status" => response.status().as_str().to_owned())
            .increment(1);
        response
    }
}

/// The future of one public request.
pub type RouteFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Service<Request<Incoming>> for PublicRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouteFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if req.uri().path() == WS_PATH
            && let Some((face, kind)) = &self.ws
        {
            return Box::pin(std::future::ready(Ok(face.upgrade(req, *kind))));
        }
        if let Some(api) = &self.matrix
            && MatrixApi::serves(req.uri().path())
        {
            let api = api.clone();
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
            return Box::pin(async move {
                let response = api.handle(req, peer).await.map(Full::new);
                metrics::counter!("axon_http_requests_total", "status" => response.status().as_str().to_owned())
                    .increment(1);
                Ok(response)
            });
        }
        Box::pin(std::future::ready(Ok(self.route(&req))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, path: &str) -> Response<Body> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        PublicRoutes::new().route(&req)
    }

    #[test]
    fn root_is_a_banner_and_the_rest_is_unrecognized() {
        assert_eq!(get(Method::GET, "/").status(), StatusCode::OK);
        let r = get(Method::GET, "/_matrix/client/versions");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let r = get(Method::POST, "/");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
