//! Conversions between core's ids and ruma's: core validates its own, so
//! a failure here is an id one side accepts and the other does not.

use axon_core::{DeviceId, UserId};
use ruma::{OwnedDeviceId, OwnedUserId};

use crate::error::MatrixError;

/// A core user id as ruma's.
pub fn ruma_user(id: &UserId) -> Result<OwnedUserId, MatrixError> {
    OwnedUserId::try_from(id.as_str())
        .map_err(|e| MatrixError::Internal(format!("user id {id} is not valid for ruma: {e}")))
}

/// A core device id as ruma's (any string is one).
pub fn ruma_device(id: &DeviceId) -> OwnedDeviceId {
    OwnedDeviceId::from(id.as_str())
}

/// A device id a client sent, as core's.
pub fn core_device(id: &ruma::DeviceId) -> Result<DeviceId, MatrixError> {
    DeviceId::parse(id.as_str()).map_err(|e| MatrixError::InvalidParam(format!("device_id: {e}")))
}

/// A user id a client sent, as core's.
pub fn core_user(id: &ruma::UserId) -> Result<UserId, MatrixError> {
    UserId::parse(id.as_str()).map_err(|e| MatrixError::InvalidParam(format!("user_id: {e}")))
}

/// A room id a client sent, as core's.
pub fn core_room(id: &ruma::RoomId) -> Result<axon_core::RoomId, MatrixError> {
    axon_core::RoomId::parse(id.as_str())
        .map_err(|e| MatrixError::InvalidParam(format!("room_id: {e}")))
}

/// An event id a client sent, as core's.
pub fn core_event(id: &ruma::EventId) -> Result<axon_core::EventId, MatrixError> {
    axon_core::EventId::parse(id.as_str())
        .map_err(|e| MatrixError::InvalidParam(format!("event_id: {e}")))
}

/// A core room id as ruma's.
pub fn ruma_room(id: &axon_core::RoomId) -> Result<ruma::OwnedRoomId, MatrixError> {
    ruma::OwnedRoomId::try_from(id.as_str())
        .map_err(|e| MatrixError::Internal(format!("room id {id} is not valid for ruma: {e}")))
}

/// A core event id as ruma's.
pub fn ruma_event(id: &axon_core::EventId) -> Result<ruma::OwnedEventId, MatrixError> {
    ruma::OwnedEventId::try_from(id.as_str())
        .map_err(|e| MatrixError::Internal(format!("event id {id} is not valid for ruma: {e}")))
}
