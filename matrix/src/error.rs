//! [`MatrixError`]: every way a Matrix request fails, named after the
//! spec's error codes, and how each is rendered: `{"errcode", "error"}`
//! with the status code the spec gives it.

use std::time::Duration;

use axon_core::accounts::AccountsError;
use axon_core::accounts::password::PasswordError;
use axon_core::rooms::RoomsError;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use ruma::api::client::uiaa::UiaaInfo;
use serde_json::{Map, Value, json};

/// A failed Matrix request.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// `M_FORBIDDEN` (403): not allowed, or wrong credentials.
    #[error("{0}")]
    Forbidden(String),
    /// `M_UNKNOWN_TOKEN` (401): the access token is unknown, revoked or
    /// expired; `soft_logout` when it expired and a refresh may help.
    #[error("unknown or expired access token")]
    UnknownToken {
        /// The token expired: the client may refresh instead of logging in again.
        soft_logout: bool,
    },
    /// `M_MISSING_TOKEN` (401): the endpoint needs an access token.
    #[error("missing access token")]
    MissingToken,
    /// `M_NOT_FOUND` (404).
    #[error("{0}")]
    NotFound(String),
    /// `M_LIMIT_EXCEEDED` (429), with `retry_after_ms`.
    #[error("too many requests")]
    LimitExceeded {
        /// How long the client should wait.
        retry_after: Duration,
    },
    /// `M_BAD_JSON` (400): JSON of the wrong shape.
    #[error("{0}")]
    BadJson(String),
    /// `M_NOT_JSON` (400): the body is not JSON at all.
    #[error("request body is not valid JSON")]
    NotJson,
    /// `M_TOO_LARGE` (413): the body is over the configured limit.
    #[error("request body is too large")]
    TooLarge,
    /// `M_UNRECOGNIZED` (404): no such endpoint.
    #[error("Unrecognized request")]
    UnknownEndpoint,
    /// `M_UNRECOGNIZED` (405): the endpoint exists, not with this method.
    #[error("method not allowed on this endpoint")]
    WrongMethod,
    /// `M_USER_IN_USE` (400): the user id is taken.
    #[error("user id already taken")]
    UserInUse,
    /// `M_INVALID_USERNAME` (400).
    #[error("{0}")]
    InvalidUsername(String),
    /// `M_WEAK_PASSWORD` (400).
    #[error("{0}")]
    WeakPassword(String),
    /// `M_INVALID_PARAM` (400): a parameter has a bad value.
    #[error("{0}")]
    InvalidParam(String),
    /// `M_USER_DEACTIVATED` (403).
    #[error("this account has been deactivated")]
    UserDeactivated,
    /// `M_GUEST_ACCESS_FORBIDDEN` (403): guest accounts are not offered.
    #[error("guest access is not allowed")]
    GuestAccessForbidden,
    /// `M_UNKNOWN` (400): a request this server does not support, such as an
    /// unknown login type.
    #[error("{0}")]
    Unknown(String),
    /// User-interactive authentication (401): the endpoint needs the
    /// client to complete one of `info.flows`; with `failure`, the stage the
    /// client just tried failed for that reason.
    #[error("user-interactive authentication required")]
    AuthRequired {
        /// Flows, completed stages and session, as the spec's `UiaaInfo`.
        info: Box<UiaaInfo>,
        /// Why the attempted stage failed, if one was attempted.
        failure: Option<Box<MatrixError>>,
    },
    /// `M_ROOM_IN_USE` (400): `createRoom` with an alias that is taken.
    #[error("room alias already taken")]
    RoomInUse,
    /// `M_ROOM_IN_USE` (409): the alias to create exists already.
    #[error("room alias already exists")]
    AliasExists,
    /// `M_UNSUPPORTED_ROOM_VERSION` (400).
    #[error("{0}")]
    UnsupportedRoomVersion(String),
    /// `M_UNKNOWN` (500): the server failed (the store, usually). The detail
    /// is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MatrixError {
    /// The spec's error code.
    pub fn errcode(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "M_FORBIDDEN",
            Self::UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            Self::MissingToken => "M_MISSING_TOKEN",
            Self::NotFound(_) => "M_NOT_FOUND",
            Self::LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Self::BadJson(_) => "M_BAD_JSON",
            Self::NotJson => "M_NOT_JSON",
            Self::TooLarge => "M_TOO_LARGE",
            Self::UnknownEndpoint | Self::WrongMethod => "M_UNRECOGNIZED",
            Self::UserInUse => "M_USER_IN_USE",
            Self::InvalidUsername(_) => "M_INVALID_USERNAME",
            Self::WeakPassword(_) => "M_WEAK_PASSWORD",
            Self::InvalidParam(_) => "M_INVALID_PARAM",
            Self::UserDeactivated => "M_USER_DEACTIVATED",
            Self::GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            Self::RoomInUse | Self::AliasExists => "M_ROOM_IN_USE",
            Self::UnsupportedRoomVersion(_) => "M_UNSUPPORTED_ROOM_VERSION",
            Self::Unknown(_) | Self::Internal(_) => "M_UNKNOWN",
            Self::AuthRequired { failure, .. } => {
                failure.as_deref().map_or("M_FORBIDDEN", Self::errcode)
            }
        }
    }

    /// The HTTP status the spec gives this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden(_) | Self::UserDeactivated | Self::GuestAccessForbidden => {
                StatusCode::FORBIDDEN
            }
            Self::UnknownToken { .. } | Self::MissingToken | Self::AuthRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::NotFound(_) | Self::UnknownEndpoint => StatusCode::NOT_FOUND,
            Self::WrongMethod => StatusCode::METHOD_NOT_ALLOWED,
            Self::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadJson(_)
            | Self::NotJson
            | Self::UserInUse
            | Self::InvalidUsername(_)
            | Self::WeakPassword(_)
            | Self::InvalidParam(_)
            | Self::RoomInUse
            | Self::UnsupportedRoomVersion(_)
            | Self::Unknown(_) => StatusCode::BAD_REQUEST,
            Self::AliasExists => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    fn body(&self) -> Value {
        let message = match self {
            // Internal detail stays in the log.
            Self::Internal(_) => "Internal server error".to_owned(),
            Self::AuthRequired {
                failure: Some(f), ..
            } => f.to_string(),
            other => other.to_string(),
        };
        let mut body = match self {
            Self::AuthRequired { info, failure } => {
                let mut object = match serde_json::to_value(info) {
                    Ok(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                if failure.is_none() {
                    // A first UIA answer is not an error: flows only.
                    return Value::Object(object);
                }
                object.insert("errcode".into(), self.errcode().into());
                object.insert("error".into(), message.into());
                return Value::Object(object);
            }
            _ => json!({ "errcode": self.errcode(), "error": message }),
        };
        match self {
            Self::UnknownToken { soft_logout } => {
                body["soft_logout"] = (*soft_logout).into();
            }
            Self::LimitExceeded { retry_after } => {
                body["retry_after_ms"] = retry_after_ms(*retry_after).into();
            }
            _ => {}
        }
        body
    }
}

fn retry_after_ms(wait: Duration) -> u64 {
    // Never 0: a client told "retry after 0 ms" retries at once, in a loop.
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "matrix request failed");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Self::LimitExceeded { retry_after } = self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AccountsError> for MatrixError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::UserInUse => Self::UserInUse,
            AccountsError::InvalidUsername(e) => Self::InvalidUsername(format!(
                "user names may contain only a-z, 0-9, '.', '_', '=', '-', '/' and '+' ({e})"
            )),
            AccountsError::BadCredentials => Self::Forbidden("Invalid username or password".into()),
            AccountsError::Deactivated => Self::UserDeactivated,
            AccountsError::UnknownToken { expired } => Self::UnknownToken {
                soft_logout: expired,
            },
            AccountsError::NoSuchUser => Self::NotFound("no such user".into()),
            AccountsError::Password(PasswordError::BadLength) => {
                Self::WeakPassword(PasswordError::BadLength.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<axon_core::StoreError> for MatrixError {
    fn from(e: axon_core::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<RoomsError> for MatrixError {
    fn from(e: RoomsError) -> Self {
        match e {
            RoomsError::RoomNotFound => Self::NotFound("Room not found".into()),
            RoomsError::EventNotFound => Self::NotFound("Event not found".into()),
            RoomsError::AliasNotFound => Self::NotFound("Room alias not found".into()),
            RoomsError::AliasInUse => Self::RoomInUse,
            RoomsError::UnsupportedRoomVersion(v) => {
                Self::UnsupportedRoomVersion(format!("room version {v} is not supported"))
            }
            e @ (RoomsError::Forbidden(_) | RoomsError::NotAllowed(_)) => {
                Self::Forbidden(e.to_string())
            }
            e @ (RoomsError::InvalidAlias(_) | RoomsError::BadRequest(_)) => {
                Self::InvalidParam(e.to_string())
            }
            RoomsError::Unavailable(detail) => Self::Internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: MatrixError) -> (StatusCode, Value) {
        let status = e.status();
        (status, e.body())
    }

    #[test]
    fn errors_read_like_the_spec() {
        let (status, body) = render(MatrixError::UnknownToken { soft_logout: true });
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["errcode"], "M_UNKNOWN_TOKEN");
        assert_eq!(body["soft_logout"], true);

        let (status, body) = render(MatrixError::LimitExceeded {
            retry_after: Duration::from_micros(10),
        });
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["retry_after_ms"], 1, "never 0");

        let (status, body) = render(MatrixError::Internal("disk on fire".into()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body["error"].as_str().unwrap_or("").contains("disk"));

        assert_eq!(
            MatrixError::WrongMethod.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(MatrixError::WrongMethod.errcode(), "M_UNRECOGNIZED");
        assert_eq!(
            MatrixError::TooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn a_failed_uia_stage_carries_flows_and_the_error() {
        let info = Box::new(UiaaInfo::new(Vec::new()));
        let first = MatrixError::AuthRequired {
            info: info.clone(),
            failure: None,
        };
        let body = first.body();
        assert!(body.get("errcode").is_none());
        assert!(body.get("flows").is_some());
        let failed = MatrixError::AuthRequired {
            info,
            failure: Some(Box::new(MatrixError::Forbidden("wrong".into()))),
        };
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(failed.body()["errcode"], "M_FORBIDDEN");
        assert_eq!(failed.body()["error"], "wrong");
    }
}
