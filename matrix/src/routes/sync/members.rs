//! Which member events each device has been sent, for lazy-loaded
//! members: the spec lets a server leave out of `state` the member events
//! a client already has ("redundant" members), unless the filter asks for
//! them with `include_redundant_members`. Without this every incremental
//! `/sync` repeated the member event of every sender in its timeline.
//!
//! Kept in memory per (user, device, room): sender → the member event id
//! sent. A member whose current member event is another id (they changed
//! their name, left, came back) is sent again. An initial or `full_state`
//! sync starts the device over. The table is bounded: past
//! [`MAX_ROOMS_TRACKED`] entries it starts over, which only means some
//! member events are sent again.

use std::collections::HashMap;

use axon_core::{DeviceId, EventId, RoomId, UserId};
use parking_lot::Mutex;

/// Most (user, device, room) entries kept.
const MAX_ROOMS_TRACKED: usize = 200_000;

type Key = (UserId, DeviceId, RoomId);

/// Member events sent, per device and room.
#[derive(Default)]
pub struct SentMembers {
    sent: Mutex<HashMap<Key, HashMap<UserId, EventId>>>,
}

impl SentMembers {
    /// Whether `device` of `user` was sent `member`'s event `current` in
    /// `room`.
    pub fn has(
        &self,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        member: &UserId,
        current: &EventId,
    ) -> bool {
        let key = (user.clone(), device.clone(), room.clone());
        self.sent
            .lock()
            .get(&key)
            .and_then(|m| m.get(member))
            .is_some_and(|sent| sent == current)
    }

    /// Notes that `device` was sent these member events of `room`.
    pub fn record<'a>(
        &self,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        members: impl IntoIterator<Item = (&'a UserId, &'a EventId)>,
    ) {
        let mut sent = self.sent.lock();
        if sent.len() >= MAX_ROOMS_TRACKED {
            sent.clear();
        }
        let entry = sent
            .entry((user.clone(), device.clone(), room.clone()))
            .or_default();
        for (member, event) in members {
            entry.insert(member.clone(), event.clone());
        }
    }

    /// Starts `device` over (an initial or `full_state` sync).
    pub fn forget_device(&self, user: &UserId, device: &DeviceId) {
        self.sent
            .lock()
            .retain(|(u, d, _), _| !(u == user && d == device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_device_and_event() {
        let s = SentMembers::default();
        let (alice, bob) = (
            UserId::parse("@a:x").unwrap(),
            UserId::parse("@b:x").unwrap(),
        );
        let (d1, d2) = (
            DeviceId::parse("D1").unwrap(),
            DeviceId::parse("D2").unwrap(),
        );
        let room = RoomId::parse("!r:x").unwrap();
        let (e1, e2) = (EventId::parse("$1").unwrap(), EventId::parse("$2").unwrap());
        assert!(!s.has(&alice, &d1, &room, &bob, &e1));
        s.record(&alice, &d1, &room, [(&bob, &e1)]);
        assert!(s.has(&alice, &d1, &room, &bob, &e1));
        assert!(!s.has(&alice, &d2, &room, &bob, &e1), "per device");
        assert!(
            !s.has(&alice, &d1, &room, &bob, &e2),
            "a newer member event is sent"
        );
        s.forget_device(&alice, &d1);
        assert!(!s.has(&alice, &d1, &room, &bob, &e1));
    }
}
