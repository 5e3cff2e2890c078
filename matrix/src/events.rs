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
    events.iter().map(|e| raw_event(e, viewer)).collect()
}

/// One served event as a `Raw` client event, as `viewer` sees it: the same
/// JSON as [`client_event`], written straight from the event with its
/// content copied as it is stored, rather than through a `Value` tree
/// (a `/sync` under load spent a tenth of its time building and
/// re-serialising those). Redacted events, redactions and content that is
/// not a JSON object take the general path.
pub fn raw_event<T>(served: &ServedEvent, viewer: &User) -> Result<Raw<T>, MatrixError> {
    #[derive(serde::Serialize)]
    struct Unsigned<'a> {
        age: u64,
        #[serde(rename = "io.axon.seq")]
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        transaction_id: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct Plain<'a> {
        event_id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        sender: &'a str,
        origin_server_ts: u64,
        room_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        state_key: Option<&'a str>,
        content: &'a serde_json::value::RawValue,
        unsigned: Unsigned<'a>,
    }
    let e = &served.event;
    let content = (served.redacted_because.is_none() && e.event_type != types::REDACTION)
        .then(|| serde_json::from_slice::<&serde_json::value::RawValue>(&e.content).ok())
        .flatten()
        .filter(|c| c.get().starts_with('{'));
    let Some(content) = content else {
        return raw(&client_event(served, viewer));
    };
    let transaction_id = served
        .txn
        .as_ref()
        .filter(|t| e.sender == viewer.user_id && t.device_id == viewer.device_id)
        .map(|t| t.txn_id.as_str());
    let plain = Plain {
        event_id: e.event_id.as_str(),
        event_type: &e.event_type,
        sender: e.sender.as_str(),
        origin_server_ts: e.origin_server_ts,
        room_id: e.room_id.as_str(),
        state_key: e.state_key.as_deref(),
        content,
        unsigned: Unsigned {
            age: now_ms().saturating_sub(e.origin_server_ts),
            seq: e.seq,
            transaction_id,
        },
    };
    serde_json::value::to_raw_value(&plain)
        .map(Raw::from_json)
        .map_err(|e| MatrixError::Internal(format!("encoding an event: {e}")))
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

    fn viewer(user: &str, device: &str) -> User {
        User {
            user_id: axon_core::UserId::parse(user).unwrap(),
            device_id: axon_core::DeviceId::parse(device).unwrap(),
            access_token: String::new(),
        }
    }

    fn served(content: &str, state_key: Option<&str>, txn: Option<(&str, &str)>) -> ServedEvent {
        ServedEvent {
            event: Event {
                event_id: axon_core::EventId::parse("$e1").unwrap(),
                room_id: axon_core::RoomId::parse("!r:x").unwrap(),
                sender: axon_core::UserId::parse("@a:x").unwrap(),
                event_type: "m.room.message".into(),
                state_key: state_key.map(str::to_owned),
                content: bytes::Bytes::copy_from_slice(content.as_bytes()),
                origin_server_ts: 1,
                seq: 7,
                pos: 9,
            },
            redacted_because: None,
            txn: txn.map(|(d, t)| axon_core::event::TxnId {
                device_id: axon_core::DeviceId::parse(d).unwrap(),
                txn_id: t.into(),
            }),
        }
    }

    /// The direct writer and the `Value` path give the same JSON, but for
    /// `age`, which moves with the clock.
    #[test]
    fn fast_event_json_matches_the_general_path() {
        let cases = [
            served(r#"{"body":"hi","n":[1,{"x":null}]}"#, None, None),
            served(r#"{"membership":"join"}"#, Some("@a:x"), None),
            served(r#"{"body":"mine"}"#, None, Some(("DEV", "txn1"))),
            served(r#"{"body":"mine"}"#, None, Some(("OTHER", "txn1"))),
            served("not json", None, None),
            served("[1,2]", None, None),
        ];
        let me = viewer("@a:x", "DEV");
        for case in &cases {
            let fast: Raw<Value> = raw_event(case, &me).unwrap();
            let mut fast: Value = serde_json::from_str(fast.json().get()).unwrap();
            let mut slow = client_event(case, &me);
            fast["unsigned"]["age"] = 0.into();
            slow["unsigned"]["age"] = 0.into();
            assert_eq!(fast, slow, "{:?}", case.event.content);
        }
    }

    #[test]
    fn tokens_round_trip_and_junk_is_invalid() {
        assert_eq!(position(&token(42)).ok(), Some(42));
        assert!(position("s42").is_err());
        assert!(position("t-1").is_err());
        assert!(position("").is_err());
    }
}
