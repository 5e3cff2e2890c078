//! Account data: `GET`/`PUT /user/{userId}/account_data/{type}` and
//! `/user/{userId}/rooms/{roomId}/account_data/{type}`, in core's
//! account data store. Every write wakes the user's `/sync`
//! ([`Ephemeral::account_data_changed`](axon_core::Ephemeral::account_data_changed)).

use axon_core::store::AccountDataRecord;
use axon_core::{RoomId, UserId};
use axum::extract::State;
use bytes::Bytes;
use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::error::MatrixError;
use crate::events::raw;
use crate::ids::core_room;
use crate::routes::filter::{FILTER_TYPE_PREFIX, own};
use crate::state::Matrix;

/// `PUT /user/{userId}/account_data/{type}`.
pub async fn set_global(
    State(matrix): State<Matrix>,
    user: User,
    req: set_global_account_data::v3::Request,
) -> Result<set_global_account_data::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    put(
        &matrix,
        &user.user_id,
        None,
        &req.event_type.to_string(),
        req.data.json(),
    )
    .await?;
    Ok(set_global_account_data::v3::Response::new())
}

/// `GET /user/{userId}/account_data/{type}`.
pub async fn get_global(
    State(matrix): State<Matrix>,
    user: User,
    req: get_global_account_data::v3::Request,
) -> Result<get_global_account_data::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let content = get(&matrix, &user.user_id, None, &req.event_type.to_string()).await?;
    Ok(get_global_account_data::v3::Response::new(raw(&content)?))
}

/// `PUT /user/{userId}/rooms/{roomId}/account_data/{type}`.
pub async fn set_room(
    State(matrix): State<Matrix>,
    user: User,
    req: set_room_account_data::v3::Request,
) -> Result<set_room_account_data::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let room = core_room(&req.room_id)?;
    put(
        &matrix,
        &user.user_id,
        Some(&room),
        &req.event_type.to_string(),
        req.data.json(),
    )
    .await?;
    Ok(set_room_account_data::v3::Response::new())
}

/// `GET /user/{userId}/rooms/{roomId}/account_data/{type}`.
pub async fn get_room(
    State(matrix): State<Matrix>,
    user: User,
    req: get_room_account_data::v3::Request,
) -> Result<get_room_account_data::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let room = core_room(&req.room_id)?;
    let content = get(
        &matrix,
        &user.user_id,
        Some(&room),
        &req.event_type.to_string(),
    )
    .await?;
    Ok(get_room_account_data::v3::Response::new(raw(&content)?))
}

/// Stores `content` (a JSON object) and wakes the user's `/sync`.
pub(crate) async fn put(
    matrix: &Matrix,
    user: &UserId,
    room: Option<&RoomId>,
    data_type: &str,
    content: &RawValue,
) -> Result<(), MatrixError> {
    if data_type.starts_with(FILTER_TYPE_PREFIX) {
        // Stored filters live under this type and never change once made.
        return Err(MatrixError::Forbidden(format!(
            "account data of type {FILTER_TYPE_PREFIX}* is kept by the server"
        )));
    }
    if !content.get().trim_start().starts_with('{') {
        return Err(MatrixError::BadJson(
            "account data must be a JSON object".into(),
        ));
    }
    let record = AccountDataRecord {
        room_id: room.cloned(),
        data_type: data_type.to_owned(),
        content: Bytes::from(content.get().to_owned()),
    };
    matrix
        .services()
        .store
        .put_account_data(user, &record)
        .await?;
    matrix.services().ephemeral.account_data_changed(user, room);
    Ok(())
}

async fn get(
    matrix: &Matrix,
    user: &UserId,
    room: Option<&RoomId>,
    data_type: &str,
) -> Result<serde_json::Value, MatrixError> {
    let bytes = matrix
        .services()
        .store
        .account_data(user, room, data_type)
        .await?
        .ok_or_else(|| MatrixError::NotFound("no account data of that type".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| MatrixError::Internal(format!("stored account data does not decode: {e}")))
}
