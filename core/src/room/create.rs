//! [`RoomCreation`]: the initial events of a new room.

use bytes::Bytes;
use serde_json::json;

use super::{JoinRule, Membership, PowerLevels, Profile, RoomVersion};
use crate::event::{NewEvent, types};
use crate::ids::{RoomId, UserId};

/// What a new room starts with. [`RoomCreation::events`] turns it into the
/// events to append with `Sequencer::append_all`, so a room appears with its
/// whole initial state or not at all.
#[derive(Clone, Debug)]
pub struct RoomCreation {
    /// The new room's id.
    pub room_id: RoomId,
    /// Who creates it (joined, power level 100).
    pub creator: UserId,
    /// Join rule.
    pub join_rule: JoinRule,
    /// Optional `m.room.name`.
    pub name: Option<String>,
    /// Optional `m.room.topic`.
    pub topic: Option<String>,
    /// Power levels; defaults to the creator at 100.
    pub power_levels: Option<PowerLevels>,
    /// Users invited right away.
    pub invites: Vec<UserId>,
    /// The room version named in the create event.
    pub version: RoomVersion,
    /// Keys laid over the power levels' content before it is sent
    /// (`power_level_content_override`).
    pub power_levels_override: Option<serde_json::Map<String, serde_json::Value>>,
    /// `m.room.canonical_alias` to set, `#alias:server`.
    pub canonical_alias: Option<String>,
    /// `m.room.history_visibility` to set.
    pub history_visibility: Option<String>,
    /// `m.room.guest_access` to set.
    pub guest_access: Option<String>,
    /// More state events `(type, state key, content)`, after the preset's
    /// and before name and topic (`initial_state`).
    pub initial_state: Vec<(String, String, Bytes)>,
    /// The creator's profile, shown in their join event.
    pub creator_profile: Profile,
    /// Invitees' profiles, in the order of `invites` (missing: none).
    pub invite_profiles: Vec<Profile>,
    /// Marks the invites as direct chats.
    pub is_direct: bool,
}

impl RoomCreation {
    /// A room with the defaults: invite-only, no name, creator at 100.
    pub fn new(room_id: RoomId, creator: UserId) -> Self {
        Self {
            room_id,
            creator,
            join_rule: JoinRule::Invite,
            name: None,
            topic: None,
            power_levels: None,
            invites: Vec::new(),
            version: RoomVersion::default(),
            power_levels_override: None,
            canonical_alias: None,
            history_visibility: None,
            guest_access: None,
            initial_state: Vec::new(),
            creator_profile: Profile::default(),
            invite_profiles: Vec::new(),
            is_direct: false,
        }
    }

    fn state(&self, event_type: &str, state_key: &str, content: Bytes) -> NewEvent {
        NewEvent {
            room_id: self.room_id.clone(),
            sender: self.creator.clone(),
            event_type: event_type.into(),
            state_key: Some(state_key.into()),
            content,
            txn: None,
        }
    }

    /// The events in the order the spec gives them for `createRoom`:
    /// create, the creator's join, power levels, canonical alias, join
    /// rules, history visibility, guest access, `initial_state`, name,
    /// topic, invites.
    pub fn events(&self) -> Vec<NewEvent> {
        let json = |v: serde_json::Value| Bytes::from(v.to_string());
        let pl = self
            .power_levels
            .clone()
            .unwrap_or_else(|| PowerLevels::for_new_room(&self.creator));
        let pl_content = match &self.power_levels_override {
            None => pl.to_content(),
            Some(over) => {
                let mut content = match serde_json::from_slice(&pl.to_content()) {
                    Ok(serde_json::Value::Object(o)) => o,
                    _ => serde_json::Map::new(),
                };
                content.extend(over.clone());
                json(serde_json::Value::Object(content))
            }
        };
        let mut out = vec![
            self.state(
                types::CREATE,
                "",
                json(json!({"creator": self.creator, "room_version": self.version.as_str()})),
            ),
            NewEvent {
                content: Membership::Join.content_with(&self.creator_profile, None, false),
                ..NewEvent::membership(
                    &self.room_id,
                    &self.creator,
                    &self.creator,
                    Membership::Join,
                )
            },
            self.state(types::POWER_LEVELS, "", pl_content),
        ];
        if let Some(alias) = &self.canonical_alias {
            out.push(self.state(types::CANONICAL_ALIAS, "", json(json!({"alias": alias}))));
        }
        out.push(self.state(
            types::JOIN_RULES,
            "",
            json(json!({"join_rule": self.join_rule.as_str()})),
        ));
        if let Some(v) = &self.history_visibility {
            out.push(self.state(
                types::HISTORY_VISIBILITY,
                "",
                json(json!({"history_visibility": v})),
            ));
        }
        if let Some(g) = &self.guest_access {
            out.push(self.state(types::GUEST_ACCESS, "", json(json!({"guest_access": g}))));
        }
        for (event_type, state_key, content) in &self.initial_state {
            out.push(self.state(event_type, state_key, content.clone()));
        }
        if let Some(name) = &self.name {
            out.push(self.state(types::NAME, "", json(json!({"name": name}))));
        }
        if let Some(topic) = &self.topic {
            out.push(self.state(types::TOPIC, "", json(json!({"topic": topic}))));
        }
        for (i, user) in self.invites.iter().enumerate() {
            let profile = self.invite_profiles.get(i).cloned().unwrap_or_default();
            out.push(NewEvent {
                content: Membership::Invite.content_with(&profile, None, self.is_direct),
                ..NewEvent::membership(&self.room_id, &self.creator, user, Membership::Invite)
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::ids::EventId;
    use crate::room::{Preset, RoomState, authorize};

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    /// Runs the events through the auth rules as the sequencer would.
    fn sequence(events: Vec<NewEvent>) -> Result<RoomState, crate::room::AuthError> {
        let mut state: Option<RoomState> = None;
        for (i, new) in events.into_iter().enumerate() {
            authorize(state.as_ref(), &new)?;
            let event = Event {
                event_id: EventId::generate(),
                room_id: new.room_id.clone(),
                sender: new.sender.clone(),
                event_type: new.event_type,
                state_key: new.state_key,
                content: new.content,
                origin_server_ts: 0,
                seq: i as u64 + 1,
                pos: i as u64 + 1,
            };
            state
                .get_or_insert_with(|| RoomState::new(new.room_id, new.sender))
                .apply(&event);
        }
        Ok(state.expect("at least the create event"))
    }

    #[test]
    fn a_preset_room_passes_the_auth_rules_in_the_spec_order() {
        let (alice, bob) = (user("@alice:x"), user("@bob:x"));
        let room = RoomId::parse("!r:x").unwrap();
        let preset = Preset::TrustedPrivateChat;
        let mut c = RoomCreation::new(room, alice.clone());
        c.join_rule = preset.join_rule();
        c.power_levels = Some(preset.power_levels(&alice, std::slice::from_ref(&bob)));
        c.power_levels_override = Some(
            serde_json::json!({"events_default": 10})
                .as_object()
                .cloned()
                .unwrap(),
        );
        c.canonical_alias = Some("#r:x".into());
        c.history_visibility = Some(preset.history_visibility().into());
        c.guest_access = Some(preset.guest_access().into());
        c.initial_state = vec![("org.example".into(), "".into(), Bytes::from_static(b"{}"))];
        c.name = Some("Room".into());
        c.invites = vec![bob.clone()];
        c.is_direct = true;
        let events = c.events();
        let order: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            order,
            [
                types::CREATE,
                types::MEMBER,
                types::POWER_LEVELS,
                types::CANONICAL_ALIAS,
                types::JOIN_RULES,
                types::HISTORY_VISIBILITY,
                types::GUEST_ACCESS,
                "org.example",
                types::NAME,
                types::MEMBER,
            ]
        );
        let state = sequence(events).expect("the creator may write every initial event");
        assert_eq!(state.join_rule(), JoinRule::Invite);
        assert_eq!(state.membership(&bob), Some(Membership::Invite));
        let pl = state.power_levels();
        assert_eq!(
            pl.user_level(&bob),
            100,
            "trusted: invitees at the creator's level"
        );
        assert_eq!(
            pl.events_default, 10,
            "the override is laid over the preset"
        );
    }

    #[test]
    fn an_override_that_demotes_the_creator_stops_the_room() {
        let alice = user("@alice:x");
        let mut c = RoomCreation::new(RoomId::parse("!r:x").unwrap(), alice.clone());
        c.power_levels_override = Some(
            serde_json::json!({"users": {"@alice:x": 0}, "state_default": 50})
                .as_object()
                .cloned()
                .unwrap(),
        );
        c.name = Some("Room".into());
        assert!(
            sequence(c.events()).is_err(),
            "the name needs 50 and the override left the creator at 0"
        );
    }
}
