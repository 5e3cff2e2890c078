//! Sending: `PUT /rooms/{roomId}/send/{eventType}/{txnId}` (idempotent per
//! device and transaction id, through core's sequencer) and `PUT
//! /rooms/{roomId}/redact/{eventId}/{txnId}`.

use axum::extract::State;
use bytes::Bytes;
use ruma::api::client::message::send_message_event;
use ruma::api::client::redact::redact_event;

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::{core_event, core_room, ruma_event};
use crate::state::Matrix;

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`.
pub async fn message(
    State(matrix): State<Matrix>,
    user: User,
    req: send_message_event::v3::Request,
) -> Result<send_message_event::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let id = matrix
        .rooms()
        .send(
            &user.user_id,
            &user.device_id,
            &room,
            &req.event_type.to_string(),
            None,
            Bytes::from(req.body.json().get().to_owned()),
            Some(req.txn_id.to_string()),
        )
        .await?;
    Ok(send_message_event::v3::Response::new(ruma_event(&id)?))
}

/// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.
pub async fn redact(
    State(matrix): State<Matrix>,
    user: User,
    req: redact_event::v3::Request,
) -> Result<redact_event::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let target = core_event(&req.event_id)?;
    let id = matrix
        .rooms()
        .redact(
            &user.user_id,
            &user.device_id,
            &room,
            &target,
            req.reason.as_deref(),
            req.txn_id.to_string(),
        )
        .await?;
    Ok(redact_event::v3::Response::new(ruma_event(&id)?))
}
