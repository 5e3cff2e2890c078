//! [`Rooms`]: what a face asks of rooms beyond appending one event —
//! creating a room from a preset, membership changes with profiles, the
//! alias directory and the public room list, reads that check membership,
//! sends and redactions. Every rule is decided here or in
//! [`room::authorize`](crate::room::authorize) (DESIGN invariant 6), so the
//! Matrix adapter only translates.
//!
//! - [`create`] — [`CreateRoom`]: `createRoom` with presets and options.
//! - [`membership`] — join (by id or alias), invite, leave, kick, ban,
//!   unban, knock, forget, joined rooms, profile propagation.
//! - [`directory`] — aliases and the public room directory.
//! - [`read`] — state, single events, pages of the timeline, context,
//!   members; redacted content is stripped here ([`ServedEvent`]).
//! - [`sync`] — what Matrix `/sync` reads beyond that: rooms left (up to
//!   the leave), invitees' stripped state, unread counts.
//! - [`write`] — sends and redactions.
//! - [`filter`] — [`EventFilter`]: which events a page keeps.

pub mod create;
pub mod directory;
pub mod filter;
pub mod membership;
pub mod read;
pub mod sync;
pub mod write;

use std::sync::Arc;

use crate::event::types;
use crate::ids::{RoomId, ServerName, UserId};
use crate::room::{AuthError, Profile, RoomState, RoomVersion, can_read};
use crate::sequencer::{AppendError, Sequencer};
use crate::session::Services;
use crate::store::{Store, StoreError};

pub use create::CreateRoom;
pub use filter::EventFilter;
pub use read::{Page, PageRange, ServedEvent};

/// Why a room operation failed. Each variant is a case a client sees.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// No such room (or alias target).
    #[error("room not found")]
    RoomNotFound,
    /// No such event in a room the user may read.
    #[error("event not found")]
    EventNotFound,
    /// No such alias.
    #[error("alias not found")]
    AliasNotFound,
    /// The alias is taken.
    #[error("room alias already taken")]
    AliasInUse,
    /// The alias is malformed or not on this server.
    #[error("{0}")]
    InvalidAlias(String),
    /// The room's rules refuse the request.
    #[error(transparent)]
    Forbidden(AuthError),
    /// Not allowed, for a reason outside the room's auth rules.
    #[error("{0}")]
    NotAllowed(String),
    /// The room version is not one Axon supports.
    #[error("room version {0} is not supported")]
    UnsupportedRoomVersion(String),
    /// A request that makes no sense (a malformed event, a bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The sequencer or store is unavailable.
    #[error("{0}")]
    Unavailable(String),
}

impl From<AppendError> for RoomsError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Forbidden(AuthError::RoomNotFound) => Self::RoomNotFound,
            AppendError::Forbidden(AuthError::InvalidContent(what)) => {
                Self::BadRequest(format!("invalid content for {what}"))
            }
            AppendError::Forbidden(e) => Self::Forbidden(e),
            AppendError::Invalid(e) => Self::BadRequest(e.to_string()),
            e @ (AppendError::MixedRooms
            | AppendError::Unavailable(_)
            | AppendError::ShuttingDown) => Self::Unavailable(e.to_string()),
        }
    }
}

impl From<StoreError> for RoomsError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The room operations of every face. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    sequencer: Sequencer,
    store: Arc<dyn Store>,
    server_name: ServerName,
    /// Unread counts as of a room head, so that `/sync` counts only the
    /// events since (see [`Rooms::unread_count`]).
    unread: Arc<sync::UnreadCache>,
    /// Where receipts changed (the unread counts' receipt reads are
    /// skipped while a room's receipts stay put).
    ephemeral: Arc<crate::Ephemeral>,
}

impl Rooms {
    /// Rooms over the core services.
    pub fn new(services: &Services) -> Self {
        Self {
            sequencer: services.sequencer.clone(),
            store: Arc::clone(&services.store),
            server_name: services.accounts.server_name().clone(),
            unread: Arc::default(),
            ephemeral: Arc::clone(&services.ephemeral),
        }
    }

    /// The server's name (the part after `:` in room ids and aliases).
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// The room's state as committed; [`RoomsError::RoomNotFound`] if none.
    pub async fn state(&self, room: &RoomId) -> Result<Arc<RoomState>, RoomsError> {
        self.sequencer
            .room_state(room)
            .await?
            .ok_or(RoomsError::RoomNotFound)
    }

    /// The room's state if `user` may read the room (invariant 6).
    pub async fn readable(
        &self,
        user: &UserId,
        room: &RoomId,
    ) -> Result<Arc<RoomState>, RoomsError> {
        let state = self.state(room).await?;
        if can_read(&state, user) {
            Ok(state)
        } else {
            Err(RoomsError::Forbidden(AuthError::NotJoined(user.clone())))
        }
    }

    /// The room's version, from its create event.
    pub async fn version(&self, room: &RoomId) -> Result<RoomVersion, RoomsError> {
        Ok(self
            .store
            .state_event(room, types::CREATE, "")
            .await?
            .map_or_else(RoomVersion::default, |e| {
                RoomVersion::of_create_content(&e.content)
            }))
    }

    /// A user's profile as member events show it (none for unknown users).
    async fn profile(&self, user: &UserId) -> Result<Profile, RoomsError> {
        Ok(match self.store.user(user).await? {
            Some(u) => Profile {
                displayname: u.display_name,
                avatar_url: u.avatar_url,
            },
            None => Profile::default(),
        })
    }
}
