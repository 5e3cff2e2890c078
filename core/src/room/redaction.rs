//! The spec's redaction algorithm: which keys of an event's content survive
//! a redaction, per room version
//! (<https://spec.matrix.org/v1.11/rooms/v11/#redactions>).
//!
//! Axon keeps the original content in the store and strips it when an
//! event is served, so the algorithm runs on reads.

use serde_json::{Map, Value};

use super::RoomVersion;
use crate::event::types;

/// The content of an event of `event_type` after redaction in a room of
/// `version`: only the keys the algorithm preserves.
pub fn redact_content(event_type: &str, content: &Value, version: RoomVersion) -> Value {
    let Some(object) = content.as_object() else {
        return Value::Object(Map::new());
    };
    let v11 = version == RoomVersion::V11;
    let kept: &[&str] = match event_type {
        types::MEMBER => {
            let mut out = keep(object, &["membership", "join_authorised_via_users_server"]);
            // Version 11 keeps the signature of a third-party invite.
            if v11
                && let Some(signed) = object
                    .get("third_party_invite")
                    .and_then(|t| t.get("signed"))
            {
                out.insert(
                    "third_party_invite".into(),
                    serde_json::json!({ "signed": signed }),
                );
            }
            return Value::Object(out);
        }
        // Version 11 keeps the whole create content; earlier ones `creator`.
        types::CREATE if v11 => return content.clone(),
        types::CREATE => &["creator"],
        types::JOIN_RULES => &["join_rule", "allow"],
        types::POWER_LEVELS if v11 => &[
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        types::POWER_LEVELS => &[
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        types::HISTORY_VISIBILITY => &["history_visibility"],
        types::REDACTION if v11 => &["redacts"],
        _ => &[],
    };
    Value::Object(keep(object, kept))
}

fn keep(object: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| Some(((*k).to_owned(), object.get(*k)?.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_lose_everything() {
        let c = json!({"msgtype": "m.text", "body": "secret"});
        assert_eq!(
            redact_content(types::MESSAGE, &c, RoomVersion::V11),
            json!({})
        );
        assert_eq!(
            redact_content("org.example", &json!([1]), RoomVersion::V10),
            json!({})
        );
    }

    #[test]
    fn membership_keeps_membership_and_v11_the_invite_signature() {
        let c = json!({
            "membership": "join",
            "displayname": "Alice",
            "join_authorised_via_users_server": "@a:x",
            "third_party_invite": {"display_name": "a", "signed": {"token": "t"}},
        });
        assert_eq!(
            redact_content(types::MEMBER, &c, RoomVersion::V11),
            json!({
                "membership": "join",
                "join_authorised_via_users_server": "@a:x",
                "third_party_invite": {"signed": {"token": "t"}},
            })
        );
        assert_eq!(
            redact_content(types::MEMBER, &c, RoomVersion::V10),
            json!({"membership": "join", "join_authorised_via_users_server": "@a:x"})
        );
    }

    #[test]
    fn versions_differ_on_create_power_levels_and_redaction() {
        let create = json!({"creator": "@a:x", "room_version": "11", "m.federate": false});
        assert_eq!(
            redact_content(types::CREATE, &create, RoomVersion::V11),
            create
        );
        assert_eq!(
            redact_content(types::CREATE, &create, RoomVersion::V10),
            json!({"creator": "@a:x"})
        );
        let pl = json!({"ban": 50, "invite": 0, "notifications": {"room": 50}});
        assert_eq!(
            redact_content(types::POWER_LEVELS, &pl, RoomVersion::V11),
            json!({"ban": 50, "invite": 0})
        );
        assert_eq!(
            redact_content(types::POWER_LEVELS, &pl, RoomVersion::V10),
            json!({"ban": 50})
        );
        let redaction = json!({"redacts": "$e", "reason": "spam"});
        assert_eq!(
            redact_content(types::REDACTION, &redaction, RoomVersion::V11),
            json!({"redacts": "$e"})
        );
        assert_eq!(
            redact_content(types::REDACTION, &redaction, RoomVersion::V10),
            json!({})
        );
        let rules = json!({"join_rule": "restricted", "allow": [], "x": 1});
        assert_eq!(
            redact_content(types::JOIN_RULES, &rules, RoomVersion::V10),
            json!({"join_rule": "restricted", "allow": []})
        );
    }
}
