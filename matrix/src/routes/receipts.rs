//! Receipts and read markers: `POST
//! /rooms/{roomId}/receipt/{receiptType}/{eventId}` and `POST
//! /rooms/{roomId}/read_markers`.
//!
//! `m.read` and `m.read.private` are receipts (core's receipt store, then
//! [`Ephemeral::announce_receipt`](axon_core::Ephemeral::announce_receipt),
//! which keeps private ones from everyone but their owner); `m.fully_read`
//! is room account data of that type with `{"event_id": ...}`, as the spec
//! has it.

use axon_core::clock::now_ms;
use axon_core::store::Receipt;
use axon_core::{EventId, RoomId};
use axum::extract::State;
use ruma::api::client::read_marker::set_read_marker;
use ruma::api::client::receipt::create_receipt::{self, v3::ReceiptType};
use serde_json::json;

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::{core_event, core_room};
use crate::routes::account_data;
use crate::state::Matrix;

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`.
pub async fn receipt(
    State(matrix): State<Matrix>,
    user: User,
    req: create_receipt::v3::Request,
) -> Result<create_receipt::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let event = core_event(&req.event_id)?;
    let thread = req.thread.as_str().map(str::to_owned);
    match req.receipt_type {
        ReceiptType::FullyRead => fully_read(&matrix, &user, &room, &event).await?,
        ReceiptType::Read => put(&matrix, &user, &room, &event, "m.read", thread).await?,
        ReceiptType::ReadPrivate => {
            put(&matrix, &user, &room, &event, "m.read.private", thread).await?;
        }
        other => {
            return Err(MatrixError::InvalidParam(format!(
                "unknown receipt type {other}"
            )));
        }
    }
    Ok(create_receipt::v3::Response::new())
}

/// `POST /rooms/{roomId}/read_markers`.
pub async fn read_markers(
    State(matrix): State<Matrix>,
    user: User,
    req: set_read_marker::v3::Request,
) -> Result<set_read_marker::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    if let Some(id) = &req.fully_read {
        fully_read(&matrix, &user, &room, &core_event(id)?).await?;
    }
    if let Some(id) = &req.read_receipt {
        put(&matrix, &user, &room, &core_event(id)?, "m.read", None).await?;
    }
    if let Some(id) = &req.private_read_receipt {
        put(
            &matrix,
            &user,
            &room,
            &core_event(id)?,
            "m.read.private",
            None,
        )
        .await?;
    }
    Ok(set_read_marker::v3::Response::new())
}

/// Stores and announces a receipt on an event the user may read.
async fn put(
    matrix: &Matrix,
    user: &User,
    room: &RoomId,
    event: &EventId,
    receipt_type: &str,
    thread_id: Option<String>,
) -> Result<(), MatrixError> {
    matrix.rooms().event(&user.user_id, room, event).await?;
    let receipt = Receipt {
        room_id: room.clone(),
        user_id: user.user_id.clone(),
        receipt_type: receipt_type.to_owned(),
        thread_id,
        event_id: event.clone(),
        ts: now_ms(),
    };
    matrix.services().store.put_receipt(&receipt).await?;
    matrix.services().ephemeral.announce_receipt(&receipt);
    Ok(())
}

/// The `m.fully_read` marker: room account data, on an event the user may read.
async fn fully_read(
    matrix: &Matrix,
    user: &User,
    room: &RoomId,
    event: &EventId,
) -> Result<(), MatrixError> {
    matrix.rooms().event(&user.user_id, room, event).await?;
    let content = serde_json::value::to_raw_value(&json!({ "event_id": event }))
        .map_err(|e| MatrixError::Internal(format!("encoding a read marker: {e}")))?;
    account_data::put(matrix, &user.user_id, Some(room), "m.fully_read", &content).await
}
