//! Stored filters: `POST /user/{userId}/filter` and `GET
//! /user/{userId}/filter/{filterId}`.
//!
//! A filter is kept as account data of its user under the private type
//! `io.axon.filter.{id}` (no store of its own: it is per-user JSON, which
//! the account data store already keeps durably). `/sync` hides those
//! types from the account data it shows.

use axon_core::UserId;
use axon_core::store::AccountDataRecord;
use axum::extract::State;
use bytes::Bytes;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use ruma::api::client::filter::{FilterDefinition, create_filter, get_filter};

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::core_user;
use crate::state::Matrix;

/// The account data type prefix of stored filters.
pub const FILTER_TYPE_PREFIX: &str = "io.axon.filter.";

/// `POST /user/{userId}/filter`.
pub async fn create(
    State(matrix): State<Matrix>,
    user: User,
    req: create_filter::v3::Request,
) -> Result<create_filter::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let json = serde_json::to_vec(&req.filter)
        .map_err(|e| MatrixError::Internal(format!("encoding a filter: {e}")))?;
    let id: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    let record = AccountDataRecord {
        room_id: None,
        data_type: format!("{FILTER_TYPE_PREFIX}{id}"),
        content: Bytes::from(json),
    };
    matrix
        .services()
        .store
        .put_account_data(&user.user_id, &record)
        .await?;
    Ok(create_filter::v3::Response::new(id))
}

/// `GET /user/{userId}/filter/{filterId}`.
pub async fn get(
    State(matrix): State<Matrix>,
    user: User,
    req: get_filter::v3::Request,
) -> Result<get_filter::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    stored_filter(&matrix, &user.user_id, &req.filter_id)
        .await?
        .map(get_filter::v3::Response::new)
        .ok_or_else(|| MatrixError::NotFound("no such filter".into()))
}

/// The filter `id` of `user`, if stored.
pub async fn stored_filter(
    matrix: &Matrix,
    user: &UserId,
    id: &str,
) -> Result<Option<FilterDefinition>, MatrixError> {
    let Some(json) = matrix
        .services()
        .store
        .account_data(user, None, &format!("{FILTER_TYPE_PREFIX}{id}"))
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| MatrixError::Internal(format!("a stored filter does not decode: {e}")))
}

/// Only the owner reads and writes their filters and account data.
pub(crate) fn own(user: &User, target: &ruma::UserId) -> Result<(), MatrixError> {
    if core_user(target)? == user.user_id {
        Ok(())
    } else {
        Err(MatrixError::Forbidden(
            "cannot access another user's data".into(),
        ))
    }
}
