//! Access-token authentication: which caller a request is from, decided by
//! the authentication scheme in the ruma request type's metadata.
//!
//! A handler names what it needs as its second argument — [`User`] for
//! endpoints that require a token, `Option<User>` where it is optional,
//! [`NoAuth`] where the spec takes none — and [`AuthFor`] ties each of
//! those to ruma's schemes, so a handler whose argument does not match its
//! endpoint's metadata does not compile.
//!
//! The token is read from `Authorization: Bearer`, or from the deprecated
//! `access_token` query parameter, and checked by core's [`Accounts`]: the
//! same tokens authenticate the native WebSocket and QUIC faces.
//!
//! [`Accounts`]: axon_core::Accounts

use std::future::Future;

use axon_core::accounts::Identity;
use axon_core::{DeviceId, UserId};
use axum::extract::Query;
use http::header::AUTHORIZATION;
use http::request::Parts;
use ruma::api::auth_scheme::{
    AccessToken, AccessTokenOptional, AppserviceTokenOptional, NoAccessToken, NoAuthentication,
};
use serde::Deserialize;

use crate::error::MatrixError;
use crate::state::Matrix;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct User {
    /// Who.
    pub user_id: UserId,
    /// On which device.
    pub device_id: DeviceId,
    /// The access token the request carried (logout revokes it).
    pub access_token: String,
}

/// The endpoint takes no access token.
#[derive(Clone, Copy, Debug)]
pub struct NoAuth;

/// How a handler's caller is established for an endpoint whose metadata
/// names the ruma authentication scheme `S`.
pub trait AuthFor<S>: Sized + Send + 'static {
    /// Authenticates the request.
    fn authenticate(
        matrix: &Matrix,
        parts: &Parts,
    ) -> impl Future<Output = Result<Self, MatrixError>> + Send;

    /// The authenticated user, for the per-user rate limit.
    fn user(&self) -> Option<&User>;
}

impl AuthFor<AccessToken> for User {
    async fn authenticate(matrix: &Matrix, parts: &Parts) -> Result<Self, MatrixError> {
        let token = access_token(parts)?.ok_or(MatrixError::MissingToken)?;
        authenticate(matrix, token).await
    }

    fn user(&self) -> Option<&User> {
        Some(self)
    }
}

impl AuthFor<AccessTokenOptional> for Option<User> {
    async fn authenticate(matrix: &Matrix, parts: &Parts) -> Result<Self, MatrixError> {
        // A token that is present must be valid, even where none is needed.
        match access_token(parts)? {
            Some(token) => authenticate(matrix, token).await.map(Some),
            None => Ok(None),
        }
    }

    fn user(&self) -> Option<&User> {
        self.as_ref()
    }
}

macro_rules! no_auth {
    ($($scheme:ty),* $(,)?) => {$(
        impl AuthFor<$scheme> for NoAuth {
            async fn authenticate(_: &Matrix, _: &Parts) -> Result<Self, MatrixError> {
                Ok(NoAuth)
            }

            fn user(&self) -> Option<&User> {
                None
            }
        }
    )*};
}

// There are no application services yet, so an appservice token where one
// is optional (register, login) authenticates nothing and is ignored. An
// optional access token is ignored by handlers that take `NoAuth` (`/versions`,
// which must answer even a client whose token just expired).
no_auth!(
    NoAuthentication,
    NoAccessToken,
    AppserviceTokenOptional,
    AccessTokenOptional,
);

async fn authenticate(matrix: &Matrix, token: String) -> Result<User, MatrixError> {
    let Identity { user_id, device_id } = matrix.accounts().authenticate(&token).await?;
    Ok(User {
        user_id,
        device_id,
        access_token: token,
    })
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// The access token of a request: the `Authorization: Bearer` header, else
/// the `access_token` query parameter.
pub fn access_token(parts: &Parts) -> Result<Option<String>, MatrixError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| MatrixError::UnknownToken { soft_logout: false })?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(MatrixError::MissingToken)?;
        return Ok(Some(token.to_owned()));
    }
    if parts.uri.query().is_none() {
        return Ok(None);
    }
    let Query(query) = Query::<TokenQuery>::try_from_uri(&parts.uri)
        .map_err(|e| MatrixError::InvalidParam(e.body_text()))?;
    Ok(query.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, authorization: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).map(|r| r.into_parts().0).unwrap()
    }

    #[test]
    fn bearer_header_then_query_parameter() {
        let t = |uri, auth| access_token(&parts(uri, auth)).ok().flatten();
        assert_eq!(t("/x", Some("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(t("/x", Some("bearer abc")).as_deref(), Some("abc"));
        assert_eq!(
            t("/x?access_token=q", Some("Bearer h")).as_deref(),
            Some("h"),
            "the header wins"
        );
        assert_eq!(t("/x?access_token=q%2Bz", None).as_deref(), Some("q+z"));
        assert_eq!(t("/x?other=1", None), None);
        assert_eq!(t("/x", None), None);
        assert!(matches!(
            access_token(&parts("/x", Some("Basic abc"))),
            Err(MatrixError::MissingToken)
        ));
    }
}
