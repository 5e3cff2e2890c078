//! One [`FrameEncoder`] per thread, for frames encoded away from the
//! sequencer's publish path (session answers, replays from storage).
//!
//! An encoder keeps its builder buffer between uses; one per connection
//! would keep a buffer per idle connection, one per thread keeps a handful.

use std::cell::RefCell;

use axon_schemas::FrameEncoder;

thread_local! {
    static ENCODER: RefCell<FrameEncoder> = RefCell::new(FrameEncoder::new());
}

/// Runs `f` with this thread's encoder. `f` must not call back into
/// `with_encoder` (the encoder is borrowed for the call).
pub(crate) fn with_encoder<R>(f: impl FnOnce(&mut FrameEncoder) -> R) -> R {
    ENCODER.with(|e| f(&mut e.borrow_mut()))
}
