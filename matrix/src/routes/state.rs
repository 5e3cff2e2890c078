//! Room state: `GET /rooms/{roomId}/state`, and `GET`/`PUT
//! /rooms/{roomId}/state/{eventType}/{stateKey}` (the state key may be
//! empty, with or without the trailing slash; see [`crate::router`]).

use axum::extract::State;
use bytes::Bytes;
use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};

use crate::auth::User;
use crate::error::MatrixError;
use crate::events::{client_event, raw, raw_events};
use crate::ids::{core_room, ruma_event};
use crate::state::Matrix;

/// `GET /rooms/{roomId}/state`.
pub async fn all(
    State(matrix): State<Matrix>,
    user: User,
    req: get_state_events::v3::Request,
) -> Result<get_state_events::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let events = matrix.rooms().state_events(&user.user_id, &room).await?;
    Ok(get_state_events::v3::Response::new(raw_events(
        &events, &user,
    )?))
}

/// `GET /rooms/{roomId}/state/{eventType}/{stateKey}`: the content, or the
/// whole event with `format=event`.
pub async fn one(
    State(matrix): State<Matrix>,
    user: User,
    req: get_state_event_for_key::v3::Request,
) -> Result<get_state_event_for_key::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let served = matrix
        .rooms()
        .state_event(
            &user.user_id,
            &room,
            &req.event_type.to_string(),
            &req.state_key,
        )
        .await?;
    let event = client_event(&served, &user);
    let body = match req.format {
        get_state_event_for_key::v3::StateEventFormat::Event => event,
        _ => event["content"].clone(),
    };
    let raw: ruma::serde::Raw<()> = raw(&body)?;
    Ok(get_state_event_for_key::v3::Response::new(raw.into_json()))
}

/// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn put(
    State(matrix): State<Matrix>,
    user: User,
    req: send_state_event::v3::Request,
) -> Result<send_state_event::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let id = matrix
        .rooms()
        .send(
            &user.user_id,
            &user.device_id,
            &room,
            &req.event_type.to_string(),
            Some(req.state_key),
            Bytes::from(req.body.json().get().to_owned()),
            None,
        )
        .await?;
    Ok(send_state_event::v3::Response::new(ruma_event(&id)?))
}
