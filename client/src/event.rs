//! Owned values handed to the application: [`Event`], [`HistoryPage`],
//! [`SendAck`], [`SubscribeAck`].
//!
//! Decoded frames borrow the received buffer. An [`Event`] shares it
//! instead of copying: its strings and content are reference-counted
//! slices of the frame, so it outlives the frame's decoding without an
//! allocation per field (building an owned copy was 12 % of the load
//! generator's CPU at 1,000 subscribers, docs/benchmarks.md). The frame's
//! buffer is freed when the last event of it is dropped; an application
//! that keeps a few events of many frames for long can copy what it keeps
//! (`String::from`).

use axon_schemas::EventView;
use bytes::Bytes;
use bytestring::ByteString;

pub use axon_schemas::Direction;

/// One timeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event id.
    pub event_id: ByteString,
    /// Room of the event.
    pub room_id: ByteString,
    /// Sender's user id.
    pub sender: ByteString,
    /// Event type, e.g. `m.room.message`.
    pub event_type: ByteString,
    /// State key; `Some("")` is a valid state key, `None` = not a state event.
    pub state_key: Option<ByteString>,
    /// The content, a JSON object as UTF-8 bytes.
    pub content: Bytes,
    /// Server receive time, Unix ms.
    pub origin_server_ts: u64,
    /// Position in the room: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Position in the room's shard stream.
    pub pos: u64,
}

impl Event {
    /// Whether this is a state event.
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The event `view` decoded from `frame`, sharing the frame's buffer.
    pub(crate) fn shared(view: &EventView<'_>, frame: &Bytes) -> Self {
        Self {
            event_id: text(frame, view.event_id),
            room_id: text(frame, view.room_id),
            sender: text(frame, view.sender),
            event_type: text(frame, view.event_type),
            state_key: view.state_key.map(|key| text(frame, key)),
            content: slice(frame, view.content),
            origin_server_ts: view.origin_server_ts,
            seq: view.seq,
            pos: view.pos,
        }
    }
}

/// `part` as a slice of `frame` when it lies in it (it does when `part`
/// was decoded from `frame`), else a copy.
fn slice(frame: &Bytes, part: &[u8]) -> Bytes {
    if lies_in(frame, part) {
        frame.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// Whether `part` is memory of `frame` (what [`Bytes::slice_ref`] needs).
fn lies_in(frame: &Bytes, part: &[u8]) -> bool {
    let whole = frame.as_ptr_range();
    whole.start <= part.as_ptr() && part.as_ptr_range().end <= whole.end
}

/// [`slice`] for a string.
fn text(frame: &Bytes, part: &str) -> ByteString {
    // The bytes are those of a `str`: the check cannot fail (it is one
    // pass over a short ASCII id in the common case).
    ByteString::try_from(slice(frame, part.as_bytes())).unwrap_or_else(|_| part.into())
}

/// A page of a room's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room read.
    pub room_id: String,
    /// Events in the requested direction's order (newest first when
    /// reading backward).
    pub events: Vec<Event>,
    /// `from` for the next page in the same direction.
    pub next_from_seq: u64,
    /// No more events in this direction at read time.
    pub end: bool,
}

/// A stored event: the answer to [`Client::send`](crate::Client::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAck {
    /// The event's id (for a retried send, the first attempt's).
    pub event_id: String,
    /// The room.
    pub room_id: String,
    /// The event's `seq` in the room.
    pub seq: u64,
    /// The event's position in its shard's stream.
    pub pos: u64,
}

/// A subscription took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeAck {
    /// The room's latest `seq` when the subscription started: events up to
    /// it (after the requested position) were replayed first, later ones
    /// arrive live.
    pub head: u64,
}

#[cfg(test)]
mod tests {
    use axon_schemas::{DecodeLimits, Frame, ServerFrame};

    use super::*;

    fn view(seq: u64, state_key: Option<&'static str>) -> EventView<'static> {
        EventView {
            event_id: "$abc",
            room_id: "!room:axon",
            sender: "@zoë:axon",
            event_type: "m.room.message",
            state_key,
            content: br#"{"body":"hi"}"#,
            origin_server_ts: 7,
            seq,
            pos: 40 + seq,
        }
    }

    #[test]
    fn events_share_the_frame_they_were_decoded_from() {
        let sent = [view(1, None), view(2, Some(""))];
        let frame = axon_schemas::FrameEncoder::default().encode_event_batch(&sent);
        let decoded = axon_schemas::decode(&frame, &DecodeLimits::default())
            .and_then(Frame::into_server)
            .unwrap();
        let ServerFrame::EventBatch(batch) = decoded else {
            panic!("not a batch: {}", decoded.name());
        };
        let events: Vec<Event> = batch
            .events
            .iter()
            .map(|v| Event::shared(v, &frame))
            .collect();
        for (event, sent) in events.iter().zip(&sent) {
            assert_eq!(event.event_id, sent.event_id);
            assert_eq!(event.room_id, sent.room_id);
            assert_eq!(event.sender, sent.sender);
            assert_eq!(event.event_type, sent.event_type);
            assert_eq!(event.state_key.as_deref(), sent.state_key);
            assert_eq!(&event.content[..], sent.content);
            assert_eq!(
                (event.origin_server_ts, event.seq, event.pos),
                (7, sent.seq, sent.pos)
            );
            for part in [
                event.event_id.as_bytes(),
                event.room_id.as_bytes(),
                event.sender.as_bytes(),
                event.event_type.as_bytes(),
                &event.content,
            ] {
                assert!(lies_in(&frame, part), "copied instead of shared");
            }
        }
        // The frame's buffer outlives the frame handle.
        let first = events[0].clone();
        drop((events, frame));
        assert_eq!(first.room_id, "!room:axon");
        assert!(!first.is_state());
    }

    #[test]
    fn a_view_of_other_memory_is_copied() {
        let frame = Bytes::from_static(b"unrelated");
        let event = Event::shared(&view(3, Some("k")), &frame);
        assert_eq!(event.event_id, "$abc");
        assert_eq!(event.state_key.as_deref(), Some("k"));
        assert_eq!(&event.content[..], br#"{"body":"hi"}"#);
        assert!(!lies_in(&frame, &event.content));
    }
}
