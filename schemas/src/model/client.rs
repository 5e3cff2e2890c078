//! Frames a client sends.

use super::{Direction, PresenceState, Redacted, ResumePosition};

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Authenticate with an access token (first frame).
    Hello(Hello<'a>),
    /// Authenticate with user and password (first frame).
    Login(Login<'a>),
    /// Start receiving rooms.
    Subscribe(Subscribe<'a>),
    /// Stop receiving rooms.
    Unsubscribe(Unsubscribe<'a>),
    /// Send an event.
    Send(SendEvent<'a>),
    /// Read a timeline page.
    HistoryRequest(HistoryRequest<'a>),
    /// Typing notice.
    Typing(Typing<'a>),
    /// Read receipt.
    Receipt(Receipt<'a>),
    /// Own presence.
    Presence(Presence<'a>),
    /// Liveness probe.
    Ping(Ping),
}

impl ClientFrame<'_> {
    /// Schema name of the frame type, e.g. `"Hello"`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "Hello",
            ClientFrame::Login(_) => "Login",
            ClientFrame::Subscribe(_) => "Subscribe",
            ClientFrame::Unsubscribe(_) => "Unsubscribe",
            ClientFrame::Send(_) => "Send",
            ClientFrame::HistoryRequest(_) => "HistoryRequest",
            ClientFrame::Typing(_) => "Typing",
            ClientFrame::Receipt(_) => "Receipt",
            ClientFrame::Presence(_) => "Presence",
            ClientFrame::Ping(_) => "Ping",
        }
    }
}

/// `Hello`: authenticate with an access token and resume rooms.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Access token.
    pub access_token: &'a str,
    /// Device the token belongs to.
    pub device_id: Option<&'a str>,
    /// Client software name.
    pub client_name: Option<&'a str>,
    /// Client software version.
    pub client_version: Option<&'a str>,
    /// Rooms to resume after a known `seq`.
    pub resume: Vec<ResumePosition<'a>>,
}

impl std::fmt::Debug for Hello<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("access_token", &Redacted)
            .field("device_id", &self.device_id)
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("resume", &self.resume)
            .finish()
    }
}

/// `Login`: authenticate with user and password and resume rooms.
#[derive(Clone, PartialEq, Eq)]
pub struct Login<'a> {
    /// User id or localpart.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
    /// Device to log in as; `None` = create one.
    pub device_id: Option<&'a str>,
    /// Client software name.
    pub client_name: Option<&'a str>,
    /// Client software version.
    pub client_version: Option<&'a str>,
    /// Rooms to resume after a known `seq`.
    pub resume: Vec<ResumePosition<'a>>,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &Redacted)
            .field("device_id", &self.device_id)
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("resume", &self.resume)
            .finish()
    }
}

/// `Subscribe`: start receiving rooms, optionally replaying after a `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Echoed in the answer (0 = no answer wanted).
    pub request_id: u64,
    /// Rooms to receive live from now on.
    pub room_ids: Vec<&'a str>,
    /// Rooms to receive after a known `seq` (subscribed too).
    pub since: Vec<ResumePosition<'a>>,
}

/// `Unsubscribe`: stop receiving rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Echoed in an error answer.
    pub request_id: u64,
    /// Rooms to stop receiving.
    pub room_ids: Vec<&'a str>,
}

/// `Send`: send an event (named so as not to shadow the `Send` trait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendEvent<'a> {
    /// Echoed in the answer.
    pub request_id: u64,
    /// Target room.
    pub room_id: &'a str,
    /// Idempotency key, unique per device.
    pub txn_id: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// State key; `Some("")` is a valid state key, distinct from `None`.
    pub state_key: Option<&'a str>,
    /// JSON content bytes (empty if absent on the wire).
    pub content: &'a [u8],
}

/// `HistoryRequest`: read a page of a room's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest<'a> {
    /// Echoed in the answer.
    pub request_id: u64,
    /// Room to read.
    pub room_id: &'a str,
    /// Exclusive bound (`u64::MAX` backward = newest, 0 forward = first).
    pub from_seq: u64,
    /// Which way to read.
    pub direction: Direction,
    /// Most events wanted.
    pub limit: u32,
}

/// `Typing`: the user started or stopped typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing<'a> {
    /// Room typed in.
    pub room_id: &'a str,
    /// True = typing.
    pub typing: bool,
    /// Lifetime of the notice unless renewed.
    pub timeout_ms: u32,
}

/// `Receipt`: the user read up to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt<'a> {
    /// Room of the event.
    pub room_id: &'a str,
    /// Event read.
    pub event_id: &'a str,
    /// Receipt type, e.g. `m.read`.
    pub receipt_type: &'a str,
    /// Thread; `None` = unthreaded.
    pub thread_id: Option<&'a str>,
}

/// `Presence`: set the user's own presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence<'a> {
    /// New state.
    pub state: PresenceState,
    /// Status text; `None` = clear.
    pub status_msg: Option<&'a str>,
}

/// `Ping`: liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Echoed in `Pong`.
    pub nonce: u64,
}
