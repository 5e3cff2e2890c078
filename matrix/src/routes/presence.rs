//! `GET`/`PUT /presence/{userId}/status`, through core's
//! [`Ephemeral::set_presence`](axon_core::Ephemeral::set_presence), which
//! the native faces use too.

use axon_core::UserId;
use axon_core::clock::now_ms;
use axon_core::ephemeral::{PresenceState, PresenceView};
use axum::extract::State;
use ruma::api::client::presence::{get_presence, set_presence};
use ruma::presence::PresenceState as RumaPresence;

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::core_user;
use crate::routes::filter::own;
use crate::state::Matrix;

/// Longest status message accepted (as on the native faces).
const MAX_STATUS_MSG_BYTES: usize = 1024;

/// `PUT /presence/{userId}/status`.
pub async fn set(
    State(matrix): State<Matrix>,
    user: User,
    req: set_presence::v3::Request,
) -> Result<set_presence::v3::Response, MatrixError> {
    own(&user, &req.user_id)?;
    if req
        .status_msg
        .as_ref()
        .is_some_and(|m| m.len() > MAX_STATUS_MSG_BYTES)
    {
        return Err(MatrixError::InvalidParam("status_msg is too long".into()));
    }
    matrix
        .services()
        .ephemeral
        .set_presence(&user.user_id, core_state(&req.presence), req.status_msg)
        .await?;
    Ok(set_presence::v3::Response::new())
}

/// `GET /presence/{userId}/status`: anyone's, as on Synapse by default.
pub async fn get(
    State(matrix): State<Matrix>,
    _user: User,
    req: get_presence::v3::Request,
) -> Result<get_presence::v3::Response, MatrixError> {
    let id = core_user(&req.user_id)?;
    if matrix.services().store.user(&id).await?.is_none() {
        return Err(MatrixError::NotFound("unknown user".into()));
    }
    let view = matrix.services().ephemeral.presence.get(&id);
    let mut response = get_presence::v3::Response::new(ruma_state(view.state));
    response.status_msg = view.status_msg.clone();
    response.currently_active = Some(view.currently_active);
    if view.last_active_ms > 0 {
        response.last_active_ago = Some(std::time::Duration::from_millis(
            now_ms().saturating_sub(view.last_active_ms),
        ));
    }
    Ok(response)
}

/// The spec's presence state as core's (custom states count as online).
pub fn core_state(state: &RumaPresence) -> PresenceState {
    match state {
        RumaPresence::Offline => PresenceState::Offline,
        RumaPresence::Unavailable => PresenceState::Unavailable,
        _ => PresenceState::Online,
    }
}

/// Core's presence state as the spec's.
pub fn ruma_state(state: PresenceState) -> RumaPresence {
    match state {
        PresenceState::Online => RumaPresence::Online,
        PresenceState::Unavailable => RumaPresence::Unavailable,
        PresenceState::Offline => RumaPresence::Offline,
    }
}

/// An `m.presence` event of `user` as `/sync` serves it.
pub fn presence_event(user: &UserId, view: &PresenceView) -> serde_json::Value {
    let mut content = serde_json::json!({
        "presence": ruma_state(view.state).as_str(),
        "currently_active": view.currently_active,
    });
    if view.last_active_ms > 0 {
        content["last_active_ago"] = now_ms().saturating_sub(view.last_active_ms).into();
    }
    if let Some(msg) = &view.status_msg {
        content["status_msg"] = msg.as_str().into();
    }
    serde_json::json!({"type": "m.presence", "sender": user, "content": content})
}
