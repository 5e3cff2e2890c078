//! Why an inbound buffer was rejected.

use std::borrow::Cow;

use flatbuffers::InvalidFlatbuffer;

use crate::code::ErrorCode;

/// Why [`crate::decode`] (or a direction check) rejected a frame.
///
/// Every variant maps to one stable [`ErrorCode`] via [`FrameError::code`], so
/// the session can answer with an `Error` frame without inspecting details.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer is larger than `DecodeLimits::max_frame_bytes`; nothing of
    /// it was read.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Buffer length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The buffer is too short for an envelope or does not carry the `AXN1`
    /// file identifier: another protocol, another version, or garbage.
    #[error("not an axon.v1 envelope (missing file identifier \"AXN1\")")]
    NotAnEnvelope,
    /// A field the schema marks `required` is absent.
    #[error("missing required field `{field}`")]
    MissingField {
        /// Field name as the verifier reports it.
        field: Cow<'static, str>,
    },
    /// A string field is not valid UTF-8.
    #[error("string field is not valid UTF-8")]
    InvalidUtf8,
    /// The buffer nests deeper, or holds more tables or more (shared) data
    /// than `DecodeLimits` allows.
    #[error("frame exceeds the verifier's complexity limits ({0})")]
    TooComplex(&'static str),
    /// Any other structural fault found by the FlatBuffers verifier: offsets
    /// out of bounds, misalignment, inconsistent union, missing terminator.
    #[error("malformed FlatBuffer: {0}")]
    Malformed(InvalidFlatbuffer),
    /// The union carries a frame type this build does not know (a newer peer,
    /// or garbage that passed verification).
    #[error("unknown frame type {0}")]
    UnknownFrame(u8),
    /// A frame for the other direction: a server frame read by a server or a
    /// client frame read by a client.
    #[error("{got} is not a {expected} frame")]
    UnexpectedDirection {
        /// `"client"` or `"server"`.
        expected: &'static str,
        /// Schema name of the frame received.
        got: &'static str,
    },
    /// An enum field holds a value this build does not know.
    #[error("field `{field}` has unknown value {value}")]
    UnknownEnumValue {
        /// Field name.
        field: &'static str,
        /// Raw value.
        value: u16,
    },
}

impl FrameError {
    /// The stable code to report to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::NotAnEnvelope
            | FrameError::MissingField { .. }
            | FrameError::InvalidUtf8
            | FrameError::TooComplex(_)
            | FrameError::Malformed(_) => ErrorCode::BadFrame,
            FrameError::UnknownFrame(_) | FrameError::UnexpectedDirection { .. } => {
                ErrorCode::UnexpectedFrame
            }
            // The frame itself is sound; only one value is out of range, as
            // with any other argument the server does not accept.
            FrameError::UnknownEnumValue { .. } => ErrorCode::InvalidArgument,
        }
    }
}

impl From<InvalidFlatbuffer> for FrameError {
    fn from(err: InvalidFlatbuffer) -> Self {
        match err {
            InvalidFlatbuffer::MissingRequiredField { required, .. } => {
                FrameError::MissingField { field: required }
            }
            InvalidFlatbuffer::Utf8Error { .. } => FrameError::InvalidUtf8,
            InvalidFlatbuffer::TooManyTables => FrameError::TooComplex("too many tables"),
            InvalidFlatbuffer::ApparentSizeTooLarge => {
                FrameError::TooComplex("apparent size too large")
            }
            InvalidFlatbuffer::DepthLimitReached => FrameError::TooComplex("nested too deep"),
            other => FrameError::Malformed(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_errors_map_to_specific_variants() {
        let missing = InvalidFlatbuffer::MissingRequiredField {
            required: Cow::Borrowed("room_id"),
            error_trace: Default::default(),
        };
        assert!(matches!(
            FrameError::from(missing),
            FrameError::MissingField { field } if field == "room_id"
        ));
        assert!(matches!(
            FrameError::from(InvalidFlatbuffer::DepthLimitReached),
            FrameError::TooComplex(_)
        ));
        let oob = InvalidFlatbuffer::RangeOutOfBounds {
            range: 0..9,
            error_trace: Default::default(),
        };
        assert_eq!(FrameError::from(oob).code(), ErrorCode::BadFrame);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            FrameError::TooLarge { len: 2, max: 1 }.code(),
            ErrorCode::FrameTooLarge
        );
        assert_eq!(FrameError::NotAnEnvelope.code(), ErrorCode::BadFrame);
        assert_eq!(FrameError::InvalidUtf8.code(), ErrorCode::BadFrame);
        assert_eq!(
            FrameError::UnknownFrame(200).code(),
            ErrorCode::UnexpectedFrame
        );
        let wrong_way = FrameError::UnexpectedDirection {
            expected: "client",
            got: "Welcome",
        };
        assert_eq!(wrong_way.code(), ErrorCode::UnexpectedFrame);
        let bad_enum = FrameError::UnknownEnumValue {
            field: "state",
            value: 9,
        };
        assert_eq!(bad_enum.code(), ErrorCode::InvalidArgument);
    }
}
