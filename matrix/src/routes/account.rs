//! The account itself: `GET /account/whoami`, `POST /account/password`
//! and `POST /account/deactivate`, the last two behind user-interactive
//! auth with the current password (`m.login.password`).

use axon_core::UserId;
use axon_core::accounts::AccountsError;
use axum::extract::State;
use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate, whoami};
use ruma::api::client::uiaa::{AuthData, AuthType, UserIdentifier};

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::{ruma_device, ruma_user};
use crate::routes::register::check_password;
use crate::state::Matrix;
use crate::uia;

/// `GET /account/whoami`.
pub async fn whoami(
    _: State<Matrix>,
    user: User,
    _: whoami::v3::Request,
) -> Result<whoami::v3::Response, MatrixError> {
    let mut response = whoami::v3::Response::new(ruma_user(&user.user_id)?, false);
    response.device_id = Some(ruma_device(&user.device_id));
    Ok(response)
}

/// `POST /account/password`. With `logout_devices` (the default) every
/// other device of the user is logged out.
pub async fn change_password(
    State(matrix): State<Matrix>,
    user: Option<User>,
    req: change_password::v3::Request,
) -> Result<change_password::v3::Response, MatrixError> {
    check_password(&req.new_password)?;
    let user_id = reauthenticate(&matrix, user.as_ref(), req.auth).await?;
    matrix
        .accounts()
        .set_password(&user_id, req.new_password)
        .await?;
    if req.logout_devices {
        let keep = user.as_ref().map(|u| &u.device_id);
        matrix.accounts().remove_devices(&user_id, keep).await?;
    }
    Ok(change_password::v3::Response::new())
}

/// `POST /account/deactivate`: no more logins, every device logged out,
/// the user id never reused.
pub async fn deactivate(
    State(matrix): State<Matrix>,
    user: Option<User>,
    req: deactivate::v3::Request,
) -> Result<deactivate::v3::Response, MatrixError> {
    let user_id = reauthenticate(&matrix, user.as_ref(), req.auth).await?;
    matrix.accounts().deactivate(&user_id).await?;
    // No identity server is ever bound, so there is nothing to unbind.
    Ok(deactivate::v3::Response::new(
        ThirdPartyIdRemovalStatus::NoSupport,
    ))
}

/// The `m.login.password` stage: the user (from the access token, or
/// named in the stage when there is none) proves they know the password.
async fn reauthenticate(
    matrix: &Matrix,
    user: Option<&User>,
    auth: Option<AuthData>,
) -> Result<UserId, MatrixError> {
    let auth = uia::require(auth, AuthType::Password)?;
    let AuthData::Password(stage) = &auth else {
        return Err(MatrixError::Internal(
            "uia::require let another stage through".into(),
        ));
    };
    let named = match &stage.identifier {
        UserIdentifier::Matrix(id) => Some(matrix.local_user(&id.user)),
        _ => None,
    };
    let wrong = |why: &str| {
        uia::failed(
            &auth,
            AuthType::Password,
            MatrixError::Forbidden(why.into()),
        )
    };
    let user_id = match (user, named) {
        (Some(user), Some(Ok(named))) if named != user.user_id => {
            return Err(wrong("the identifier names another user"));
        }
        (Some(user), _) => user.user_id.clone(),
        (None, Some(Ok(named))) => named,
        (None, _) => return Err(MatrixError::MissingToken),
    };
    match matrix
        .accounts()
        .verify_password(&user_id, &stage.password)
        .await
    {
        Ok(_) => Ok(user_id),
        Err(AccountsError::BadCredentials) => Err(wrong("Invalid password")),
        Err(e) => Err(e.into()),
    }
}
