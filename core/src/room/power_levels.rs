//! Power levels: the `m.room.power_levels` content with the spec's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// The parsed content of `m.room.power_levels`.
///
/// Missing keys take the spec's defaults. Levels are integers; the spec also
/// allows strings of digits in old rooms, which are accepted when parsing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerLevels {
    /// Level needed to ban (default 50).
    #[serde(default = "fifty", deserialize_with = "level")]
    pub ban: i64,
    /// Level needed to kick (default 50).
    #[serde(default = "fifty", deserialize_with = "level")]
    pub kick: i64,
    /// Level needed to invite (default 0).
    #[serde(default, deserialize_with = "level")]
    pub invite: i64,
    /// Level needed to redact others' events (default 50).
    #[serde(default = "fifty", deserialize_with = "level")]
    pub redact: i64,
    /// Level needed for message events not in `events` (default 0).
    #[serde(default, deserialize_with = "level")]
    pub events_default: i64,
    /// Level needed for state events not in `events` (default 50).
    #[serde(default = "fifty", deserialize_with = "level")]
    pub state_default: i64,
    /// Level of users not in `users` (default 0).
    #[serde(default, deserialize_with = "level")]
    pub users_default: i64,
    /// Per event type levels.
    #[serde(default, deserialize_with = "level_map")]
    pub events: BTreeMap<String, i64>,
    /// Per user levels.
    #[serde(default, deserialize_with = "user_level_map")]
    pub users: BTreeMap<UserId, i64>,
}

fn fifty() -> i64 {
    50
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Level {
    Int(i64),
    Str(String),
}

impl Level {
    fn value<E: serde::de::Error>(self) -> Result<i64, E> {
        match self {
            Level::Int(i) => Ok(i),
            Level::Str(s) => s.trim().parse().map_err(E::custom),
        }
    }
}

fn level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Level::deserialize(d)?.value()
}

fn level_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, i64>, D::Error> {
    BTreeMap::<String, Level>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.value()?)))
        .collect()
}

fn user_level_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<UserId, i64>, D::Error> {
    BTreeMap::<UserId, Level>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.value()?)))
        .collect()
}

impl PowerLevels {
    /// The levels a room has before any `m.room.power_levels` event: the
    /// creator at 100, everyone else at 0, and state open to level 0 (spec).
    pub fn without_event(creator: &UserId) -> Self {
        let mut users = BTreeMap::new();
        users.insert(creator.clone(), 100);
        Self {
            ban: 50,
            kick: 50,
            invite: 0,
            redact: 50,
            events_default: 0,
            state_default: 0,
            users_default: 0,
            events: BTreeMap::new(),
            users,
        }
    }

    /// The default content a new room gets: creator at 100, the spec's
    /// defaults otherwise.
    pub fn for_new_room(creator: &UserId) -> Self {
        Self {
            state_default: 50,
            ..Self::without_event(creator)
        }
    }

    /// Parses `m.room.power_levels` content.
    pub fn from_content(content: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(content)
    }

    /// Serialises as event content.
    pub fn to_content(&self) -> bytes::Bytes {
        // Serialising plain maps and integers cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The level of `user`.
    pub fn user_level(&self, user: &UserId) -> i64 {
        self.users.get(user).copied().unwrap_or(self.users_default)
    }

    /// The level needed to send an event of `event_type`, state or not.
    pub fn required_for(&self, event_type: &str, is_state: bool) -> i64 {
        self.events.get(event_type).copied().unwrap_or(if is_state {
            self.state_default
        } else {
            self.events_default
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_string_levels() {
        let pl = PowerLevels::from_content(br#"{"users":{"@a:x":"75"},"ban":"60"}"#).unwrap();
        assert_eq!(pl.ban, 60);
        assert_eq!(pl.kick, 50);
        assert_eq!(pl.state_default, 50);
        assert_eq!(pl.user_level(&UserId::parse("@a:x").unwrap()), 75);
        assert_eq!(pl.user_level(&UserId::parse("@b:x").unwrap()), 0);
        assert!(PowerLevels::from_content(br#"{"ban":"lots"}"#).is_err());
        assert!(PowerLevels::from_content(br#"{"users":{"nope":1}}"#).is_err());
    }

    #[test]
    fn round_trips_as_content() {
        let a = UserId::parse("@a:x").unwrap();
        let pl = PowerLevels::for_new_room(&a);
        assert_eq!(PowerLevels::from_content(&pl.to_content()).unwrap(), pl);
    }
}
