//! Frames a server sends.

use super::{PresenceState, Redacted};
use crate::code::ErrorCode;

/// A frame sent by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// Handshake accepted.
    Welcome(Welcome<'a>),
    /// One event.
    Event(EventView<'a>),
    /// Several events.
    EventBatch(EventBatch<'a>),
    /// A send was stored.
    SendAck(SendAck<'a>),
    /// A timeline page.
    HistoryPage(HistoryPage<'a>),
    /// Who is typing.
    TypingUpdate(TypingUpdate<'a>),
    /// A receipt moved.
    ReceiptUpdate(ReceiptUpdate<'a>),
    /// A presence change.
    PresenceUpdate(PresenceUpdate<'a>),
    /// An error.
    Error(ErrorFrame<'a>),
    /// Answer to `Ping`.
    Pong(Pong),
    /// A room is subscribed.
    Subscribed(Subscribed<'a>),
}

impl ServerFrame<'_> {
    /// Schema name of the frame type, e.g. `"Welcome"`.
    pub fn name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome(_) => "Welcome",
            ServerFrame::Event(_) => "Event",
            ServerFrame::EventBatch(_) => "EventBatch",
            ServerFrame::SendAck(_) => "SendAck",
            ServerFrame::HistoryPage(_) => "HistoryPage",
            ServerFrame::TypingUpdate(_) => "TypingUpdate",
            ServerFrame::ReceiptUpdate(_) => "ReceiptUpdate",
            ServerFrame::PresenceUpdate(_) => "PresenceUpdate",
            ServerFrame::Error(_) => "Error",
            ServerFrame::Pong(_) => "Pong",
            ServerFrame::Subscribed(_) => "Subscribed",
        }
    }
}

/// `Welcome`: the handshake succeeded.
#[derive(Clone, PartialEq, Eq)]
pub struct Welcome<'a> {
    /// Authenticated user.
    pub user_id: &'a str,
    /// Device of this connection.
    pub device_id: &'a str,
    /// New access token, only in answer to `Login`.
    pub access_token: Option<&'a str>,
    /// Session id, for logs and support.
    pub session_id: &'a str,
    /// Server clock, Unix ms.
    pub server_time_ms: u64,
    /// The client sends a frame at least this often.
    pub heartbeat_interval_ms: u32,
    /// Largest frame the server accepts.
    pub max_frame_bytes: u32,
}

impl std::fmt::Debug for Welcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welcome")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &self.access_token.map(|_| Redacted))
            .field("session_id", &self.session_id)
            .field("server_time_ms", &self.server_time_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish()
    }
}

/// One timeline event, borrowed: what the router encodes once per event and
/// what clients read out of `Event`, `EventBatch` and `HistoryPage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventView<'a> {
    /// Event id.
    pub event_id: &'a str,
    /// Room of the event.
    pub room_id: &'a str,
    /// Sender's user id.
    pub sender: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// State key; `Some("")` is a valid state key, distinct from `None`.
    pub state_key: Option<&'a str>,
    /// JSON content bytes (empty if absent on the wire).
    pub content: &'a [u8],
    /// Server receive time, Unix ms.
    pub origin_server_ts: u64,
    /// Dense position in the room (1, 2, 3, ...).
    pub seq: u64,
    /// Position in the shard stream.
    pub pos: u64,
}

/// `EventBatch`: several events in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch<'a> {
    /// The events, each room's in `seq` order.
    pub events: Vec<EventView<'a>>,
}

/// `SendAck`: a send was stored durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAck<'a> {
    /// The send's `request_id`.
    pub request_id: u64,
    /// Stored event's id.
    pub event_id: &'a str,
    /// Room of the event.
    pub room_id: &'a str,
    /// The event's `seq`.
    pub seq: u64,
    /// The event's `pos`.
    pub pos: u64,
}

/// `HistoryPage`: answer to a history request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage<'a> {
    /// The request's `request_id`.
    pub request_id: u64,
    /// Room read.
    pub room_id: &'a str,
    /// Events in the requested direction's order.
    pub events: Vec<EventView<'a>>,
    /// `from_seq` for the next page.
    pub next_from_seq: u64,
    /// No more events in this direction at read time.
    pub end: bool,
}

/// `TypingUpdate`: who is typing in a room now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypingUpdate<'a> {
    /// Room.
    pub room_id: &'a str,
    /// Users typing (empty = nobody).
    pub user_ids: Vec<&'a str>,
}

/// `ReceiptUpdate`: a user's read receipt moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptUpdate<'a> {
    /// Room.
    pub room_id: &'a str,
    /// User whose receipt moved.
    pub user_id: &'a str,
    /// Event read up to.
    pub event_id: &'a str,
    /// Receipt type.
    pub receipt_type: &'a str,
    /// Receipt time, Unix ms.
    pub ts: u64,
    /// Thread; `None` = unthreaded.
    pub thread_id: Option<&'a str>,
}

/// `PresenceUpdate`: a user's presence changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceUpdate<'a> {
    /// User.
    pub user_id: &'a str,
    /// New state.
    pub state: PresenceState,
    /// Status text, if set.
    pub status_msg: Option<&'a str>,
    /// Milliseconds since last active.
    pub last_active_ago_ms: u64,
    /// Active right now.
    pub currently_active: bool,
}

/// `Error`: a request failed, or the connection is about to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame<'a> {
    /// Failed request's id; 0 = not tied to a request.
    pub request_id: u64,
    /// Stable code (numbers unknown to this build decode as `Unknown`).
    pub code: ErrorCode,
    /// Human-readable detail (empty if absent on the wire).
    pub message: &'a str,
    /// Retry hint in ms; 0 = none.
    pub retry_after_ms: u32,
    /// The server closes the connection after this frame.
    pub close: bool,
    /// Reconnecting and resuming is expected to work.
    pub resumable: bool,
}

/// `Subscribed`: a room is subscribed; the replay came before, live events follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed<'a> {
    /// The `Subscribe`'s `request_id` (0 for a hello's resume positions).
    pub request_id: u64,
    /// The room.
    pub room_id: &'a str,
    /// The room's latest `seq` when the subscription started.
    pub head: u64,
}

/// `Pong`: answer to `Ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u64,
}
