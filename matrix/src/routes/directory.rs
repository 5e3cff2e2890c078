//! The room directory: aliases (`/directory/room/{roomAlias}`,
//! `/rooms/{roomId}/aliases`), the public room list (`/publicRooms`) and a
//! room's place in it (`/directory/list/room/{roomId}`).
//!
//! `publicRooms` tokens: `r{roomId}`, the last room of the previous page
//! (the list is in room id order).

use axon_core::RoomId;
use axon_core::rooms::directory::PublicRoomsPage;
use axum::extract::State;
use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::{Visibility, aliases};
use ruma::directory::{PublicRoomsChunk, PublicRoomsChunkInit};
use ruma::room::JoinRuleKind;
use ruma::{OwnedMxcUri, OwnedRoomAliasId, OwnedServerName, UInt};

use crate::auth::{NoAuth, User};
use crate::error::MatrixError;
use crate::ids::{core_room, ruma_room};
use crate::state::Matrix;

/// Rooms on a page of the public list when the client names no limit.
const DEFAULT_LIMIT: usize = 100;
/// Most rooms on one page.
const MAX_LIMIT: usize = 500;

/// `PUT /directory/room/{roomAlias}`.
pub async fn put_alias(
    State(matrix): State<Matrix>,
    user: User,
    req: create_alias::v3::Request,
) -> Result<create_alias::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    match matrix
        .rooms()
        .create_alias(&user.user_id, req.room_alias.as_str(), &room)
        .await
    {
        Ok(()) => Ok(create_alias::v3::Response::new()),
        // The spec answers an existing alias with 409 here.
        Err(axon_core::RoomsError::AliasInUse) => Err(MatrixError::AliasExists),
        Err(e) => Err(e.into()),
    }
}

/// `GET /directory/room/{roomAlias}`.
pub async fn get_alias(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_alias::v3::Request,
) -> Result<get_alias::v3::Response, MatrixError> {
    let record = matrix
        .rooms()
        .resolve_alias(req.room_alias.as_str())
        .await?;
    let server = OwnedServerName::try_from(matrix.rooms().server_name().as_str())
        .map_err(|e| MatrixError::Internal(format!("server name: {e}")))?;
    Ok(get_alias::v3::Response::new(
        ruma_room(&record.room_id)?,
        vec![server],
    ))
}

/// `DELETE /directory/room/{roomAlias}`.
pub async fn delete_alias(
    State(matrix): State<Matrix>,
    user: User,
    req: delete_alias::v3::Request,
) -> Result<delete_alias::v3::Response, MatrixError> {
    matrix
        .rooms()
        .delete_alias(&user.user_id, req.room_alias.as_str())
        .await?;
    Ok(delete_alias::v3::Response::new())
}

/// `GET /rooms/{roomId}/aliases`.
pub async fn room_aliases(
    State(matrix): State<Matrix>,
    user: User,
    req: aliases::v3::Request,
) -> Result<aliases::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let list = matrix.rooms().aliases(&user.user_id, &room).await?;
    let list = list
        .into_iter()
        .filter_map(|a| OwnedRoomAliasId::try_from(a).ok())
        .collect();
    Ok(aliases::v3::Response::new(list))
}

/// `GET /directory/list/room/{roomId}`.
pub async fn visibility(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_room_visibility::v3::Request,
) -> Result<get_room_visibility::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let published = matrix.rooms().is_published(&room).await?;
    Ok(get_room_visibility::v3::Response::new(if published {
        Visibility::Public
    } else {
        Visibility::Private
    }))
}

/// `PUT /directory/list/room/{roomId}`.
pub async fn set_visibility(
    State(matrix): State<Matrix>,
    user: User,
    req: set_room_visibility::v3::Request,
) -> Result<set_room_visibility::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let publish = match req.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        other => {
            return Err(MatrixError::InvalidParam(format!(
                "unknown visibility {}",
                other.as_str()
            )));
        }
    };
    matrix
        .rooms()
        .set_published(&user.user_id, &room, publish)
        .await?;
    Ok(set_room_visibility::v3::Response::new())
}

/// `GET /publicRooms`.
pub async fn public_rooms(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_public_rooms::v3::Request,
) -> Result<get_public_rooms::v3::Response, MatrixError> {
    let page = page(&matrix, req.limit, req.since.as_deref(), None).await?;
    let (chunk, next, total) = render(page)?;
    let mut response = get_public_rooms::v3::Response::new(chunk);
    response.next_batch = next;
    response.total_room_count_estimate = Some(total);
    Ok(response)
}

/// `POST /publicRooms` with `filter.generic_search_term`.
pub async fn public_rooms_filtered(
    State(matrix): State<Matrix>,
    _: User,
    req: get_public_rooms_filtered::v3::Request,
) -> Result<get_public_rooms_filtered::v3::Response, MatrixError> {
    let page = page(
        &matrix,
        req.limit,
        req.since.as_deref(),
        req.filter.generic_search_term.as_deref(),
    )
    .await?;
    let (chunk, next, total) = render(page)?;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    response.chunk = chunk;
    response.next_batch = next;
    response.total_room_count_estimate = Some(total);
    Ok(response)
}

async fn page(
    matrix: &Matrix,
    limit: Option<UInt>,
    since: Option<&str>,
    search: Option<&str>,
) -> Result<PublicRoomsPage, MatrixError> {
    let limit = limit.map_or(DEFAULT_LIMIT, |l| {
        usize::try_from(u64::from(l))
            .unwrap_or(MAX_LIMIT)
            .min(MAX_LIMIT)
    });
    let after = since
        .map(|t| {
            t.strip_prefix('r')
                .and_then(|id| RoomId::parse(id).ok())
                .ok_or_else(|| MatrixError::InvalidParam(format!("unknown token {t:?}")))
        })
        .transpose()?;
    Ok(matrix
        .rooms()
        .public_rooms(after.as_ref(), limit, search)
        .await?)
}

fn render(
    page: PublicRoomsPage,
) -> Result<(Vec<PublicRoomsChunk>, Option<String>, UInt), MatrixError> {
    let mut chunk = Vec::with_capacity(page.rooms.len());
    for room in page.rooms {
        let mut entry: PublicRoomsChunk = PublicRoomsChunkInit {
            num_joined_members: UInt::try_from(room.joined_members).unwrap_or(UInt::MAX),
            room_id: ruma_room(&room.room_id)?,
            world_readable: room.world_readable,
            guest_can_join: room.guest_can_join,
        }
        .into();
        entry.name = room.name;
        entry.topic = room.topic;
        entry.canonical_alias = room
            .canonical_alias
            .and_then(|a| OwnedRoomAliasId::try_from(a).ok());
        entry.avatar_url = room.avatar_url.map(OwnedMxcUri::from);
        entry.join_rule = JoinRuleKind::from(room.join_rule.as_str());
        chunk.push(entry);
    }
    let next = page.next_after.map(|r| format!("r{r}"));
    Ok((chunk, next, UInt::try_from(page.total).unwrap_or(UInt::MAX)))
}
