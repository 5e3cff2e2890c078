//! Membership: join by id and by id-or-alias, invite, leave, kick, ban,
//! unban, forget, knock, `joined_rooms`, and the member lists. Each change
//! is an `m.room.member` event that core's auth rules accept or refuse.

use std::collections::BTreeMap;

use axon_core::Membership;
use axum::extract::State;
use ruma::OwnedMxcUri;
use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::{
    ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
    join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room, unban_user,
};
use ruma::events::room::member::MembershipState;

use crate::auth::User;
use crate::error::MatrixError;
use crate::events::{position, raw_events};
use crate::ids::{core_room, core_user, ruma_room, ruma_user};
use crate::state::Matrix;

/// `POST /rooms/{roomId}/join`.
pub async fn join_by_id(
    State(matrix): State<Matrix>,
    user: User,
    req: join_room_by_id::v3::Request,
) -> Result<join_room_by_id::v3::Response, MatrixError> {
    let room = matrix
        .rooms()
        .join(&user.user_id, req.room_id.as_str(), req.reason.as_deref())
        .await?;
    Ok(join_room_by_id::v3::Response::new(ruma_room(&room)?))
}

/// `POST /join/{roomIdOrAlias}`.
pub async fn join_by_id_or_alias(
    State(matrix): State<Matrix>,
    user: User,
    req: join_room_by_id_or_alias::v3::Request,
) -> Result<join_room_by_id_or_alias::v3::Response, MatrixError> {
    let room = matrix
        .rooms()
        .join(
            &user.user_id,
            req.room_id_or_alias.as_str(),
            req.reason.as_deref(),
        )
        .await?;
    Ok(join_room_by_id_or_alias::v3::Response::new(ruma_room(
        &room,
    )?))
}

/// `POST /knock/{roomIdOrAlias}`.
pub async fn knock(
    State(matrix): State<Matrix>,
    user: User,
    req: knock_room::v3::Request,
) -> Result<knock_room::v3::Response, MatrixError> {
    let room = matrix
        .rooms()
        .knock(
            &user.user_id,
            req.room_id_or_alias.as_str(),
            req.reason.as_deref(),
        )
        .await?;
    Ok(knock_room::v3::Response::new(ruma_room(&room)?))
}

/// `POST /rooms/{roomId}/invite` (user ids; third-party invites are not offered).
pub async fn invite(
    State(matrix): State<Matrix>,
    user: User,
    req: invite_user::v3::Request,
) -> Result<invite_user::v3::Response, MatrixError> {
    let invite_user::v3::InvitationRecipient::UserId(recipient) = &req.recipient else {
        return Err(MatrixError::Unknown(
            "third-party invites are not supported".into(),
        ));
    };
    let room = core_room(&req.room_id)?;
    let target = core_user(&recipient.user_id)?;
    matrix
        .rooms()
        .set_membership(
            &room,
            &user.user_id,
            &target,
            Membership::Invite,
            recipient.reason.as_deref(),
        )
        .await?;
    Ok(invite_user::v3::Response::new())
}

/// `POST /rooms/{roomId}/leave`.
pub async fn leave(
    State(matrix): State<Matrix>,
    user: User,
    req: leave_room::v3::Request,
) -> Result<leave_room::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    matrix
        .rooms()
        .set_membership(
            &room,
            &user.user_id,
            &user.user_id,
            Membership::Leave,
            req.reason.as_deref(),
        )
        .await?;
    Ok(leave_room::v3::Response::new())
}

/// `POST /rooms/{roomId}/kick`.
pub async fn kick(
    State(matrix): State<Matrix>,
    user: User,
    req: kick_user::v3::Request,
) -> Result<kick_user::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let target = core_user(&req.user_id)?;
    matrix
        .rooms()
        .kick(&room, &user.user_id, &target, req.reason.as_deref())
        .await?;
    Ok(kick_user::v3::Response::new())
}

/// `POST /rooms/{roomId}/ban`.
pub async fn ban(
    State(matrix): State<Matrix>,
    user: User,
    req: ban_user::v3::Request,
) -> Result<ban_user::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let target = core_user(&req.user_id)?;
    matrix
        .rooms()
        .set_membership(
            &room,
            &user.user_id,
            &target,
            Membership::Ban,
            req.reason.as_deref(),
        )
        .await?;
    Ok(ban_user::v3::Response::new())
}

/// `POST /rooms/{roomId}/unban`.
pub async fn unban(
    State(matrix): State<Matrix>,
    user: User,
    req: unban_user::v3::Request,
) -> Result<unban_user::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let target = core_user(&req.user_id)?;
    matrix
        .rooms()
        .unban(&room, &user.user_id, &target, req.reason.as_deref())
        .await?;
    Ok(unban_user::v3::Response::new())
}

/// `POST /rooms/{roomId}/forget`.
pub async fn forget(
    State(matrix): State<Matrix>,
    user: User,
    req: forget_room::v3::Request,
) -> Result<forget_room::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    matrix.rooms().forget(&user.user_id, &room).await?;
    Ok(forget_room::v3::Response::new())
}

/// `GET /joined_rooms`.
pub async fn joined(
    State(matrix): State<Matrix>,
    user: User,
    _: joined_rooms::v3::Request,
) -> Result<joined_rooms::v3::Response, MatrixError> {
    let rooms = matrix.rooms().joined_rooms(&user.user_id).await?;
    let rooms = rooms.iter().map(ruma_room).collect::<Result<_, _>>()?;
    Ok(joined_rooms::v3::Response::new(rooms))
}

/// `GET /rooms/{roomId}/members` with the `membership`, `not_membership`
/// and `at` (a `/messages` token) filters.
pub async fn members(
    State(matrix): State<Matrix>,
    user: User,
    req: get_member_events::v3::Request,
) -> Result<get_member_events::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let events = matrix
        .rooms()
        .members(
            &user.user_id,
            &room,
            req.at.as_deref().map(position).transpose()?,
            req.membership.as_ref().map(membership).transpose()?,
            req.not_membership.as_ref().map(membership).transpose()?,
        )
        .await?;
    Ok(get_member_events::v3::Response::new(raw_events(
        &events, &user,
    )?))
}

/// `GET /rooms/{roomId}/joined_members`.
pub async fn joined_members_of(
    State(matrix): State<Matrix>,
    user: User,
    req: joined_members::v3::Request,
) -> Result<joined_members::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let events = matrix
        .rooms()
        .members(&user.user_id, &room, None, Some(Membership::Join), None)
        .await?;
    let mut joined = BTreeMap::new();
    for served in events {
        let Some((member, _)) = served.event.membership_change() else {
            continue;
        };
        let content: serde_json::Value =
            serde_json::from_slice(&served.event.content).unwrap_or_default();
        let mut entry = joined_members::v3::RoomMember::new();
        entry.display_name = content["displayname"].as_str().map(str::to_owned);
        entry.avatar_url = content["avatar_url"]
            .as_str()
            .map(|u| OwnedMxcUri::from(u.to_owned()));
        joined.insert(ruma_user(&member)?, entry);
    }
    Ok(joined_members::v3::Response::new(joined))
}

fn membership(m: &MembershipState) -> Result<Membership, MatrixError> {
    Membership::parse(m.as_str())
        .ok_or_else(|| MatrixError::InvalidParam(format!("unknown membership {}", m.as_str())))
}
