//! [`TypingRegistry`]: who is typing in which room, until when.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::ids::{RoomId, UserId};

/// Longest a typing notice lasts without being renewed, whatever the client
/// asks for.
pub const MAX_TYPING_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a typing notice lasts when the client gives no timeout.
pub const DEFAULT_TYPING_TIMEOUT: Duration = Duration::from_secs(30);

/// The users typing in each room, each with the moment their notice ends.
#[derive(Default)]
pub struct TypingRegistry {
    rooms: Mutex<HashMap<RoomId, Vec<(UserId, Instant)>>>,
}

/// A room whose set of typing users changed, and the set now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypingChange {
    /// The room.
    pub room: RoomId,
    /// Who types there now, in the order they started.
    pub users: Vec<UserId>,
}

impl TypingRegistry {
    /// Records that `user` started (for `timeout`, capped at
    /// [`MAX_TYPING_TIMEOUT`]; zero means [`DEFAULT_TYPING_TIMEOUT`]) or
    /// stopped typing in `room`. Returns the new set when it changed; a
    /// renewed notice changes nothing anyone needs to hear about.
    pub fn set(
        &self,
        room: &RoomId,
        user: &UserId,
        typing: bool,
        timeout: Duration,
        now: Instant,
    ) -> Option<TypingChange> {
        let mut rooms = self.rooms.lock();
        let users = rooms.entry(room.clone()).or_default();
        let at = users.iter().position(|(u, _)| u == user);
        let changed = match (typing, at) {
            (true, Some(i)) => {
                users[i].1 = now + effective(timeout);
                false
            }
            (true, None) => {
                users.push((user.clone(), now + effective(timeout)));
                true
            }
            (false, Some(i)) => {
                users.remove(i);
                true
            }
            (false, None) => false,
        };
        let change = changed.then(|| TypingChange {
            room: room.clone(),
            users: users.iter().map(|(u, _)| u.clone()).collect(),
        });
        if users.is_empty() {
            rooms.remove(room);
        }
        change
    }

    /// Who types in `room` now.
    pub fn typing_in(&self, room: &RoomId) -> Vec<UserId> {
        self.rooms
            .lock()
            .get(room)
            .map(|users| users.iter().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default()
    }

    /// Ends every notice whose time is up at `now`; returns the rooms whose
    /// set changed.
    pub fn expire(&self, now: Instant) -> Vec<TypingChange> {
        let mut rooms = self.rooms.lock();
        let mut changes = Vec::new();
        rooms.retain(|room, users| {
            let before = users.len();
            users.retain(|(_, until)| *until > now);
            if users.len() != before {
                changes.push(TypingChange {
                    room: room.clone(),
                    users: users.iter().map(|(u, _)| u.clone()).collect(),
                });
            }
            !users.is_empty()
        });
        changes
    }
}

fn effective(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        DEFAULT_TYPING_TIMEOUT
    } else {
        timeout.min(MAX_TYPING_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (RoomId, UserId, UserId) {
        (
            RoomId::parse("!r:x").unwrap(),
            UserId::parse("@a:x").unwrap(),
            UserId::parse("@b:x").unwrap(),
        )
    }

    #[test]
    fn start_renew_and_stop() {
        let t = TypingRegistry::default();
        let (room, a, b) = ids();
        let now = Instant::now();
        let secs = Duration::from_secs(10);
        let started = t.set(&room, &a, true, secs, now).expect("a change");
        assert_eq!(started.users, vec![a.clone()]);
        assert_eq!(t.set(&room, &a, true, secs, now), None, "a renewal");
        let both = t.set(&room, &b, true, secs, now).expect("a change");
        assert_eq!(both.users, vec![a.clone(), b.clone()]);
        let stopped = t.set(&room, &a, false, secs, now).expect("a change");
        assert_eq!(stopped.users, vec![b.clone()]);
        assert_eq!(t.set(&room, &a, false, secs, now), None, "already stopped");
        assert_eq!(t.typing_in(&room), vec![b]);
    }

    #[test]
    fn notices_expire_and_timeouts_are_capped() {
        let t = TypingRegistry::default();
        let (room, a, b) = ids();
        let now = Instant::now();
        t.set(&room, &a, true, Duration::from_secs(5), now);
        t.set(&room, &b, true, Duration::from_secs(3600), now);
        assert!(t.expire(now + Duration::from_secs(4)).is_empty());
        let changes = t.expire(now + Duration::from_secs(6));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].users, vec![b.clone()]);
        let changes = t.expire(now + MAX_TYPING_TIMEOUT + Duration::from_secs(1));
        assert_eq!(changes[0].users, Vec::<UserId>::new());
        assert!(t.typing_in(&room).is_empty());
    }
}
