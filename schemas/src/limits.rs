//! How much work one inbound frame may cost before it is rejected.

use flatbuffers::VerifierOptions;

/// Default largest accepted frame: 64 KiB.
///
/// Big enough for an event with a generous JSON body plus its envelope, small
/// enough that a connection's read buffer stays cheap (the idle-connection
/// budget is a few KiB) and that a hostile peer cannot make the verifier walk
/// much memory. Servers advertise their value in `Welcome.max_frame_bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Default deepest table nesting. The schema nests at most
/// `Envelope -> HistoryPage/EventBatch -> Event` (3 tables); the slack allows
/// a few schema versions of growth, not recursion bombs.
pub const DEFAULT_MAX_DEPTH: usize = 8;

/// Default most tables in one frame: more than the largest sane history
/// page or subscribe list (~1,000 entries), far below what DAG-shaped hostile
/// buffers could otherwise make the verifier visit.
pub const DEFAULT_MAX_TABLES: usize = 4096;

/// Limits applied by [`crate::decode`] to one buffer.
///
/// The size check runs first and is O(1); the rest are handed to the
/// FlatBuffers verifier so that a buffer whose offsets point at shared data
/// many times over (a DAG that expands far beyond its byte size) is rejected
/// while it is verified, not after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted buffer, in bytes.
    pub max_frame_bytes: usize,
    /// Deepest table nesting the verifier accepts.
    pub max_depth: usize,
    /// Most tables the verifier visits.
    pub max_tables: usize,
    /// Most bytes the verifier may range-check, counting shared data each time
    /// it is referenced (vtables included).
    pub max_apparent_size: usize,
}

impl DecodeLimits {
    /// Limits for frames of at most `max_frame_bytes`, other limits at their
    /// defaults and the apparent size scaled to the frame size.
    pub const fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            max_depth: DEFAULT_MAX_DEPTH,
            max_tables: DEFAULT_MAX_TABLES,
            // A legitimate frame range-checks each byte about once, plus one
            // vtable per table; 4x leaves room for that without letting a
            // shared-offset bomb through.
            max_apparent_size: max_frame_bytes.saturating_mul(4),
        }
    }

    /// The FlatBuffers verifier options these limits imply.
    pub(crate) fn verifier_options(&self) -> VerifierOptions {
        VerifierOptions {
            max_depth: self.max_depth,
            max_tables: self.max_tables,
            max_apparent_size: self.max_apparent_size,
            // Strings from peers must be proper FlatBuffers strings; a missing
            // terminator means a broken or hand-crafted encoder.
            ignore_missing_null_terminator: false,
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_64_kib() {
        let limits = DecodeLimits::default();
        assert_eq!(limits.max_frame_bytes, 65_536);
        assert_eq!(limits.max_apparent_size, 4 * 65_536);
    }

    #[test]
    fn verifier_options_follow_limits() {
        let limits = DecodeLimits {
            max_frame_bytes: 10,
            max_depth: 2,
            max_tables: 3,
            max_apparent_size: 40,
        };
        let opts = limits.verifier_options();
        assert_eq!(
            (opts.max_depth, opts.max_tables, opts.max_apparent_size),
            (2, 3, 40)
        );
        assert!(!opts.ignore_missing_null_terminator);
    }

    #[test]
    fn huge_limit_does_not_overflow() {
        assert_eq!(
            DecodeLimits::with_max_frame_bytes(usize::MAX).max_apparent_size,
            usize::MAX
        );
    }
}
