//! Membership states and join rules, as the Matrix spec names them.

use serde::{Deserialize, Serialize};

/// A user's membership in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// In the room: may read and (power permitting) write.
    Join,
    /// Invited: may join even if the room is invite-only.
    Invite,
    /// Left, was kicked, or was unbanned.
    Leave,
    /// Banned: may not join until unbanned.
    Ban,
    /// Asked to be invited to a room whose join rule is `knock`.
    Knock,
}

impl Membership {
    /// The spec's string for this membership.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Invite => "invite",
            Self::Leave => "leave",
            Self::Ban => "ban",
            Self::Knock => "knock",
        }
    }

    /// Parses the spec's string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "join" => Self::Join,
            "invite" => Self::Invite,
            "leave" => Self::Leave,
            "ban" => Self::Ban,
            "knock" => Self::Knock,
            _ => return None,
        })
    }

    /// The `content` of an `m.room.member` event with this membership.
    pub fn content(self) -> bytes::Bytes {
        bytes::Bytes::from(format!(r#"{{"membership":"{}"}}"#, self.as_str()))
    }

    /// The `content` of an `m.room.member` event with this membership, the
    /// member's profile, a reason and the `is_direct` flag of invites.
    pub fn content_with(
        self,
        profile: &Profile,
        reason: Option<&str>,
        is_direct: bool,
    ) -> bytes::Bytes {
        let mut c = serde_json::Map::new();
        c.insert("membership".into(), self.as_str().into());
        if let Some(name) = &profile.displayname {
            c.insert("displayname".into(), name.as_str().into());
        }
        if let Some(url) = &profile.avatar_url {
            c.insert("avatar_url".into(), url.as_str().into());
        }
        if let Some(reason) = reason {
            c.insert("reason".into(), reason.into());
        }
        if is_direct {
            c.insert("is_direct".into(), true.into());
        }
        bytes::Bytes::from(serde_json::Value::Object(c).to_string())
    }
}

/// What a member event shows of a user: display name and avatar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Display name.
    pub displayname: Option<String>,
    /// Avatar URL (`mxc://`).
    pub avatar_url: Option<String>,
}

/// Who may join a room without an invite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinRule {
    /// Anyone may join.
    Public,
    /// Only invited users may join (the spec's default).
    #[default]
    Invite,
    /// Users may knock and then be invited.
    Knock,
    /// Reserved by the spec; treated like `invite`.
    Private,
}

impl JoinRule {
    /// Parses the spec's string; unknown rules (e.g. `restricted`) are treated
    /// as `invite`, which is the safe reading.
    pub fn parse(s: &str) -> Self {
        match s {
            "public" => Self::Public,
            "knock" => Self::Knock,
            "private" => Self::Private,
            _ => Self::Invite,
        }
    }

    /// The spec's string for this rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Invite => "invite",
            Self::Knock => "knock",
            Self::Private => "private",
        }
    }
}
