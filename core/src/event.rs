//! The event model: what is stored and delivered ([`Event`]) and what a client
//! asks to append ([`NewEvent`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, EventId, RoomId, UserId};

/// Largest event content accepted, in bytes (the Matrix limit for a whole PDU).
pub const MAX_CONTENT_BYTES: usize = 65_536;
/// Longest event type or state key accepted, in bytes.
pub const MAX_TYPE_BYTES: usize = 255;
/// Longest client transaction id accepted, in bytes.
pub const MAX_TXN_ID_BYTES: usize = 255;

/// Well-known event types that core interprets.
pub mod types {
    /// Creates a room; always `seq` 1.
    pub const CREATE: &str = "m.room.create";
    /// Membership of one user (state key = the user id).
    pub const MEMBER: &str = "m.room.member";
    /// Who may do what.
    pub const POWER_LEVELS: &str = "m.room.power_levels";
    /// Who may join: public, invite, knock, private.
    pub const JOIN_RULES: &str = "m.room.join_rules";
    /// The room's name.
    pub const NAME: &str = "m.room.name";
    /// The room's topic.
    pub const TOPIC: &str = "m.room.topic";
    /// A chat message.
    pub const MESSAGE: &str = "m.room.message";
    /// Redacts another event (`content.redacts`, room version 11).
    pub const REDACTION: &str = "m.room.redaction";
    /// The room's main alias.
    pub const CANONICAL_ALIAS: &str = "m.room.canonical_alias";
    /// Who may read the history.
    pub const HISTORY_VISIBILITY: &str = "m.room.history_visibility";
    /// Whether guests may join.
    pub const GUEST_ACCESS: &str = "m.room.guest_access";
    /// The room's avatar.
    pub const AVATAR: &str = "m.room.avatar";
}

/// A stored, sequenced event. Content is JSON bytes that the hot path never parses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Globally unique id.
    pub event_id: EventId,
    /// The room the event belongs to.
    pub room_id: RoomId,
    /// Who sent it.
    pub sender: UserId,
    /// Event type, e.g. `m.room.message`.
    pub event_type: String,
    /// Present for state events; the empty string is a valid state key.
    pub state_key: Option<String>,
    /// JSON object, as bytes.
    pub content: Bytes,
    /// Milliseconds since the Unix epoch, from the sequencer's clock.
    pub origin_server_ts: u64,
    /// Dense position in the room's timeline: 1, 2, 3, ...
    pub seq: u64,
    /// Position in the stream of the room's shard.
    pub pos: u64,
}

impl Event {
    /// Whether this is a state event.
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The user and membership an `m.room.member` event sets; `None` for
    /// other events and for malformed member events (which authorization
    /// refuses, so none is ever stored by the sequencer).
    pub fn membership_change(&self) -> Option<(UserId, crate::room::Membership)> {
        if self.event_type != types::MEMBER {
            return None;
        }
        let user = UserId::parse(self.state_key.as_deref()?).ok()?;
        Some((user, crate::room::state::parse_membership(&self.content)?))
    }

    /// The event an `m.room.redaction` redacts (`content.redacts`, as room
    /// version 11 has it); `None` for other events or without a valid id.
    pub fn redacts(&self) -> Option<EventId> {
        #[derive(Deserialize)]
        struct Redaction {
            redacts: String,
        }
        if self.event_type != types::REDACTION {
            return None;
        }
        let r: Redaction = serde_json::from_slice(&self.content).ok()?;
        EventId::parse(&r.redacts).ok()
    }

    /// This event as the wire view the frame encoder takes.
    pub fn wire_view(&self) -> axon_schemas::EventView<'_> {
        axon_schemas::EventView {
            event_id: self.event_id.as_str(),
            room_id: self.room_id.as_str(),
            sender: self.sender.as_str(),
            event_type: &self.event_type,
            state_key: self.state_key.as_deref(),
            content: &self.content,
            origin_server_ts: self.origin_server_ts,
            seq: self.seq,
            pos: self.pos,
        }
    }
}

/// A client's request to append one event to a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Target room.
    pub room_id: RoomId,
    /// Who sends it (authenticated by the face that received it).
    pub sender: UserId,
    /// Event type.
    pub event_type: String,
    /// Present for state events.
    pub state_key: Option<String>,
    /// JSON object, as bytes.
    pub content: Bytes,
    /// Makes the send idempotent: a retry with the same (device, txn id)
    /// returns the first send's result.
    pub txn: Option<TxnId>,
}

/// The client side of idempotency: which device sent which transaction id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxnId {
    /// The sending device.
    pub device_id: DeviceId,
    /// The client's transaction id.
    pub txn_id: String,
}

/// Why a [`NewEvent`] is malformed (before any authorization).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Content exceeds [`MAX_CONTENT_BYTES`].
    #[error("event content is {0} bytes, more than the {MAX_CONTENT_BYTES} allowed")]
    ContentTooLarge(usize),
    /// Content is not a JSON object.
    #[error("event content must be a JSON object")]
    ContentNotObject,
    /// Event type empty or too long.
    #[error("event type must be 1 to {MAX_TYPE_BYTES} bytes")]
    BadType,
    /// State key too long.
    #[error("state key must be at most {MAX_TYPE_BYTES} bytes")]
    BadStateKey,
    /// Transaction id empty or too long.
    #[error("transaction id must be 1 to {MAX_TXN_ID_BYTES} bytes")]
    BadTxnId,
}

impl NewEvent {
    /// An `m.room.message` event with `content` (a JSON object), no
    /// transaction id.
    pub fn message(room_id: &RoomId, sender: &UserId, content: impl Into<Bytes>) -> Self {
        Self {
            room_id: room_id.clone(),
            sender: sender.clone(),
            event_type: types::MESSAGE.into(),
            state_key: None,
            content: content.into(),
            txn: None,
        }
    }

    /// An `m.room.member` event in which `sender` sets `target`'s membership
    /// (join and leave for oneself; invite, kick, ban, unban for others).
    pub fn membership(
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        membership: crate::room::Membership,
    ) -> Self {
        Self {
            room_id: room_id.clone(),
            sender: sender.clone(),
            event_type: types::MEMBER.into(),
            state_key: Some(target.as_str().into()),
            content: membership.content(),
            txn: None,
        }
    }

    /// Checks sizes and that content is a JSON object.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.event_type.is_empty() || self.event_type.len() > MAX_TYPE_BYTES {
            return Err(EventError::BadType);
        }
        if self
            .state_key
            .as_ref()
            .is_some_and(|k| k.len() > MAX_TYPE_BYTES)
        {
            return Err(EventError::BadStateKey);
        }
        if let Some(txn) = &self.txn
            && (txn.txn_id.is_empty() || txn.txn_id.len() > MAX_TXN_ID_BYTES)
        {
            return Err(EventError::BadTxnId);
        }
        if self.content.len() > MAX_CONTENT_BYTES {
            return Err(EventError::ContentTooLarge(self.content.len()));
        }
        let first = self.content.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{')
            || serde_json::from_slice::<serde::de::IgnoredAny>(&self.content).is_err()
        {
            return Err(EventError::ContentNotObject);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(content: &'static str) -> NewEvent {
        NewEvent {
            room_id: RoomId::parse("!r:x").unwrap(),
            sender: UserId::parse("@a:x").unwrap(),
            event_type: types::MESSAGE.into(),
            state_key: None,
            content: Bytes::from_static(content.as_bytes()),
            txn: None,
        }
    }

    #[test]
    fn validates_content() {
        assert!(new_event(r#"{"body":"hi"}"#).validate().is_ok());
        assert!(new_event(" {}").validate().is_ok());
        assert_eq!(
            new_event("[]").validate(),
            Err(EventError::ContentNotObject)
        );
        assert_eq!(new_event("{").validate(), Err(EventError::ContentNotObject));
        assert_eq!(new_event("").validate(), Err(EventError::ContentNotObject));
        let mut e = new_event("{}");
        e.event_type.clear();
        assert_eq!(e.validate(), Err(EventError::BadType));
    }
}
