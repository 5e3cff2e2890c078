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

    /// Classifies an event of `room` with `seq`; for an untracked room every
    /// event is a duplicate (the consumer is not subscribed).
    pub fn check(&self, room: &RoomId, seq: u64) -> CursorVerdict {
        self.last
            .get(room)
            .map_or(CursorVerdict::Duplicate, |&last| Self::verdict(last, seq))
    }

    /// [`check`](Self::check), and when the verdict is `Deliver`, records
    /// the delivery ([`advance`](Self::advance)): one lookup.
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

    /// Records that `seq` of `room` was delivered.
    pub fn advance(&mut self, room: &RoomId, seq: u64) {
        if let Some(last) = self.last.get_mut(room) {
            *last = (*last).max(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let r = RoomId::parse("!r:x").unwrap();
        let mut c = DeliveryCursor::new();
        assert_eq!(c.check(&r, 1), CursorVerdict::Duplicate);
        c.track(r.clone(), 3);
        assert_eq!(c.check(&r, 3), CursorVerdict::Duplicate);
        assert_eq!(c.check(&r, 4), CursorVerdict::Deliver);
        assert_eq!(c.check(&r, 7), CursorVerdict::Gap { from: 4, to: 6 });
        c.advance(&r, 6);
        assert_eq!(c.check(&r, 7), CursorVerdict::Deliver);
        c.advance(&r, 2);
        assert_eq!(c.last(&r), Some(6));
        assert_eq!(c.offer(&r, 9), CursorVerdict::Gap { from: 7, to: 8 });
        assert_eq!(c.last(&r), Some(6), "a gap is not delivered");
        assert_eq!(c.offer(&r, 7), CursorVerdict::Deliver);
        assert_eq!(c.offer(&r, 7), CursorVerdict::Duplicate);
        assert_eq!(c.last(&r), Some(7));
        let other = RoomId::parse("!o:x").unwrap();
        assert_eq!(c.offer(&other, 1), CursorVerdict::Duplicate);
    }
}
