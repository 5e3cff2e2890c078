//! [`Ephemeral`]: what a client hears besides timeline events — typing
//! notices, read receipts and presence in the rooms it subscribed to.
//! Not stored and not replayed: a client that was away learns the current
//! state from the next update.

pub use axon_schemas::PresenceState;
use axon_schemas::ServerFrame;

/// One ephemeral update from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ephemeral {
    /// The users typing in a room now (empty = nobody).
    Typing {
        /// The room.
        room_id: String,
        /// Who types, in the order they started.
        user_ids: Vec<String>,
    },
    /// A user's read receipt moved.
    Receipt {
        /// The room.
        room_id: String,
        /// Whose receipt.
        user_id: String,
        /// Read up to and including this event.
        event_id: String,
        /// e.g. `m.read`.
        receipt_type: String,
        /// When, Unix ms.
        ts: u64,
    },
    /// A user's presence (it may arrive once per room shared with them).
    Presence {
        /// The user.
        user_id: String,
        /// Online, unavailable or offline.
        state: PresenceState,
        /// Free text, if set.
        status_msg: Option<String>,
        /// Milliseconds since the user was last active.
        last_active_ago_ms: u64,
        /// Active right now.
        currently_active: bool,
    },
}

impl Ephemeral {
    /// The update a server frame carries, if it is an ephemeral one.
    pub(crate) fn from_frame(frame: &ServerFrame<'_>) -> Option<Self> {
        Some(match frame {
            ServerFrame::TypingUpdate(t) => Ephemeral::Typing {
                room_id: t.room_id.to_owned(),
                user_ids: t.user_ids.iter().map(|u| (*u).to_owned()).collect(),
            },
            ServerFrame::ReceiptUpdate(r) => Ephemeral::Receipt {
                room_id: r.room_id.to_owned(),
                user_id: r.user_id.to_owned(),
                event_id: r.event_id.to_owned(),
                receipt_type: r.receipt_type.to_owned(),
                ts: r.ts,
            },
            ServerFrame::PresenceUpdate(p) => Ephemeral::Presence {
                user_id: p.user_id.to_owned(),
                state: p.state,
                status_msg: p.status_msg.map(str::to_owned),
                last_active_ago_ms: p.last_active_ago_ms,
                currently_active: p.currently_active,
            },
            _ => return None,
        })
    }
}
