//! Axon's core: the domain and the engine, with no sockets, HTTP or database
//! drivers. The faces (`axon-transport`, `axon-matrix`) and the stores
//! (`axon-storage`) plug into what is defined here.
//!
//! # Layout
//!
//! - [`ids`] — users, rooms, events, devices, server names; validated once.
//! - [`event`] — [`Event`] (stored, sequenced) and [`NewEvent`] (a request).
//! - [`room`] — membership, join rules, power levels, [`RoomState`] and the
//!   authorization rules every write passes (invariant 6).
//! - [`shard`] — [`ShardId`]: which shard, and so which sequencer, owns a room.
//! - [`sequencer`] — [`Sequencer`]: one writer per shard, group commit,
//!   dense `seq` per room and `pos` per shard, acknowledgement only after the
//!   durable write (invariants 1, 2, 4).
//! - [`router`] — [`RoomRouter`]: room → local subscribers, encode-once
//!   fan-out into bounded [`SubscriberQueue`]s with the lag policy
//!   (invariant 5), and [`DeliveryCursor`] for gap-free resume (invariant 3).
//! - [`session`] — [`Session`]: the native protocol's state machine for
//!   one connection, behind both the WebSocket and the QUIC face.
//! - [`ephemeral`] — [`Ephemeral`]: typing notices, presence and receipt
//!   fan-out, in memory, never part of a timeline.
//! - [`notify`] — [`UserNotifier`](notify::UserNotifier): wakes a user's
//!   `/sync` waiters for changes outside their subscribed rooms.
//! - [`rooms`] — [`Rooms`]: room creation with presets, membership
//!   changes, the alias directory, reads that check membership, sends and
//!   redactions — what the faces ask of rooms, every rule decided in core.
//! - [`accounts`] — users, passwords (Argon2id), hashed tokens, [`Accounts`].
//! - [`store`] — the storage traits that `axon-storage` implements.
//! - [`clock`] — the time events carry.
//!
//! The sequencer and router are driven by values in and out: they need a
//! tokio runtime for their tasks and channels, never a socket.

pub mod accounts;
pub mod clock;
mod encoder;
pub mod ephemeral;
pub mod event;
pub mod ids;
pub mod notify;
pub mod room;
pub mod rooms;
pub mod router;
pub mod sequencer;
pub mod session;
pub mod shard;
pub mod store;

pub use accounts::Accounts;
pub use ephemeral::Ephemeral;
pub use event::{Event, NewEvent, TxnId};
pub use ids::{DeviceId, EventId, RoomId, ServerName, UserId};
pub use room::{Membership, RoomCreation, RoomState};
pub use rooms::{Rooms, RoomsError};
pub use router::{DeliveryCursor, RoomRouter, RoutedEvent, SubscriberQueue};
pub use sequencer::{AppendError, Appended, Sequencer, SequencerConfig};
pub use session::{CloseReason, Services, Session, SessionConfig};
pub use shard::ShardId;
pub use store::{Store, StoreError};
