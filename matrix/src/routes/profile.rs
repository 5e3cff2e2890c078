//! Profiles: `GET /profile/{userId}`, and `GET`/`PUT` of its `displayname`
//! and `avatar_url`. Stored with the account in core; anyone may read a
//! profile, only its owner may change it. A change is carried into every
//! room the user is joined to as a new `m.room.member` event (core's
//! `Rooms::propagate_profile`).

use axon_core::store::UserRecord;
use axum::extract::State;
use ruma::api::client::profile::{
    get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
};
use ruma::profile::UserProfile;
use ruma::{OwnedMxcUri, UserId as RumaUserId};
use serde_json::Value;

use crate::auth::{NoAuth, User};
use crate::error::MatrixError;
use crate::ids::core_user;
use crate::state::Matrix;

/// Longest display name, in bytes (Synapse's limit).
pub const MAX_DISPLAY_NAME_BYTES: usize = 256;

/// `GET /profile/{userId}`.
pub async fn profile(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_profile::v3::Request,
) -> Result<get_profile::v3::Response, MatrixError> {
    let user = existing(&matrix, &req.user_id).await?;
    let mut data = UserProfile::new();
    if let Some(name) = user.display_name {
        data.set("displayname".into(), Value::String(name));
    }
    if let Some(url) = user.avatar_url {
        data.set("avatar_url".into(), Value::String(url));
    }
    let mut response = get_profile::v3::Response::new();
    response.data = data;
    Ok(response)
}

/// `GET /profile/{userId}/displayname`.
pub async fn display_name(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_display_name::v3::Request,
) -> Result<get_display_name::v3::Response, MatrixError> {
    let user = existing(&matrix, &req.user_id).await?;
    Ok(get_display_name::v3::Response::new(user.display_name))
}

/// `PUT /profile/{userId}/displayname`; an absent or empty name removes it.
pub async fn set_display_name(
    State(matrix): State<Matrix>,
    user: User,
    req: set_display_name::v3::Request,
) -> Result<set_display_name::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let name = req.displayname.filter(|n| !n.is_empty());
    if name
        .as_ref()
        .is_some_and(|n| n.len() > MAX_DISPLAY_NAME_BYTES)
    {
        return Err(MatrixError::InvalidParam(format!(
            "display names may be at most {MAX_DISPLAY_NAME_BYTES} bytes long"
        )));
    }
    matrix
        .accounts()
        .set_display_name(&user.user_id, name)
        .await?;
    matrix.rooms().propagate_profile(&user.user_id).await?;
    Ok(set_display_name::v3::Response::new())
}

/// `GET /profile/{userId}/avatar_url`.
pub async fn avatar_url(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_avatar_url::v3::Request,
) -> Result<get_avatar_url::v3::Response, MatrixError> {
    let user = existing(&matrix, &req.user_id).await?;
    Ok(get_avatar_url::v3::Response::new(
        user.avatar_url.map(OwnedMxcUri::from),
    ))
}

/// `PUT /profile/{userId}/avatar_url`; an absent URL removes it.
pub async fn set_avatar_url(
    State(matrix): State<Matrix>,
    user: User,
    req: set_avatar_url::v3::Request,
) -> Result<set_avatar_url::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    let url = match req.avatar_url {
        Some(url) if url.as_str().is_empty() => None,
        Some(url) => {
            if !url.is_valid() {
                return Err(MatrixError::InvalidParam(
                    "avatar_url must be an mxc:// URI".into(),
                ));
            }
            Some(url.to_string())
        }
        None => None,
    };
    matrix.accounts().set_avatar_url(&user.user_id, url).await?;
    matrix.rooms().propagate_profile(&user.user_id).await?;
    Ok(set_avatar_url::v3::Response::new())
}

/// The account behind a profile path; deactivated accounts have none.
async fn existing(matrix: &Matrix, user_id: &RumaUserId) -> Result<UserRecord, MatrixError> {
    let not_found = || MatrixError::NotFound("Profile was not found".into());
    let id = core_user(user_id).map_err(|_| not_found())?;
    match matrix.accounts().user(&id).await {
        Ok(user) if !user.deactivated => Ok(user),
        Ok(_) | Err(axon_core::accounts::AccountsError::NoSuchUser) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Only the owner changes a profile.
fn own(user: &User, target: &RumaUserId) -> Result<(), MatrixError> {
    if user.user_id.as_str() == target.as_str() {
        Ok(())
    } else {
        Err(MatrixError::Forbidden(
            "you may only change your own profile".into(),
        ))
    }
}
