//! Stable error codes of the `Error` frame.

use crate::generated::v1 as fb;

/// Stable, machine-readable reason carried by an `Error` frame.
///
/// The numbers are part of the wire protocol: never renumber or reuse one, only
/// append. A peer that receives a number it does not know treats it as
/// [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// An error with no more specific code.
    Unknown = 0,
    /// The frame failed verification (garbage, wrong identifier, missing field,
    /// invalid UTF-8).
    BadFrame = 1,
    /// The frame is larger than the receiver accepts.
    FrameTooLarge = 2,
    /// A well-formed frame that is not allowed here (before the handshake, a
    /// server frame from a client, an unknown frame type).
    UnexpectedFrame = 3,
    /// Missing or unknown access token, or a wrong user/password.
    Unauthenticated = 4,
    /// Not allowed by membership or power levels.
    Forbidden = 5,
    /// The target does not exist.
    NotFound = 6,
    /// Too many requests; see `retry_after_ms`.
    RateLimited = 7,
    /// The connection would exceed its subscription limit.
    TooManySubscriptions = 8,
    /// A field has a value the server does not accept.
    InvalidArgument = 9,
    /// The server failed; the request may be retried.
    Internal = 10,
    /// The server is going away; reconnect and resume.
    ShuttingDown = 11,
    /// The client fell behind the live stream; reconnect and resume.
    Lagged = 12,
    /// No handshake frame arrived in time.
    HandshakeTimeout = 13,
    /// Too many open connections.
    TooManyConnections = 14,
    /// The request conflicts with the current state.
    Conflict = 15,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::Unknown,
        ErrorCode::BadFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnexpectedFrame,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::TooManySubscriptions,
        ErrorCode::InvalidArgument,
        ErrorCode::Internal,
        ErrorCode::ShuttingDown,
        ErrorCode::Lagged,
        ErrorCode::HandshakeTimeout,
        ErrorCode::TooManyConnections,
        ErrorCode::Conflict,
    ];

    /// The number on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a wire number; numbers from a newer peer become `Unknown`.
    pub fn from_u16(value: u16) -> Self {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(ErrorCode::Unknown)
    }

    /// Stable snake_case name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Unknown => "unknown",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnexpectedFrame => "unexpected_frame",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Internal => "internal",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Lagged => "lagged",
            ErrorCode::HandshakeTimeout => "handshake_timeout",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Conflict => "conflict",
        }
    }

    pub(crate) fn to_wire(self) -> fb::ErrorCode {
        fb::ErrorCode(self.as_u16())
    }

    pub(crate) fn from_wire(code: fb::ErrorCode) -> Self {
        Self::from_u16(code.0)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_numeric_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.as_u16()), i, "{code}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), *code);
        }
    }

    #[test]
    fn numbers_match_the_schema() {
        // The .fbs enum is the source of truth for other languages; the Rust
        // enum must agree with it value by value, by name.
        for code in ErrorCode::ALL {
            let wire = code.to_wire();
            let schema_name = wire.variant_name().unwrap_or("<not in schema>");
            let ours = format!("{code:?}");
            assert_eq!(schema_name, ours, "code {}", code.as_u16());
        }
        assert_eq!(
            fb::ErrorCode::ENUM_VALUES.len(),
            ErrorCode::ALL.len(),
            "schema and Rust enum have different numbers of codes"
        );
    }

    #[test]
    fn stable_numbers() {
        // Spot checks that would catch an accidental renumbering.
        assert_eq!(ErrorCode::BadFrame.as_u16(), 1);
        assert_eq!(ErrorCode::RateLimited.as_u16(), 7);
        assert_eq!(ErrorCode::ShuttingDown.as_u16(), 11);
        assert_eq!(ErrorCode::Lagged.as_u16(), 12);
        assert_eq!(ErrorCode::Conflict.as_u16(), 15);
    }

    #[test]
    fn unknown_numbers_map_to_unknown() {
        assert_eq!(ErrorCode::from_u16(16), ErrorCode::Unknown);
        assert_eq!(ErrorCode::from_u16(u16::MAX), ErrorCode::Unknown);
    }
}
