//! [`RoomCreation`]: the initial events of a new room.

use bytes::Bytes;
use serde_json::json;

use super::{JoinRule, Membership, PowerLevels};
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

    /// The create, creator's join, power levels, join rules, name, topic and
    /// invite events, in the order they must be sequenced.
    pub fn events(&self) -> Vec<NewEvent> {
        let json = |v: serde_json::Value| Bytes::from(v.to_string());
        let pl = self
            .power_levels
            .clone()
            .unwrap_or_else(|| PowerLevels::for_new_room(&self.creator));
        let mut out = vec![
            self.state(
                types::CREATE,
                "",
                json(json!({"creator": self.creator, "room_version": "11"})),
            ),
            NewEvent::membership(
                &self.room_id,
                &self.creator,
                &self.creator,
                Membership::Join,
            ),
            self.state(types::POWER_LEVELS, "", pl.to_content()),
            self.state(
                types::JOIN_RULES,
                "",
                json(json!({"join_rule": self.join_rule.as_str()})),
            ),
        ];
        if let Some(name) = &self.name {
            out.push(self.state(types::NAME, "", json(json!({"name": name}))));
        }
        if let Some(topic) = &self.topic {
            out.push(self.state(types::TOPIC, "", json(json!({"topic": topic}))));
        }
        for user in &self.invites {
            out.push(NewEvent::membership(
                &self.room_id,
                &self.creator,
                user,
                Membership::Invite,
            ));
        }
        out
    }
}
