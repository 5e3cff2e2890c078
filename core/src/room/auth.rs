//! Authorization of writes and reads, checked once in core for every face
//! (DESIGN invariant 6).
//!
//! The rules follow the Matrix authorization rules for the parts Axon has:
//! membership transitions, join rules and power levels. Without federation
//! there is no event graph, so the check is against the room's current state
//! as the sequencer holds it, at the moment the event is sequenced.

use super::state::{parse_join_rule, parse_membership};
use super::{JoinRule, Membership, PowerLevels, RoomState};
use crate::event::{NewEvent, types};
use crate::ids::UserId;

/// Why a write is refused. Each variant is a real, user-visible case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The room does not exist.
    #[error("room not found")]
    RoomNotFound,
    /// A create event for a room that already exists.
    #[error("room already exists")]
    RoomExists,
    /// The sender is not joined to the room.
    #[error("{0} is not joined to this room")]
    NotJoined(UserId),
    /// The user is banned from the room.
    #[error("{0} is banned from this room")]
    Banned(UserId),
    /// The room needs an invite to join.
    #[error("this room requires an invite to join")]
    InviteRequired,
    /// The sender's power level is too low.
    #[error("power level {actual} is below the {required} required to {action}")]
    InsufficientPower {
        /// What was attempted.
        action: &'static str,
        /// Level required.
        required: i64,
        /// Sender's level.
        actual: i64,
    },
    /// A membership change the rules do not allow.
    #[error("{0}")]
    BadMembership(&'static str),
    /// State content core must interpret is malformed.
    #[error("invalid content for {0}")]
    InvalidContent(&'static str),
}

/// Checks whether `ev` may be appended to a room in `state` (`None`: the room
/// does not exist yet).
pub fn authorize(state: Option<&RoomState>, ev: &NewEvent) -> Result<(), AuthError> {
    if ev.event_type == types::CREATE {
        if state.is_some() {
            return Err(AuthError::RoomExists);
        }
        if ev.state_key.as_deref() != Some("") {
            return Err(AuthError::InvalidContent(types::CREATE));
        }
        return Ok(());
    }
    let state = state.ok_or(AuthError::RoomNotFound)?;
    let pl = state.power_levels();
    match (ev.event_type.as_str(), ev.state_key.as_deref()) {
        (types::MEMBER, Some(key)) => authorize_member(state, &pl, ev, key),
        (types::MEMBER, None) => Err(AuthError::InvalidContent(types::MEMBER)),
        (event_type, state_key) => {
            if !state.is_joined(&ev.sender) {
                return Err(AuthError::NotJoined(ev.sender.clone()));
            }
            let is_state = state_key.is_some();
            require(
                &pl,
                &ev.sender,
                pl.required_for(event_type, is_state),
                "send this event",
            )?;
            // A state key that is a user id may only be set by that user (spec rule).
            if let Some(key) = state_key
                && key.starts_with('@')
                && key != ev.sender.as_str()
            {
                return Err(AuthError::BadMembership(
                    "a state key that is a user id may only be set by that user",
                ));
            }
            match event_type {
                types::POWER_LEVELS if is_state => authorize_power_levels(&pl, ev),
                types::JOIN_RULES if is_state => parse_join_rule(&ev.content)
                    .map(|_| ())
                    .ok_or(AuthError::InvalidContent(types::JOIN_RULES)),
                _ => Ok(()),
            }
        }
    }
}

/// Whether `user` may read the room's timeline and state.
///
/// Axon uses the `shared` history visibility for members: a joined user reads
/// the whole timeline. Users who are not joined read nothing.
pub fn can_read(state: &RoomState, user: &UserId) -> bool {
    state.is_joined(user)
}

fn require(
    pl: &PowerLevels,
    user: &UserId,
    required: i64,
    action: &'static str,
) -> Result<(), AuthError> {
    let actual = pl.user_level(user);
    if actual < required {
        return Err(AuthError::InsufficientPower {
            action,
            required,
            actual,
        });
    }
    Ok(())
}

fn authorize_member(
    state: &RoomState,
    pl: &PowerLevels,
    ev: &NewEvent,
    key: &str,
) -> Result<(), AuthError> {
    let target = UserId::parse(key).map_err(|_| AuthError::InvalidContent(types::MEMBER))?;
    let new = parse_membership(&ev.content).ok_or(AuthError::InvalidContent(types::MEMBER))?;
    let current = state.membership(&target);
    let sender = &ev.sender;
    let acting_on_self = *sender == target;
    let outranks = || pl.user_level(sender) > pl.user_level(&target);
    match new {
        Membership::Join => {
            if !acting_on_self {
                return Err(AuthError::BadMembership(
                    "a user can only join for themselves",
                ));
            }
            if current == Some(Membership::Ban) {
                return Err(AuthError::Banned(target));
            }
            // The creator's first join follows the create event directly.
            if target == *state.creator() && !state.has_members() {
                return Ok(());
            }
            match (current, state.join_rule()) {
                (Some(Membership::Join | Membership::Invite), _) | (_, JoinRule::Public) => Ok(()),
                _ => Err(AuthError::InviteRequired),
            }
        }
        Membership::Invite => {
            if !state.is_joined(sender) {
                return Err(AuthError::NotJoined(sender.clone()));
            }
            match current {
                Some(Membership::Ban) => Err(AuthError::Banned(target)),
                Some(Membership::Join) => {
                    Err(AuthError::BadMembership("the user is already joined"))
                }
                _ => require(pl, sender, pl.invite, "invite"),
            }
        }
        Membership::Leave if acting_on_self => match current {
            Some(Membership::Join | Membership::Invite | Membership::Knock) => Ok(()),
            Some(Membership::Ban) => Err(AuthError::Banned(target)),
            _ => Err(AuthError::BadMembership("the user is not in the room")),
        },
        Membership::Leave => {
            if !state.is_joined(sender) {
                return Err(AuthError::NotJoined(sender.clone()));
            }
            let (action, level) = if current == Some(Membership::Ban) {
                ("unban", pl.ban)
            } else {
                ("kick", pl.kick)
            };
            require(pl, sender, level, action)?;
            if !outranks() {
                return Err(AuthError::BadMembership(
                    "the target's power level is not below yours",
                ));
            }
            match current {
                None | Some(Membership::Leave) => {
                    Err(AuthError::BadMembership("the user is not in the room"))
                }
                _ => Ok(()),
            }
        }
        Membership::Ban => {
            if !state.is_joined(sender) {
                return Err(AuthError::NotJoined(sender.clone()));
            }
            require(pl, sender, pl.ban, "ban")?;
            if !outranks() {
                return Err(AuthError::BadMembership(
                    "the target's power level is not below yours",
                ));
            }
            Ok(())
        }
        Membership::Knock => {
            if !acting_on_self {
                return Err(AuthError::BadMembership(
                    "a user can only knock for themselves",
                ));
            }
            if state.join_rule() != JoinRule::Knock {
                return Err(AuthError::BadMembership(
                    "this room does not allow knocking",
                ));
            }
            match current {
                Some(Membership::Ban) => Err(AuthError::Banned(target)),
                Some(Membership::Join) => {
                    Err(AuthError::BadMembership("the user is already joined"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The spec's rules for changing power levels: the sender may only touch
/// levels at or below their own, and may not change users at or above them
/// (except themselves).
fn authorize_power_levels(old: &PowerLevels, ev: &NewEvent) -> Result<(), AuthError> {
    let new = PowerLevels::from_content(&ev.content)
        .map_err(|_| AuthError::InvalidContent(types::POWER_LEVELS))?;
    let mine = old.user_level(&ev.sender);
    let too_high = AuthError::BadMembership("cannot set a power level above your own");
    let scalars = [
        (old.ban, new.ban),
        (old.kick, new.kick),
        (old.invite, new.invite),
        (old.redact, new.redact),
        (old.events_default, new.events_default),
        (old.state_default, new.state_default),
        (old.users_default, new.users_default),
    ];
    for (before, after) in scalars {
        if before != after && (before > mine || after > mine) {
            return Err(too_high);
        }
    }
    let keys = old.events.keys().chain(new.events.keys());
    for k in keys {
        let (before, after) = (old.events.get(k), new.events.get(k));
        if before != after
            && (before.is_some_and(|v| *v > mine) || after.is_some_and(|v| *v > mine))
        {
            return Err(too_high);
        }
    }
    for user in old.users.keys().chain(new.users.keys()) {
        let (before, after) = (old.users.get(user), new.users.get(user));
        if before == after {
            continue;
        }
        if after.is_some_and(|v| *v > mine) {
            return Err(too_high);
        }
        if user != &ev.sender && before.is_some_and(|v| *v >= mine) {
            return Err(AuthError::BadMembership(
                "cannot change the level of a user at or above your own",
            ));
        }
    }
    Ok(())
}
