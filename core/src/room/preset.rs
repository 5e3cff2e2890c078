//! [`Preset`]: the spec's `createRoom` presets, as the join rule, history
//! visibility, guest access and power levels each one gives a new room.

use super::{JoinRule, PowerLevels};
use crate::event::types;
use crate::ids::UserId;

/// A `createRoom` preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Invite-only, history shared with members, guests may join.
    PrivateChat,
    /// Like `PrivateChat`, and every invitee gets the creator's power level.
    TrustedPrivateChat,
    /// Anyone may join, history shared, no guests.
    PublicChat,
}

impl Preset {
    /// The preset the spec implies when a request names none: public rooms
    /// in the directory are public chats, everything else private chats.
    pub fn default_for(published: bool) -> Self {
        if published {
            Self::PublicChat
        } else {
            Self::PrivateChat
        }
    }

    /// The `join_rule` the preset sets.
    pub fn join_rule(self) -> JoinRule {
        match self {
            Self::PublicChat => JoinRule::Public,
            Self::PrivateChat | Self::TrustedPrivateChat => JoinRule::Invite,
        }
    }

    /// The `history_visibility` the preset sets (the spec: `shared` for all).
    pub fn history_visibility(self) -> &'static str {
        "shared"
    }

    /// The `guest_access` the preset sets.
    pub fn guest_access(self) -> &'static str {
        match self {
            Self::PublicChat => "forbidden",
            Self::PrivateChat | Self::TrustedPrivateChat => "can_join",
        }
    }

    /// The power levels of a room created by `creator` with this preset,
    /// inviting `invites`: the creator at 100, room-wide settings guarded at
    /// 50 or 100 as Synapse and the spec's examples have them.
    pub fn power_levels(self, creator: &UserId, invites: &[UserId]) -> PowerLevels {
        let mut pl = PowerLevels::for_new_room(creator);
        for (event_type, level) in [
            (types::POWER_LEVELS, 100),
            (types::HISTORY_VISIBILITY, 100),
            ("m.room.tombstone", 100),
            ("m.room.server_acl", 100),
            ("m.room.encryption", 100),
            (types::NAME, 50),
            (types::AVATAR, 50),
            (types::CANONICAL_ALIAS, 50),
            (types::TOPIC, 50),
        ] {
            pl.events.insert(event_type.to_owned(), level);
        }
        if self == Self::TrustedPrivateChat {
            let creator_level = pl.user_level(creator);
            for user in invites {
                pl.users.insert(user.clone(), creator_level);
            }
        }
        pl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn presets_set_join_rules_guests_and_levels() {
        let (a, b) = (user("@a:x"), user("@b:x"));
        assert_eq!(Preset::PublicChat.join_rule(), JoinRule::Public);
        assert_eq!(Preset::PrivateChat.join_rule(), JoinRule::Invite);
        assert_eq!(Preset::TrustedPrivateChat.join_rule(), JoinRule::Invite);
        assert_eq!(Preset::PublicChat.guest_access(), "forbidden");
        assert_eq!(Preset::PrivateChat.guest_access(), "can_join");
        assert_eq!(Preset::default_for(true), Preset::PublicChat);
        assert_eq!(Preset::default_for(false), Preset::PrivateChat);

        let private = Preset::PrivateChat.power_levels(&a, std::slice::from_ref(&b));
        assert_eq!(private.user_level(&a), 100);
        assert_eq!(private.user_level(&b), 0);
        assert_eq!(private.required_for(types::POWER_LEVELS, true), 100);
        assert_eq!(private.required_for(types::NAME, true), 50);
        assert_eq!(private.required_for(types::MESSAGE, false), 0);
        let trusted = Preset::TrustedPrivateChat.power_levels(&a, std::slice::from_ref(&b));
        assert_eq!(
            trusted.user_level(&b),
            100,
            "invitees share the creator's level"
        );
    }
}
