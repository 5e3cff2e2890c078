//! Owned values handed to the application: [`Event`], [`HistoryPage`],
//! [`SendAck`], [`SubscribeAck`].
//!
//! Decoded frames borrow the received buffer; these copy out what the
//! application keeps, so they outlive the frame.

use axon_schemas::EventView;
use bytes::Bytes;

pub use axon_schemas::Direction;

/// One timeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event id.
    pub event_id: String,
    /// Room of the event.
    pub room_id: String,
    /// Sender's user id.
    pub sender: String,
    /// Event type, e.g. `m.room.message`.
    pub event_type: String,
    /// State key; `Some("")` is a valid state key, `None` = not a state event.
    pub state_key: Option<String>,
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
}

impl From<&EventView<'_>> for Event {
    fn from(view: &EventView<'_>) -> Self {
        Self {
            event_id: view.event_id.to_owned(),
            room_id: view.room_id.to_owned(),
            sender: view.sender.to_owned(),
            event_type: view.event_type.to_owned(),
            state_key: view.state_key.map(str::to_owned),
            content: Bytes::copy_from_slice(view.content),
            origin_server_ts: view.origin_server_ts,
            seq: view.seq,
            pos: view.pos,
        }
    }
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
