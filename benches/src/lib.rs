//! Criterion benchmarks of Axon's hot paths; the benches live in `benches/`.
//!
//! - `frames` — encode, verify and decode native-protocol frames.
//! - `router_fanout` — one event to 1, 100 and 10,000 subscribers.
//! - `sequencer_appends` — durable appends with fsync group commit at
//!   concurrency 1, 16 and 256.
//! - `timeline_reads` — range reads of a room's timeline.
//! - `matrix_sync` — one Matrix `/sync` answered in process, after one or
//!   five new messages and with nothing new.
//! - `embedded_engines` — fjall against redb on the timeline pattern (the
//!   measurement behind the embedded store's choice, `docs/storage.md`).
//!
//! Results, with the commands that produced them, are in `docs/benchmarks.md`.
//! This library holds the fixtures the benches share.

use axon_core::{Event, EventId, RoomId, UserId};
use bytes::Bytes;

/// A typical chat message event of about 200 bytes of content.
pub fn sample_event(room: &RoomId, seq: u64) -> Event {
    Event {
        event_id: EventId::generate(),
        room_id: room.clone(),
        sender: UserId::parse("@alice:bench.example").expect("valid user id literal"),
        event_type: "m.room.message".into(),
        state_key: None,
        content: sample_content(),
        origin_server_ts: 1_763_800_000_000,
        seq,
        pos: seq,
    }
}

/// About 200 bytes of JSON content.
pub fn sample_content() -> Bytes {
    Bytes::from_static(
        br#"{"msgtype":"m.text","body":"The quick brown fox jumps over the lazy dog; a message of a typical size for a chat timeline, with a little more text to reach two hundred bytes."}"#,
    )
}
