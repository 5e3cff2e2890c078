//! Rooms: membership, power levels, join rules, the current state, and the
//! authorization rules every write passes through (DESIGN invariant 6).
//!
//! - [`membership`] — the five memberships and the content of member events.
//! - [`power_levels`] — who may send what, with the spec's defaults.
//! - [`state`] — [`RoomState`], the current state of one room, built by
//!   applying state events in `seq` order.
//! - [`auth`] — [`authorize`] for writes and [`can_read`] for reads.
//! - [`create`] — [`RoomCreation`], the initial events of a new room.
//! - [`preset`] — [`Preset`], the `createRoom` presets.
//! - [`version`] — [`RoomVersion`], the room versions Axon supports.
//! - [`redaction`] — [`redact_content`], the spec's redaction algorithm.

pub mod auth;
pub mod create;
pub mod membership;
pub mod power_levels;
pub mod preset;
pub mod redaction;
pub mod state;
pub mod version;

pub use auth::{AuthError, authorize, can_read};
pub use create::RoomCreation;
pub use membership::{JoinRule, Membership, Profile};
pub use power_levels::PowerLevels;
pub use preset::Preset;
pub use redaction::redact_content;
pub use state::RoomState;
pub use version::RoomVersion;
