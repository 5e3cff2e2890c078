//! Registration: `POST /register` behind user-interactive auth
//! (`m.login.dummy` when registration is open, `m.login.registration_token`
//! in token mode), `GET /register/available`, and the registration token
//! validity check.

use axon_core::UserId;
use axon_core::accounts::password::MAX_PASSWORD_BYTES;
use axum::extract::State;
use rand::Rng as _;
use ruma::api::client::account::register::RegistrationKind;
use ruma::api::client::account::{
    check_registration_token_validity, get_username_availability, register,
};
use ruma::api::client::uiaa::{AuthData, AuthType};

use crate::auth::NoAuth;
use crate::config::Registration;
use crate::error::MatrixError;
use crate::ids::{core_device, ruma_device, ruma_user};
use crate::state::Matrix;
use crate::uia;

/// Shortest password accepted for a new account or a password change.
pub const MIN_PASSWORD_BYTES: usize = 8;

/// `POST /register`.
pub async fn register(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: register::v3::Request,
) -> Result<register::v3::Response, MatrixError> {
    let stage = match &matrix.config().registration {
        Registration::Disabled => {
            return Err(MatrixError::Forbidden(
                "Registration is disabled on this server".into(),
            ));
        }
        Registration::Open => AuthType::Dummy,
        Registration::Token(_) => AuthType::RegistrationToken,
    };
    if req.kind == RegistrationKind::Guest {
        return Err(MatrixError::GuestAccessForbidden);
    }
    if req.login_type.is_some() {
        return Err(MatrixError::Unknown(
            "application services are not supported".into(),
        ));
    }
    // Username and password are checked before UIA so a client learns
    // about a taken name before it walks the flow.
    let localpart = match &req.username {
        Some(name) => name.to_lowercase(),
        None => random_localpart(),
    };
    let user_id = available(&matrix, &localpart).await?;
    if let Some(password) = &req.password {
        check_password(password)?;
    }
    let device_id = req.device_id.as_deref().map(core_device).transpose()?;

    let auth = uia::require(req.auth, stage.clone())?;
    if let (AuthData::RegistrationToken(given), Registration::Token(expected)) =
        (&auth, &matrix.config().registration)
        && !uia::secrets_match(&given.token, expected)
    {
        return Err(uia::failed(
            &auth,
            stage,
            MatrixError::Forbidden("Invalid registration token".into()),
        ));
    }

    matrix
        .accounts()
        .create_user(&localpart, req.password, false)
        .await?;
    let mut response = register::v3::Response::new(ruma_user(&user_id)?);
    if req.inhibit_login {
        return Ok(response);
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
    response.device_id = Some(ruma_device(&session.identity.device_id));
    response.access_token = Some(session.access_token.expose().to_owned());
    response.refresh_token = session.refresh_token.map(|t| t.expose().to_owned());
    response.expires_in = session.expires_in_ms.map(std::time::Duration::from_millis);
    Ok(response)
}

/// `GET /register/available?username=`.
pub async fn username_available(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: get_username_availability::v3::Request,
) -> Result<get_username_availability::v3::Response, MatrixError> {
    available(&matrix, &req.username.to_lowercase()).await?;
    Ok(get_username_availability::v3::Response::new(true))
}

/// `GET /v1/register/m.login.registration_token/validity?token=`.
pub async fn registration_token_validity(
    State(matrix): State<Matrix>,
    _: NoAuth,
    req: check_registration_token_validity::v1::Request,
) -> Result<check_registration_token_validity::v1::Response, MatrixError> {
    let valid = match &matrix.config().registration {
        Registration::Token(expected) => uia::secrets_match(&req.token, expected),
        Registration::Open => false,
        Registration::Disabled => {
            return Err(MatrixError::Forbidden(
                "Registration is disabled on this server".into(),
            ));
        }
    };
    Ok(check_registration_token_validity::v1::Response::new(valid))
}

/// The user id for `localpart` if it is valid and free.
async fn available(matrix: &Matrix, localpart: &str) -> Result<UserId, MatrixError> {
    let user_id = UserId::new(localpart, matrix.accounts().server_name()).map_err(|e| {
        MatrixError::InvalidUsername(format!(
            "user names may contain only a-z, 0-9, '.', '_', '=', '-', '/' and '+' ({e})"
        ))
    })?;
    match matrix.accounts().user(&user_id).await {
        Ok(_) => Err(MatrixError::UserInUse),
        Err(axon_core::accounts::AccountsError::NoSuchUser) => Ok(user_id),
        Err(e) => Err(e.into()),
    }
}

/// Refuses passwords too short to be worth hashing, or too long to hash.
pub fn check_password(password: &str) -> Result<(), MatrixError> {
    if password.len() < MIN_PASSWORD_BYTES {
        return Err(MatrixError::WeakPassword(format!(
            "passwords must be at least {MIN_PASSWORD_BYTES} bytes long"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(MatrixError::InvalidParam(format!(
            "passwords may be at most {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    Ok(())
}

/// A localpart for a registration that named none.
fn random_localpart() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect();
    format!("u{tail}")
}
