//! Core's events as the spec's `ClientEvent` JSON, and the pagination
//! tokens of `/messages` and `/context`.
//!
//! A served event has `event_id`, `type`, `sender`, `origin_server_ts`,
//! `content`, `state_key` for state events, `room_id` and `unsigned` with
//! `age`, `transaction_id` when the viewer is the device that sent it, and
//! `redacted_because` for a redacted event. `unsigned` also
//! carries `io.axon.seq`, the event's `seq` in the room, which is the
//! position native clients see.
//!
//! Tokens: `t{seq}` is the position just after the event with that `seq`
//! (`t0` is before the first event); see [`axon_core::rooms::read`].

use axon_core::clock::now_ms;
use axon_core::event::{Event, types};
use axon_core::rooms::ServedEvent;
use ruma::serde::Raw;
use serde_json::{Map, Value, json};

use crate::auth::User;
use crate::error::MatrixError;

/// The event as `ClientEvent` JSON, as `viewer` sees it.
pub fn client_event(served: &ServedEvent, viewer: &User) -> Value {
    let mut out = event_json(&served.event);
    if let Some(txn) = &served.txn
        && served.event.sender == viewer.user_id
        && txn.device_id == viewer.device_id
    {
        out["unsigned"]["transaction_id"] = txn.txn_id.as_str().into();
    }
    if let Some(redaction) = &served.redacted_because {
        out["unsigned"]["redacted_because"] = event_json(redaction);
    }
    out
}

fn event_json(e: &Event) -> Value {
    let content: Value =
        serde_json::from_slice(&e.content).unwrap_or_else(|_| Value::Object(Map::new()));
    let mut out = json!({
        "event_id": e.event_id,
        "type": e.event_type,
        "sender": e.sender,
        "origin_server_ts": e.origin_server_ts,
        "room_id": e.room_id,
        "unsigned": {
            "age": now_ms().saturating_sub(e.origin_server_ts),
            "io.axon.seq": e.seq,
        },
    });
    if let Some(key) = &e.state_key {
        out["state_key"] = key.as_str().into();
    }
    // Clients written before room version 11 read `redacts` at the top.
    if e.event_type == types::REDACTION
        && let Some(redacts) = content.get("redacts")
    {
        out["redacts"] = redacts.clone();
    }
    out["content"] = content;
    out
}

/// Any JSON as a ruma `Raw<T>` (the event types ruma names in responses).
pub fn raw<T>(value: &Value) -> Result<Raw<T>, MatrixError> {
    serde_json::value::to_raw_value(value)
        .map(Raw::from_json)
        .map_err(|e| MatrixError::Internal(format!("encoding an event: {e}")))
}

/// Served events as `Raw` client events, as `viewer` sees them.
pub fn raw_events<T>(events: &[ServedEvent], viewer: &User) -> Result<Vec<Raw<T>>, MatrixError> {
    events
        .iter()
        .map(|e| raw(&client_event(e, viewer)))
        .collect()
}

/// The token of a position.
pub fn token(position: u64) -> String {
    format!("t{position}")
}

/// The position of a token a client sent.
pub fn position(token: &str) -> Result<u64, MatrixError> {
    token
        .strip_prefix('t')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| MatrixError::InvalidParam(format!("unknown pagination token {token:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_invalid() {
        assert_eq!(position(&token(42)).ok(), Some(42));
        assert!(position("s42").is_err());
        assert!(position("t-1").is_err());
        assert!(position("").is_err());
    }
}
