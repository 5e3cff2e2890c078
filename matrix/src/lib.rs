//! Axon's Matrix client-server API adapter: axum routing over ruma's request
//! and response types, on `axon-core` only. A Matrix client (Element,
//! matrix-nio, a bot) registers, logs in and gets tokens that also work on
//! the native WebSocket and QUIC faces, because both sit on core's
//! [`Accounts`](axon_core::Accounts).
//!
//! The server hands every request under `/_matrix/` and
//! `/.well-known/matrix/` to [`MatrixApi::handle`]; `docs/matrix.md` says
//! which endpoints exist so far.
//!
//! # Layout
//!
//! - [`router`] — routes derived from the ruma request types' metadata
//!   (paths for r0/v3, method, auth scheme, rate limiting), and the one
//!   generic path every request takes: auth → rate limit → body → handler.
//! - [`auth`] — the access-token extractor ([`User`], [`NoAuth`]), tied to
//!   the auth scheme of each endpoint at compile time.
//! - [`request`] — body size limit, JSON checks and ruma decoding/encoding.
//! - [`error`] — [`MatrixError`], named after the spec's errcodes.
//! - [`uia`] — user-interactive authentication (one-stage flows).
//! - [`rate_limit`] — per-user and per-IP token buckets (governor).
//! - [`cors`] — the CORS headers and preflight answers the spec asks for.
//! - [`config`] — [`MatrixConfig`]: registration mode, limits.
//! - [`state`] — [`Matrix`], the state every handler gets.
//! - [`ids`] — conversions between core's ids and ruma's.
//! - [`events`] — core's events as `ClientEvent` JSON; pagination tokens.
//! - [`routes`] — the handlers: `discovery`, `register`, `login`,
//!   `account`, `profile`, `room_create`, `membership`, `directory`,
//!   `state`, `send`, `messages`, `sync` (token, filter, collect, rooms,
//!   wait), `typing`, `receipts`, `presence`, `account_data`, `filter`.

pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod events;
pub mod ids;
pub mod rate_limit;
pub mod request;
pub mod router;
pub mod routes;
pub mod state;
pub mod uia;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse as _;
use bytes::Bytes;
use tower::ServiceExt as _;

pub use auth::{NoAuth, User};
pub use config::{MatrixConfig, RateLimit, Registration};
pub use error::MatrixError;
pub use state::Matrix;

/// The Matrix API as one service: hand it requests, get responses.
#[derive(Clone)]
pub struct MatrixApi {
    router: Router,
}

impl MatrixApi {
    /// The API over core's `services`, configured by `config`.
    pub fn new(services: axon_core::Services, config: MatrixConfig) -> Self {
        let router = routes::all()
            .fallback(|| async { MatrixError::UnknownEndpoint })
            .method_not_allowed_fallback(|| async { MatrixError::WrongMethod })
            .layer(axum::middleware::from_fn(cors::cors))
            .with_state(Matrix::new(services, config));
        Self { router }
    }

    /// Whether `path` belongs to the Matrix API (the rest of the listener
    /// is the native face's and the banner's).
    pub fn serves(path: &str) -> bool {
        path.starts_with("/_matrix/") || path.starts_with("/.well-known/matrix/")
    }

    /// Answers one request from `peer` (the client address, for the per-IP
    /// rate limit). The response body is buffered: every Matrix response is
    /// one JSON document.
    pub async fn handle<B>(
        &self,
        mut req: http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> http::Response<Bytes>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = match self.router.clone().oneshot(req.map(Body::new)).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => http::Response::from_parts(parts, bytes),
            Err(e) => {
                let (parts, body) = MatrixError::Internal(format!("buffering a response: {e}"))
                    .into_response()
                    .into_parts();
                // The error body is a fixed small buffer: it cannot fail.
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                http::Response::from_parts(parts, bytes)
            }
        }
    }
}
