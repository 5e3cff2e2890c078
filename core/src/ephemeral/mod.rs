//! Ephemeral state: who is typing where, who is online, and read receipts
//! as they move. Kept in memory on this node (DESIGN: Redis across
//! machines), never part of a timeline, and fanned out through the
//! [`RoomRouter`] to a room's subscribers as frames of their own.
//!
//! - [`typing`] — [`TypingRegistry`]: typing notices with their timeouts.
//! - [`presence`] — [`PresenceRegistry`]: presence as users set it, and
//!   offline when a user's last connection closes.
//! - [`stream`] — [`StreamLog`]: stream positions of typing, receipt,
//!   presence and account data changes, for Matrix `/sync` tokens.
//!
//! Account data is durable (in the store), but its change positions are
//! kept here with the others: the store has no stream of its own for it,
//! and a `/sync` waiter needs the same "changed since" and wake-up.
//!
//! [`Ephemeral`] ties them to the router: a change is encoded once and
//! handed to the subscribers of every room it concerns. A presence change
//! goes to each room the user has joined, so a client that shares several
//! rooms with the user may hear it more than once; each update states the
//! whole presence, so applying it twice is harmless.

pub mod presence;
pub mod stream;
pub mod typing;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axon_schemas::{PresenceUpdate, ReceiptUpdate, ServerFrame, TypingUpdate};
use bytes::Bytes;

pub use presence::{PresenceRegistry, PresenceState, PresenceView};
pub use stream::StreamLog;
pub use typing::{TypingChange, TypingRegistry};

use crate::clock::now_ms;
use crate::encoder::with_encoder;
use crate::ids::{RoomId, UserId};
use crate::room::Membership;
use crate::router::RoomRouter;
use crate::store::{Receipt, Store, StoreError};

/// How often expired typing notices are looked for.
const TYPING_SWEEP: Duration = Duration::from_millis(500);

/// Most presence updates sent to a connection that subscribes to a room
/// (the room's members who are not offline); the rest come as they change.
pub const PRESENCE_ON_SUBSCRIBE: usize = 256;

/// Receipt types that only their owner may see; never fanned out.
const PRIVATE_RECEIPTS: &[&str] = &["m.read.private"];

/// Typing, presence and receipt fan-out for one node.
pub struct Ephemeral {
    /// Typing notices.
    pub typing: TypingRegistry,
    /// Presence.
    pub presence: PresenceRegistry,
    /// Change positions, for `/sync` tokens.
    pub streams: Streams,
    router: Arc<RoomRouter>,
    store: Arc<dyn Store>,
}

impl Ephemeral {
    /// The service, with a task that ends typing notices when their time
    /// is up (it stops when the service is dropped). Needs a tokio runtime.
    pub fn start(router: Arc<RoomRouter>, store: Arc<dyn Store>) -> Arc<Self> {
        let this = Arc::new(Self {
            typing: TypingRegistry::default(),
            presence: PresenceRegistry::default(),
            streams: Streams::default(),
            router,
            store,
        });
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TYPING_SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                for change in this.typing.expire(tokio::time::Instant::now()) {
                    this.announce_typing(&change);
                }
            }
        });
        this
    }

    /// `user` started or stopped typing in `room` (membership already
    /// checked by the caller); the room hears of it if the set changed.
    pub fn set_typing(&self, room: &RoomId, user: &UserId, typing: bool, timeout: Duration) {
        let now = tokio::time::Instant::now();
        if let Some(change) = self.typing.set(room, user, typing, timeout, now) {
            self.announce_typing(&change);
        }
    }

    fn announce_typing(&self, change: &TypingChange) {
        // Recorded before the fan-out: a woken waiter must find the change.
        self.streams.typing.record(&change.room);
        self.router
            .publish_ephemeral(&change.room, &typing_frame(change));
    }

    /// The room's ephemeral state now, for a connection that just
    /// subscribed: who is typing (if anyone), and the presence of up to
    /// [`PRESENCE_ON_SUBSCRIBE`] of `members` who are not offline.
    pub fn snapshot<'a>(
        &self,
        room: &RoomId,
        members: impl Iterator<Item = &'a UserId>,
        out: &mut Vec<Bytes>,
    ) {
        let typing = self.typing.typing_in(room);
        if !typing.is_empty() {
            out.push(typing_frame(&TypingChange {
                room: room.clone(),
                users: typing,
            }));
        }
        let now = now_ms();
        let present = members
            .filter_map(|user| {
                let view = self.presence.get(user);
                (view.state != PresenceState::Offline).then_some((user, view))
            })
            .take(PRESENCE_ON_SUBSCRIBE);
        for (user, view) in present {
            out.push(presence_frame(user, &view, now));
        }
    }

    /// Fans a stored receipt out to the room, unless its type is private.
    pub fn announce_receipt(&self, receipt: &Receipt) {
        self.streams.receipts.record(&receipt.room_id);
        if PRIVATE_RECEIPTS.contains(&receipt.receipt_type.as_str()) {
            // Only the owner's `/sync` shows it; nobody else may be woken.
            self.router.users().signal(&receipt.user_id);
            return;
        }
        let frame = encode(&ServerFrame::ReceiptUpdate(ReceiptUpdate {
            room_id: receipt.room_id.as_str(),
            user_id: receipt.user_id.as_str(),
            event_id: receipt.event_id.as_str(),
            receipt_type: &receipt.receipt_type,
            ts: receipt.ts,
            thread_id: receipt.thread_id.as_deref(),
        }));
        self.router.publish_ephemeral(&receipt.room_id, &frame);
    }

    /// `user` sets their presence; every room they have joined hears of it.
    pub async fn set_presence(
        &self,
        user: &UserId,
        state: PresenceState,
        status_msg: Option<String>,
    ) -> Result<PresenceView, StoreError> {
        let view = self.presence.set(user, state, status_msg, now_ms());
        self.announce_presence(user, &view).await?;
        Ok(view)
    }

    /// A connection of `user` opened.
    pub fn connected(&self, user: &UserId) {
        self.presence.connected(user);
    }

    /// A connection of `user` closed; if it was their last, their rooms
    /// hear that they went offline (in the background: this is called
    /// where nothing can wait).
    pub fn disconnected(self: &Arc<Self>, user: &UserId) {
        let Some(view) = self.presence.disconnected(user, now_ms()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = Arc::clone(self);
        let user = user.clone();
        runtime.spawn(async move {
            if let Err(e) = this.announce_presence(&user, &view).await {
                tracing::warn!(%user, error = %e, "could not announce going offline");
            }
        });
    }

    async fn announce_presence(
        &self,
        user: &UserId,
        view: &PresenceView,
    ) -> Result<(), StoreError> {
        self.streams.presence.record(user);
        // The user's own `/sync` shows their presence too.
        self.router.users().signal(user);
        let rooms = self.store.rooms_of_user(user).await?;
        let frame = presence_frame(user, view, now_ms());
        for (room, membership) in rooms {
            if membership == Membership::Join {
                self.router.publish_ephemeral(&room, &frame);
            }
        }
        Ok(())
    }
}

fn typing_frame(change: &TypingChange) -> Bytes {
    let users: Vec<&str> = change.users.iter().map(UserId::as_str).collect();
    encode(&ServerFrame::TypingUpdate(TypingUpdate {
        room_id: change.room.as_str(),
        user_ids: users,
    }))
}

fn presence_frame(user: &UserId, view: &PresenceView, now_ms: u64) -> Bytes {
    encode(&ServerFrame::PresenceUpdate(PresenceUpdate {
        user_id: user.as_str(),
        state: match view.state {
            PresenceState::Online => axon_schemas::PresenceState::Online,
            PresenceState::Unavailable => axon_schemas::PresenceState::Unavailable,
            PresenceState::Offline => axon_schemas::PresenceState::Offline,
        },
        status_msg: view.status_msg.as_deref(),
        last_active_ago_ms: now_ms.saturating_sub(view.last_active_ms),
        currently_active: view.currently_active,
    }))
}

/// Stream positions of ephemeral changes (and account data), each a
/// [`StreamLog`]; a `/sync` token carries one position per log.
#[derive(Default)]
pub struct Streams {
    /// Rooms whose typing set changed.
    pub typing: StreamLog<RoomId>,
    /// Rooms with a new receipt (private ones included).
    pub receipts: StreamLog<RoomId>,
    /// Users whose presence changed.
    pub presence: StreamLog<UserId>,
    /// (user, room) whose account data changed; `None` is global data.
    pub account_data: StreamLog<(UserId, Option<RoomId>)>,
}

impl Ephemeral {
    /// Records that `user`'s account data (of `room`, or global) changed in
    /// the store, and wakes the user's `/sync`.
    pub fn account_data_changed(&self, user: &UserId, room: Option<&RoomId>) {
        self.streams
            .account_data
            .record(&(user.clone(), room.cloned()));
        self.router.users().signal(user);
    }
}

fn encode(frame: &ServerFrame<'_>) -> Bytes {
    with_encoder(|e| e.encode_server(frame))
}
