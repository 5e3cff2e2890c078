//! Sends and redactions. A send is idempotent per (device, transaction id)
//! through the sequencer's transaction records (invariant 4); a redaction
//! of someone else's event needs the room's `redact` level.

use bytes::Bytes;

use super::{Rooms, RoomsError};
use crate::event::{NewEvent, TxnId, types};
use crate::ids::{DeviceId, EventId, RoomId, UserId};
use crate::room::AuthError;

impl Rooms {
    /// Sends a message-like event (`state_key` `None`) or a state event.
    /// With a transaction id, a retry answers with the first send's event.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        sender: &UserId,
        device: &DeviceId,
        room: &RoomId,
        event_type: &str,
        state_key: Option<String>,
        content: Bytes,
        txn_id: Option<String>,
    ) -> Result<EventId, RoomsError> {
        if event_type == types::REDACTION {
            // Its own rule (the redact level) is checked by `redact`.
            return Err(RoomsError::BadRequest(
                "send redactions with the redact endpoint".into(),
            ));
        }
        let event = NewEvent {
            room_id: room.clone(),
            sender: sender.clone(),
            event_type: event_type.to_owned(),
            state_key,
            content,
            txn: txn_id.map(|txn_id| TxnId {
                device_id: device.clone(),
                txn_id,
            }),
        };
        Ok(self.sequencer.append(event).await?.event_id)
    }

    /// Redacts `target`: an `m.room.redaction` with `content.redacts`.
    pub async fn redact(
        &self,
        sender: &UserId,
        device: &DeviceId,
        room: &RoomId,
        target: &EventId,
        reason: Option<&str>,
        txn_id: String,
    ) -> Result<EventId, RoomsError> {
        let state = self.readable(sender, room).await?;
        let original = self
            .store
            .event(target)
            .await?
            .filter(|e| e.room_id == *room)
            .ok_or(RoomsError::EventNotFound)?;
        if original.sender != *sender {
            let pl = state.power_levels();
            let actual = pl.user_level(sender);
            if actual < pl.redact {
                return Err(RoomsError::Forbidden(AuthError::InsufficientPower {
                    action: "redact another user's event",
                    required: pl.redact,
                    actual,
                }));
            }
        }
        let mut content = serde_json::json!({ "redacts": target });
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        let event = NewEvent {
            room_id: room.clone(),
            sender: sender.clone(),
            event_type: types::REDACTION.into(),
            state_key: None,
            content: Bytes::from(content.to_string()),
            txn: Some(TxnId {
                device_id: device.clone(),
                txn_id,
            }),
        };
        Ok(self.sequencer.append(event).await?.event_id)
    }
}
