//! The content of a load event: when it was sent and by which publisher,
//! padded to the requested size.
//!
//! `{"msgtype":"m.text","body":"load","t":<unix ns>,"w":<writer>,"n":<count>,"pad":"xxxx"}`
//!
//! The send time is wall-clock (Unix nanoseconds), so a receiver in another
//! process on the same machine can compute the end-to-end latency.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Event type of load events (native faces).
pub const EVENT_TYPE: &str = "m.room.message";

/// What a receiver reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// Send time, Unix nanoseconds.
    pub t: u64,
    /// Publisher number.
    pub w: u32,
    /// The publisher's count, from 0.
    pub n: u64,
}

/// Unix time in nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Content of `size` bytes (or the smallest possible, about 80) carrying
/// `stamp`.
pub fn encode(stamp: Stamp, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"msgtype":"m.text","body":"load","t":{},"w":{},"n":{},"pad":""#,
        stamp.t, stamp.w, stamp.n
    );
    let tail = "\"}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut out = Vec::with_capacity(head.len() + pad + tail.len());
    out.extend_from_slice(head.as_bytes());
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(tail.as_bytes());
    out
}

/// The stamp in `content`, or `None` for any other event.
pub fn decode(content: &[u8]) -> Option<Stamp> {
    serde_json::from_slice(content).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_to_size() {
        let stamp = Stamp {
            t: now_ns(),
            w: 7,
            n: 42,
        };
        let content = encode(stamp, 512);
        assert_eq!(content.len(), 512);
        assert_eq!(decode(&content), Some(stamp));
        let small = encode(stamp, 0);
        assert_eq!(decode(&small), Some(stamp));
    }

    #[test]
    fn other_content_has_no_stamp() {
        assert_eq!(decode(br#"{"msgtype":"m.text","body":"hi"}"#), None);
        assert_eq!(decode(b"not json"), None);
    }
}
