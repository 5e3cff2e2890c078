//! Feeds arbitrary bytes to `axon_schemas::decode`, the server's only entry
//! point for inbound frames. It must never panic; a frame it accepts must
//! re-encode to something that decodes to the same frame.
//!
//! Run from the repository root: `cargo fuzz run frame_decode`
//! (with `RUSTC_BOOTSTRAP=1` on a stable toolchain).
#![no_main]

use axon_schemas::{DecodeLimits, FrameEncoder, decode};
use libfuzzer_sys::fuzz_target;

fn reencoded_limits(limits: &DecodeLimits) -> DecodeLimits {
    DecodeLimits {
        max_tables: limits.max_tables,
        max_depth: limits.max_depth,
        ..DecodeLimits::with_max_frame_bytes(usize::MAX)
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    match decode(data, &limits) {
        Ok(frame) => {
            let bytes = FrameEncoder::new().encode(&frame);
            // Re-encoding may be larger than the input (which may share one
            // string among many fields), so only the size limit is relaxed.
            let again =
                decode(&bytes, &reencoded_limits(&limits)).expect("a re-encoded frame must decode");
            assert_eq!(again, frame, "re-encoding changed the frame");
        }
        Err(err) => {
            let _ = (err.code(), err.to_string());
        }
    }
});
