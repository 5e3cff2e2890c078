//! Routes derived from ruma request types, as tuwunel does: each
//! endpoint's paths (r0, v3, unstable), method, authentication and whether
//! it is rate-limited come from the request type's [`Metadata`], never from
//! a hand-written path string.
//!
//! [`RumaRoutes::ruma`] registers a handler `async fn(State<Matrix>, Auth,
//! Request) -> Result<Response, MatrixError>` under every path of its
//! request type. Each call then: authenticates (the scheme from the
//! metadata, see [`crate::auth`]), applies the rate limit if the spec marks
//! the endpoint as limited (per user with a token, else per client IP),
//! reads the body within the size limit, decodes the ruma request, runs the
//! handler and encodes its response.
//!
//! [`Metadata`]: ruma::api::Metadata

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRequestParts as _, Path, Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodFilter, on};
use ruma::api::IncomingRequest;
use ruma::api::path_builder::PathBuilder as _;

use crate::auth::AuthFor;
use crate::error::MatrixError;
use crate::request;
use crate::state::Matrix;

/// A Matrix endpoint handler for the request type `R`, authenticated as `A`.
pub trait Handler<R: IncomingRequest, A>: Clone + Send + Sync + 'static {
    /// The handler's future.
    type Future: Future<Output = Result<R::OutgoingResponse, MatrixError>> + Send;

    /// Runs the handler.
    fn call(&self, state: State<Matrix>, auth: A, request: R) -> Self::Future;
}

impl<R, A, F, Fut> Handler<R, A> for F
where
    R: IncomingRequest,
    F: Fn(State<Matrix>, A, R) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R::OutgoingResponse, MatrixError>> + Send,
{
    type Future = Fut;

    fn call(&self, state: State<Matrix>, auth: A, request: R) -> Fut {
        self(state, auth, request)
    }
}

/// Registering handlers by their ruma request type.
pub trait RumaRoutes {
    /// Serves `handler` at every path of its request type `R`, with `R`'s
    /// method.
    fn ruma<R, A, H>(self, handler: H) -> Self
    where
        R: IncomingRequest + Send + 'static,
        R::OutgoingResponse: Send,
        A: AuthFor<R::Authentication>,
        H: Handler<R, A>;
}

impl RumaRoutes for Router<Matrix> {
    fn ruma<R, A, H>(mut self, handler: H) -> Self
    where
        R: IncomingRequest + Send + 'static,
        R::OutgoingResponse: Send,
        A: AuthFor<R::Authentication>,
        H: Handler<R, A>,
    {
        let Ok(filter) = MethodFilter::try_from(R::METHOD) else {
            // Only the standard methods are used in the spec.
            tracing::error!(method = %R::METHOD, "no method filter for a ruma endpoint; not served");
            return self;
        };
        for path in R::PATH_BUILDER.all_paths().flat_map(with_empty_state_key) {
            let handler = handler.clone();
            self = self.route(
                &path,
                on(filter, move |state: State<Matrix>, req: Request| {
                    serve::<R, A, H>(state, req, handler)
                }),
            );
        }
        self
    }
}

/// The axum paths for one ruma path. A path that ends in `{state_key}`
/// also answers without it, with or without the trailing slash: the empty
/// state key (`/state/m.room.name/`) leaves an empty segment that axum
/// does not match, and ruma's decoders take the missing key as `""`.
fn with_empty_state_key(path: &str) -> Vec<String> {
    let path = axum_path(path);
    match path.strip_suffix("/{state_key}") {
        Some(base) => vec![path.clone(), base.to_owned(), format!("{base}/")],
        None => vec![path],
    }
}

/// ruma's path template in axum's syntax: `{name}` stays, the older
/// `:name` becomes `{name}`.
fn axum_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn serve<R, A, H>(state: State<Matrix>, req: Request, handler: H) -> Response
where
    R: IncomingRequest + Send + 'static,
    A: AuthFor<R::Authentication>,
    H: Handler<R, A>,
{
    match handle::<R, A, H>(state, req, handler).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle<R, A, H>(
    State(matrix): State<Matrix>,
    req: Request,
    handler: H,
) -> Result<Response, MatrixError>
where
    R: IncomingRequest + Send + 'static,
    A: AuthFor<R::Authentication>,
    H: Handler<R, A>,
{
    let (mut parts, body) = req.into_parts();
    let auth = A::authenticate(&matrix, &parts).await?;
    if R::RATE_LIMITED {
        match auth.user() {
            Some(user) => matrix.limits().check_user(&user.user_id)?,
            None => matrix.limits().check_ip(client_ip(&parts))?,
        }
    }
    let args = match Path::<Vec<String>>::from_request_parts(&mut parts, &()).await {
        Ok(Path(args)) => args,
        // A path without parameters.
        Err(PathRejection::MissingPathParams(_)) => Vec::new(),
        Err(e) => return Err(MatrixError::InvalidParam(e.body_text())),
    };
    let body = request::read_body(&parts, body, matrix.config().max_body_bytes).await?;
    let request = request::decode::<R>(&parts, &body, &args)?;
    let response = handler.call(State(matrix), auth, request).await?;
    Ok(request::encode(response))
}

/// The peer address the listener put in the request, if any.
fn client_ip(parts: &http::request::Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_take_axum_syntax() {
        assert_eq!(
            axum_path("/_matrix/client/v3/profile/{user_id}/displayname"),
            "/_matrix/client/v3/profile/{user_id}/displayname"
        );
        assert_eq!(
            axum_path("/_matrix/client/r0/profile/:user_id"),
            "/_matrix/client/r0/profile/{user_id}"
        );
    }

    #[test]
    fn a_state_key_path_also_answers_without_the_key() {
        assert_eq!(
            with_empty_state_key(
                "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}"
            ),
            [
                "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}",
                "/_matrix/client/v3/rooms/{room_id}/state/{event_type}",
                "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/",
            ]
        );
        assert_eq!(with_empty_state_key("/a/{b}"), ["/a/{b}"]);
    }
}
