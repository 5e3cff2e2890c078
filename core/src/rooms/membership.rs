//! Membership changes: join (by id or alias), invite, leave, kick, ban,
//! unban, knock and forget; the rooms a user is joined to; and a profile
//! change carried into every joined room as a new join event. Whether a
//! change is allowed is decided by [`authorize`](crate::room::authorize)
//! when the sequencer takes the event.

use super::{Rooms, RoomsError};
use crate::event::NewEvent;
use crate::ids::{EventId, RoomId, UserId};
use crate::room::{AuthError, Membership, Profile};

impl Rooms {
    /// `sender` sets `target`'s membership in `room`, with an optional
    /// reason. Joins and invites carry the target's profile.
    pub async fn set_membership(
        &self,
        room: &RoomId,
        sender: &UserId,
        target: &UserId,
        membership: Membership,
        reason: Option<&str>,
    ) -> Result<EventId, RoomsError> {
        let profile = match membership {
            Membership::Join | Membership::Invite | Membership::Knock => {
                self.profile(target).await?
            }
            Membership::Leave | Membership::Ban => Profile::default(),
        };
        let event = NewEvent {
            content: membership.content_with(&profile, reason, false),
            ..NewEvent::membership(room, sender, target, membership)
        };
        Ok(self.sequencer.append(event).await?.event_id)
    }

    /// `sender` kicks `target` (a `leave` set by someone else). A banned
    /// user is not kicked: that would lift the ban, which is `unban`'s.
    pub async fn kick(
        &self,
        room: &RoomId,
        sender: &UserId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<EventId, RoomsError> {
        if self.state(room).await?.membership(target) == Some(Membership::Ban) {
            return Err(RoomsError::Forbidden(AuthError::BadMembership(
                "the user is banned; unban them instead",
            )));
        }
        self.set_membership(room, sender, target, Membership::Leave, reason)
            .await
    }

    /// `sender` lifts `target`'s ban (a `leave` over a `ban`).
    pub async fn unban(
        &self,
        room: &RoomId,
        sender: &UserId,
        target: &UserId,
        reason: Option<&str>,
    ) -> Result<EventId, RoomsError> {
        if self.state(room).await?.membership(target) != Some(Membership::Ban) {
            return Err(RoomsError::Forbidden(AuthError::BadMembership(
                "the user is not banned",
            )));
        }
        self.set_membership(room, sender, target, Membership::Leave, reason)
            .await
    }

    /// Joins `user` to the room named by a room id or an alias.
    pub async fn join(
        &self,
        user: &UserId,
        room_or_alias: &str,
        reason: Option<&str>,
    ) -> Result<RoomId, RoomsError> {
        let room = self.room_of(room_or_alias).await?;
        self.set_membership(&room, user, user, Membership::Join, reason)
            .await?;
        Ok(room)
    }

    /// Knocks on the room named by a room id or an alias.
    pub async fn knock(
        &self,
        user: &UserId,
        room_or_alias: &str,
        reason: Option<&str>,
    ) -> Result<RoomId, RoomsError> {
        let room = self.room_of(room_or_alias).await?;
        self.set_membership(&room, user, user, Membership::Knock, reason)
            .await?;
        Ok(room)
    }

    /// The room a room id or an alias names.
    pub async fn room_of(&self, room_or_alias: &str) -> Result<RoomId, RoomsError> {
        if room_or_alias.starts_with('#') {
            return Ok(self.resolve_alias(room_or_alias).await?.room_id);
        }
        RoomId::parse(room_or_alias).map_err(|e| RoomsError::BadRequest(e.to_string()))
    }

    /// Forgets a room the user has left. Axon keeps no per-user view of
    /// past rooms yet, so this checks the precondition and stores nothing.
    pub async fn forget(&self, user: &UserId, room: &RoomId) -> Result<(), RoomsError> {
        let state = self.state(room).await?;
        match state.membership(user) {
            Some(Membership::Join | Membership::Invite | Membership::Knock) => Err(
                RoomsError::BadRequest("leave the room before forgetting it".into()),
            ),
            _ => Ok(()),
        }
    }

    /// The rooms `user` is joined to.
    pub async fn joined_rooms(&self, user: &UserId) -> Result<Vec<RoomId>, RoomsError> {
        Ok(self
            .store
            .rooms_of_user(user)
            .await?
            .into_iter()
            .filter(|(_, m)| *m == Membership::Join)
            .map(|(room, _)| room)
            .collect())
    }

    /// Carries `user`'s current profile into every room they are joined to,
    /// as a new `m.room.member` join event (how the spec propagates a
    /// display name or avatar change). A room that refuses it (the user
    /// left in the meantime) is skipped.
    pub async fn propagate_profile(&self, user: &UserId) -> Result<(), RoomsError> {
        for room in self.joined_rooms(user).await? {
            match self
                .set_membership(&room, user, user, Membership::Join, None)
                .await
            {
                Ok(_) | Err(RoomsError::Forbidden(_) | RoomsError::RoomNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
