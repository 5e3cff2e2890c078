//! [`RoomState`]: the current state of one room.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{JoinRule, Membership, PowerLevels};
use crate::event::{Event, types};
use crate::ids::{EventId, RoomId, UserId};

/// The current state of one room: what authorization needs, plus the id of
/// every current state event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomState {
    room_id: RoomId,
    creator: UserId,
    join_rule: JoinRule,
    power_levels: Option<PowerLevels>,
    members: HashMap<UserId, Membership>,
    current: BTreeMap<(String, String), EventId>,
    head_seq: u64,
}

/// Why stored state events do not form a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// No `m.room.create` event among the state events.
    #[error("room {0} has no create event")]
    MissingCreate(RoomId),
}

#[derive(Deserialize)]
struct MemberContent {
    membership: String,
}

#[derive(Deserialize)]
struct JoinRulesContent {
    join_rule: String,
}

/// Reads the `membership` field of `m.room.member` content.
pub fn parse_membership(content: &[u8]) -> Option<Membership> {
    let c: MemberContent = serde_json::from_slice(content).ok()?;
    Membership::parse(&c.membership)
}

/// Reads the `join_rule` field of `m.room.join_rules` content.
pub(crate) fn parse_join_rule(content: &[u8]) -> Option<JoinRule> {
    let c: JoinRulesContent = serde_json::from_slice(content).ok()?;
    Some(JoinRule::parse(&c.join_rule))
}

impl RoomState {
    /// The state right after the create event (seq 1) of a room.
    pub fn new(room_id: RoomId, creator: UserId) -> Self {
        Self {
            room_id,
            creator,
            join_rule: JoinRule::default(),
            power_levels: None,
            members: HashMap::new(),
            current: BTreeMap::new(),
            head_seq: 0,
        }
    }

    /// Rebuilds the state from the room's current state events (any order)
    /// and the `seq` of its latest event.
    pub fn from_state_events<'a>(
        room_id: &RoomId,
        events: impl IntoIterator<Item = &'a Event>,
        head_seq: u64,
    ) -> Result<Self, StateError> {
        let events: Vec<&Event> = events.into_iter().collect();
        let create = events
            .iter()
            .find(|e| e.event_type == types::CREATE)
            .ok_or_else(|| StateError::MissingCreate(room_id.clone()))?;
        let mut state = Self::new(room_id.clone(), create.sender.clone());
        for e in events {
            state.apply(e);
        }
        state.head_seq = head_seq;
        Ok(state)
    }

    /// Applies an accepted event. State events change the state; every event
    /// advances the head.
    pub fn apply(&mut self, event: &Event) {
        self.head_seq = self.head_seq.max(event.seq);
        let Some(key) = &event.state_key else { return };
        match event.event_type.as_str() {
            types::MEMBER => {
                if let Some((user, m)) = event.membership_change() {
                    self.members.insert(user, m);
                }
            }
            types::POWER_LEVELS => {
                if let Ok(pl) = PowerLevels::from_content(&event.content) {
                    self.power_levels = Some(pl);
                }
            }
            types::JOIN_RULES => {
                if let Some(rule) = parse_join_rule(&event.content) {
                    self.join_rule = rule;
                }
            }
            _ => {}
        }
        self.current.insert(
            (event.event_type.clone(), key.clone()),
            event.event_id.clone(),
        );
    }

    /// The room's id.
    pub fn room_id(&self) -> &RoomId {
        &self.room_id
    }

    /// Who created the room.
    pub fn creator(&self) -> &UserId {
        &self.creator
    }

    /// The current join rule.
    pub fn join_rule(&self) -> JoinRule {
        self.join_rule
    }

    /// The `seq` of the latest event.
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// A user's membership, if they ever had one.
    pub fn membership(&self, user: &UserId) -> Option<Membership> {
        self.members.get(user).copied()
    }

    /// Whether `user` is joined.
    pub fn is_joined(&self, user: &UserId) -> bool {
        self.membership(user) == Some(Membership::Join)
    }

    /// Users with the given membership.
    pub fn members_with(&self, m: Membership) -> impl Iterator<Item = &UserId> {
        self.members
            .iter()
            .filter(move |(_, v)| **v == m)
            .map(|(k, _)| k)
    }

    /// How many users have a membership of any kind.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether anyone has ever been a member (the creator's first join is
    /// special: it needs no invite).
    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// The power levels in force: the event's, or the spec's defaults for a
    /// room without one.
    pub fn power_levels(&self) -> Cow<'_, PowerLevels> {
        match &self.power_levels {
            Some(pl) => Cow::Borrowed(pl),
            None => Cow::Owned(PowerLevels::without_event(&self.creator)),
        }
    }

    /// The id of the current state event for `(event_type, state_key)`.
    pub fn state_event_id(&self, event_type: &str, state_key: &str) -> Option<&EventId> {
        self.current
            .get(&(event_type.to_owned(), state_key.to_owned()))
    }

    /// Every current state event id, keyed by (type, state key).
    pub fn current_state(&self) -> &BTreeMap<(String, String), EventId> {
        &self.current
    }
}
