//! [`ClientError`]: everything a client call can fail with.

use axon_schemas::ErrorCode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a client call failed.
///
/// Variants that come from the server's `Error` frame keep its stable
/// [`ErrorCode`] ([`ClientError::code`]) and its human-readable message
/// (for logs; never match on it).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work (bad URL, unreadable PEM file).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The connection could not be opened or broke (TCP, UDP, TLS, WebSocket, QUIC).
    #[error("connection failed: {message}")]
    Connection {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The token, or the user and password, were refused. The client does
    /// not retry this.
    #[error("authentication refused: {0}")]
    Unauthenticated(String),
    /// Membership or power levels do not allow the request.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The room (or other target) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The server does not accept a value of the request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connection has as many subscriptions as the server allows.
    #[error("too many subscriptions: {0}")]
    TooManySubscriptions(String),
    /// Any other error answer from the server.
    #[error("server error {code}: {message}")]
    Server {
        /// The stable code.
        code: ErrorCode,
        /// Detail for logs.
        message: String,
    },
    /// No answer within [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout).
    #[error("no answer in time")]
    Timeout,
    /// The server broke the protocol (an unexpected or undecodable frame).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The client was closed, or gave up reconnecting.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// The server's stable error code, for errors that came from an
    /// `Error` frame.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Unauthenticated(_) => Some(ErrorCode::Unauthenticated),
            ClientError::Forbidden(_) => Some(ErrorCode::Forbidden),
            ClientError::NotFound(_) => Some(ErrorCode::NotFound),
            ClientError::InvalidArgument(_) => Some(ErrorCode::InvalidArgument),
            ClientError::TooManySubscriptions(_) => Some(ErrorCode::TooManySubscriptions),
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A connection failure with its cause.
    pub(crate) fn connection(
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> ClientError {
        ClientError::Connection {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Whether a reconnect may cure it (rather than the same refusal again).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ClientError::Connection { .. } | ClientError::Timeout | ClientError::Protocol(_) => {
                true
            }
            ClientError::Server { code, .. } => matches!(
                code,
                ErrorCode::Internal
                    | ErrorCode::ShuttingDown
                    | ErrorCode::Lagged
                    | ErrorCode::TooManyConnections
                    | ErrorCode::HandshakeTimeout
                    | ErrorCode::Unknown
            ),
            _ => false,
        }
    }
}

/// An `Error` frame, owned, as the background task hands it to a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: u32,
}

impl From<ServerError> for ClientError {
    fn from(e: ServerError) -> Self {
        match e.code {
            ErrorCode::Unauthenticated => ClientError::Unauthenticated(e.message),
            ErrorCode::Forbidden => ClientError::Forbidden(e.message),
            ErrorCode::NotFound => ClientError::NotFound(e.message),
            ErrorCode::InvalidArgument => ClientError::InvalidArgument(e.message),
            ErrorCode::TooManySubscriptions => ClientError::TooManySubscriptions(e.message),
            code => ClientError::Server {
                code,
                message: e.message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_become_typed_errors_and_keep_their_code() {
        for code in ErrorCode::ALL {
            let error = ClientError::from(ServerError {
                code,
                message: "m".into(),
                retry_after_ms: 0,
            });
            assert_eq!(error.code(), Some(code));
        }
        let refused = ClientError::from(ServerError {
            code: ErrorCode::Unauthenticated,
            message: "bad token".into(),
            retry_after_ms: 0,
        });
        assert!(matches!(refused, ClientError::Unauthenticated(_)));
        assert!(!refused.is_transient());
    }
}
