//! The envelope's file identifier, checked before anything else is read.

use crate::generated::v1 as fb;

/// File identifier of every `axon.v1` envelope, at bytes 4..8 of the buffer.
pub const FILE_IDENTIFIER: &str = fb::ENVELOPE_IDENTIFIER;

/// Smallest buffer that can hold the root offset and the file identifier.
const IDENTIFIER_END: usize = 8;

/// True if `buf` carries the `AXN1` file identifier.
///
/// A cheap sniff (no verification): it tells an axon.v1 envelope from another
/// protocol or version, not a valid frame from a broken one. Unlike the
/// generated `envelope_buffer_has_identifier`, it never panics on short input.
pub fn has_envelope_identifier(buf: &[u8]) -> bool {
    buf.get(4..IDENTIFIER_END) == Some(FILE_IDENTIFIER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_are_not_envelopes() {
        for len in 0..IDENTIFIER_END {
            assert!(!has_envelope_identifier(&b"\0\0\0\0AXN1"[..len]));
        }
    }

    #[test]
    fn identifier_sits_after_the_root_offset() {
        assert!(has_envelope_identifier(b"\x0c\0\0\0AXN1"));
        assert!(!has_envelope_identifier(b"\x0c\0\0\0AXN2"));
        assert!(!has_envelope_identifier(b"AXN1\0\0\0\0"));
    }
}
