//! Rooms: membership, power levels, join rules, the current state, and the
//! authorization rules every write passes through (DESIGN invariant 6).
//!
//! - [`membership`] — the five memberships and the content of member events.
//! - [`power_levels`] — who may send what, with the spec's defaults.
//! - [`state`] — [`RoomState`], the current state of one room, built by
//!   applying state events in `seq` order.
//! - [`auth`] — [`authorize`] for writes and [`can_read`] for reads.
//! - [`create`] — [`RoomCreation`], the initial events of a new room.

pub mod auth;
pub mod create;
pub mod membership;
pub mod power_levels;
pub mod state;

pub use auth::{AuthError, authorize, can_read};
pub use create::RoomCreation;
pub use membership::{JoinRule, Membership};
pub use power_levels::PowerLevels;
pub use state::RoomState;
