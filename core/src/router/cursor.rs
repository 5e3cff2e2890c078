//! [`DeliveryCursor`]: the consumer side of invariant 3.
//!
//! A consumer subscribes to a room first, then replays from storage up to the
//! live point, then takes live deliveries. Live deliveries that the replay
//! already covered are duplicates; a live delivery beyond the next `seq`
//! means something was missed (a lag) and the gap must be read from storage.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::ids::RoomId;

/// What to do with an event of a room, given what was delivered before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorVerdict {
    /// The next event: deliver it.
    Deliver,
    /// Already delivered: drop it.
    Duplicate,
    /// Events `from..=to` are missing before this one: read them from storage
    /// first.
    Gap {
        /// First missing `seq`.
        from: u64,
        /// Last missing `seq`.
        to: u64,
    },
}

/// The last delivered `seq` per room.
///
/// Looked up once per delivery, so hashed with foldhash rather than
/// SipHash (which was 2.6 % of the server's CPU at 1,000 subscribers): the
/// keys are rooms this connection subscribed to, not chosen by others.
#[derive(Clone, Debug, Default)]
pub struct DeliveryCursor {
    last: HashMap<RoomId, u64, RandomState>,
}

impl DeliveryCursor {
    /// An empty cursor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking `room` with `seq` as the last delivered (0: nothing yet).
    pub fn track(&mut self, room: RoomId, seq: u64) {
        self.last.insert(room, seq);
    }

    /// Stops tracking `room`.
    pub fn forget(&mut self, room: &RoomId) {
        self.last.remove(room);
    }

    /// The last delivered `seq` of `room`, if tracked.
    pub fn last(&self, room: &RoomId) -> Option<u64> {
        self.last.get(room).copied()
    }

    /// Every tracked room and its last delivered `seq`.
    pub fn positions(&self) -> impl Iterator<Item = (&RoomId, u64)> {
        self.last.iter().map(|(r, s)| (r, *s))
    }

    /// Classifies an event of `room` with `seq` (for an untracked room
    /// every event is a duplicate: the consumer is not subscribed), and when
    /// it is the next one, records it as delivered. Events before a gap are
    /// not recorded: the gap is read and offered first.
    pub fn offer(&mut self, room: &RoomId, seq: u64) -> CursorVerdict {
        let Some(last) = self.last.get_mut(room) else {
            return CursorVerdict::Duplicate;
        };
        let verdict = Self::verdict(*last, seq);
        if verdict == CursorVerdict::Deliver {
            *last = seq;
        }
        verdict
    }

    fn verdict(last: u64, seq: u64) -> CursorVerdict {
        if seq <= last {
            CursorVerdict::Duplicate
        } else if seq == last + 1 {
            CursorVerdict::Deliver
        } else {
            CursorVerdict::Gap {
                from: last + 1,
                to: seq - 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_deliver_in_order_and_record_only_what_they_deliver() {
        let r = RoomId::parse("!r:x").unwrap();
        let mut c = DeliveryCursor::new();
        assert_eq!(c.offer(&r, 1), CursorVerdict::Duplicate, "not tracked");
        c.track(r.clone(), 3);
        assert_eq!(c.offer(&r, 3), CursorVerdict::Duplicate);
        assert_eq!(c.offer(&r, 6), CursorVerdict::Gap { from: 4, to: 5 });
        assert_eq!(c.last(&r), Some(3), "a gap is not delivered");
        assert_eq!(c.offer(&r, 4), CursorVerdict::Deliver);
        assert_eq!(c.offer(&r, 4), CursorVerdict::Duplicate);
        assert_eq!(c.offer(&r, 5), CursorVerdict::Deliver);
        assert_eq!(c.offer(&r, 6), CursorVerdict::Deliver);
        assert_eq!(c.last(&r), Some(6));
        c.forget(&r);
        assert_eq!(c.offer(&r, 7), CursorVerdict::Duplicate, "forgotten");
        assert_eq!(c.last(&r), None);
    }
}
