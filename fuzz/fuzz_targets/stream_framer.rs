//! Feeds arbitrary bytes, cut into arbitrary chunks, to
//! `axon_schemas::StreamFramer`, which both ends use to read QUIC streams.
//! It must never panic, never hand out a frame over its limit, and read
//! the same frames however the stream is cut.
//!
//! Input: the first byte is the frame limit, the next one how many cut
//! points follow (one byte each); the rest is the stream.
//!
//! Run from the repository root: `cargo fuzz run stream_framer`
//! (with `RUSTC_BOOTSTRAP=1` on a stable toolchain).
#![no_main]

use axon_schemas::StreamFramer;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

/// The frames read from `stream` delivered in pieces ending at `cuts`, and
/// whether the stream ended between frames; `None` if a frame was refused.
fn read(stream: &[u8], cuts: &[usize], max: usize) -> Option<(Vec<Bytes>, bool)> {
    let mut framer = StreamFramer::new(max);
    let mut frames = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        framer
            .push(Bytes::copy_from_slice(&stream[at..cut]), &mut frames)
            .ok()?;
        at = cut;
    }
    Some((frames, framer.is_between_frames()))
}

fuzz_target!(|data: &[u8]| {
    let [max, n_cuts, rest @ ..] = data else {
        return;
    };
    let n_cuts = usize::from(*n_cuts).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(n_cuts);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let max = usize::from(*max);

    let whole = read(stream, &[], max);
    let pieces = read(stream, &cuts, max);
    if let Some((frames, _)) = &pieces {
        assert!(frames.iter().all(|f| f.len() <= max), "a frame over the limit");
    }
    assert_eq!(whole, pieces, "chunking changed what was read");
});
