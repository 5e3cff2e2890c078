//! Sessions: `GET /login` (the flows), `POST /login` with
//! `m.login.password`, `POST /refresh`, `POST /logout`, `POST /logout/all`.

use std::time::Duration;

use axum::extract::State;
use ruma::api::client::session::get_login_types::v3::{LoginType, PasswordLoginType};
use ruma::api::client::session::login::v3::LoginInfo;
use ruma::api::client::session::{get_login_types, login, logout, logout_all, refresh_token};
use ruma::api::client::uiaa::UserIdentifier;

use crate::auth::{NoAuth, User};
use crate::error::MatrixError;
use crate::ids::{core_device, ruma_device, ruma_user};
use crate::state::Matrix;

/// `GET /login`: passwords only, for now.
pub async fn login_types(
    _: State<Matrix>,
    _: NoAuth,
    _: get_login_types::v3::Request,
) -> Result<get_login_types::v3::Response, MatrixError> {
    Ok(get_login_types::v3::Response::new(vec![
        LoginType::Password(PasswordLoginType::new()),
    ]))
}

/// `POST /login` with `m.login.password`; the user is named by an
/// `m.id.user` identifier or by the legacy `user` field.
#[allow(deprecated)] // `user`: the pre-r0.4 field, still sent by old clients and bots.
pub async fn login(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: login::v3::Request,
) -> Result<login::v3::Response, MatrixError> {
    let LoginInfo::Password(password) = &req.login_info else {
        return Err(MatrixError::Unknown(format!(
            "unsupported login type {}",
            req.login_info.login_type()
        )));
    };
    let user = match (&password.identifier, &password.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user.as_str(),
        (Some(_), _) => {
            return Err(MatrixError::Unknown(
                "only m.id.user identifiers are supported".into(),
            ));
        }
        (None, Some(user)) => user.as_str(),
        (None, None) => return Err(MatrixError::BadJson("missing identifier".into())),
    };
    // A malformed or foreign user id is, to the client, a wrong login.
    let user_id = matrix
        .local_user(user)
        .map_err(|_| MatrixError::Forbidden("Invalid username or password".into()))?;
    matrix
        .accounts()
        .verify_password(&user_id, &password.password)
        .await?;

    let device_id = req.device_id.as_deref().map(core_device).transpose()?;
    if let Some(device) = &device_id {
        // A login on an existing device replaces that device's tokens.
        matrix.accounts().remove_device(&user_id, device).await?;
    }
    let session = matrix
        .accounts()
        .open_session_with(
            &user_id,
            device_id,
            req.initial_device_display_name,
            req.refresh_token,
        )
        .await?;
    let mut response = login::v3::Response::new(
        ruma_user(&user_id)?,
        session.access_token.expose().to_owned(),
        ruma_device(&session.identity.device_id),
    );
    response.refresh_token = session.refresh_token.map(|t| t.expose().to_owned());
    response.expires_in = session.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

/// `POST /refresh`: a new access token (and refresh token) for a refresh
/// token, which stops working.
pub async fn refresh(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: refresh_token::v3::Request,
) -> Result<refresh_token::v3::Response, MatrixError> {
    // An unknown or used refresh token is `M_UNKNOWN_TOKEN` without
    // `soft_logout`: the client must log in again.
    let session = matrix.accounts().refresh(&req.refresh_token).await?;
    let mut response = refresh_token::v3::Response::new(session.access_token.expose().to_owned());
    response.refresh_token = session.refresh_token.map(|t| t.expose().to_owned());
    response.expires_in_ms = session.expires_in_ms.map(Duration::from_millis);
    Ok(response)
}

/// `POST /logout`: this device and its tokens go.
pub async fn logout(
    State(matrix): State<Matrix>,
    user: User,
    _: logout::v3::Request,
) -> Result<logout::v3::Response, MatrixError> {
    matrix
        .accounts()
        .remove_device(&user.user_id, &user.device_id)
        .await?;
    // A token whose device was never recorded still stops working.
    matrix.accounts().logout(&user.access_token).await?;
    Ok(logout::v3::Response::new())
}

/// `POST /logout/all`: every device of the user and their tokens go.
pub async fn logout_all(
    State(matrix): State<Matrix>,
    user: User,
    _: logout_all::v3::Request,
) -> Result<logout_all::v3::Response, MatrixError> {
    matrix
        .accounts()
        .remove_devices(&user.user_id, None)
        .await?;
    Ok(logout_all::v3::Response::new())
}
