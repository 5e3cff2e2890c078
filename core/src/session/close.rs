//! [`CloseReason`]: why the server ends a native connection.

use axon_schemas::ErrorCode;

/// Why a session ends. The session has already queued an `Error` frame with
/// `close = true` saying the same; the face sends it, then closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The stable code.
    pub code: ErrorCode,
    /// Detail for logs and the client.
    pub message: String,
    /// Whether reconnecting and resuming is expected to work.
    pub resumable: bool,
}

impl CloseReason {
    /// A close the client should not simply retry.
    pub fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            resumable: false,
        }
    }

    /// A close after which the client reconnects and resumes.
    pub fn resumable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            resumable: true,
        }
    }

    /// The WebSocket close code for this reason: 4000 + the error code,
    /// in the range RFC 6455 leaves to applications.
    pub fn websocket_code(&self) -> u16 {
        4000 + self.code.as_u16()
    }
}
