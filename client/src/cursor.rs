//! [`ResumeCursor`]: the last delivered `seq` of every subscribed room, and
//! the rule that turns what arrives (live, replayed, from a reconnect, from
//! history) into one stream per room in `seq` order with no gap and no
//! duplicate.
//!
//! Sans-IO: it says which events to deliver and which gap to fetch; the
//! connection task does the I/O. The server already delivers without gaps
//! (invariant 3), so holding and filling is the client's second line of
//! defence, not its normal path.

use std::collections::{BTreeMap, HashMap};

use crate::event::Event;

/// Most events asked for in one gap-filling history request.
const MAX_FILL: u64 = 500;

/// A gap to fetch: events of `room_id` with `seq` in `after + 1 ..= after + limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fill {
    pub room_id: String,
    pub after: u64,
    pub limit: u32,
}

#[derive(Debug, Default)]
struct Room {
    /// Last delivered `seq`; `None` until the first `Subscribed` of a room
    /// subscribed without a position.
    last: Option<u64>,
    /// Events that arrived ahead of a gap (or before the position is
    /// known), by `seq`.
    held: BTreeMap<u64, Event>,
    /// A gap-filling request is out.
    filling: bool,
    /// A subscription (or resume) is under way and its `Subscribed` has not
    /// arrived: events are held, but a gap is not fetched yet, because the
    /// replay that fills it may still be coming. Over QUIC, live events
    /// travel on lane streams and can overtake the replay and `Subscribed`
    /// on the control stream; holding them until `Subscribed { head }`
    /// (then dropping `seq <= head`) is what the protocol prescribes, and it
    /// keeps a gap fill from racing (or, if it failed, skipping) the replay.
    joining: bool,
}

/// Per-room delivery positions.
#[derive(Debug, Default)]
pub(crate) struct ResumeCursor {
    rooms: HashMap<String, Room>,
}

impl ResumeCursor {
    /// Starts tracking `room_id`: from `since` when given, else from the
    /// position the server reports in `Subscribed`. A room already tracked
    /// keeps its position unless `since` is given.
    pub fn track(&mut self, room_id: &str, since: Option<u64>) {
        let room = self.rooms.entry(room_id.to_owned()).or_default();
        room.joining = true;
        if let Some(since) = since {
            room.last = Some(since);
            room.held.retain(|seq, _| *seq > since);
        }
    }

    /// Stops tracking `room_id`; its later events are dropped.
    pub fn forget(&mut self, room_id: &str) {
        self.rooms.remove(room_id);
    }

    /// The last delivered `seq` of a tracked room whose position is known.
    pub fn last(&self, room_id: &str) -> Option<u64> {
        self.rooms.get(room_id).and_then(|r| r.last)
    }

    /// Every room with a known position: the `resume` of a reconnect.
    pub fn positions(&self) -> Vec<(String, u64)> {
        let mut positions: Vec<(String, u64)> = self
            .rooms
            .iter()
            .filter_map(|(id, r)| r.last.map(|seq| (id.clone(), seq)))
            .collect();
        positions.sort();
        positions
    }

    /// After a reconnect the server replays from [`ResumeCursor::positions`]
    /// (or answers a re-sent `Subscribe`): held events and outstanding fills
    /// are moot, and every room is joining again until its `Subscribed`.
    pub fn reset_fills(&mut self) {
        for room in self.rooms.values_mut() {
            room.held.clear();
            room.filling = false;
            room.joining = true;
        }
    }

    /// The server confirmed a subscription at `head`: replayed events up to
    /// `head` came before, live ones follow.
    pub fn subscribed(&mut self, room_id: &str, head: u64, out: &mut Vec<Event>) -> Option<Fill> {
        let room = self.rooms.get_mut(room_id)?;
        room.joining = false;
        match room.last {
            None => {
                // Subscribed without a position: start at head.
                room.last = Some(head);
                room.held.retain(|seq, _| *seq > head);
                Self::drain(room_id, room, out)
            }
            Some(last) if last < head && !room.filling => {
                // The replay stopped short of head: fetch the rest.
                room.filling = true;
                Some(fill(room_id, last, head))
            }
            // Live events held past a gap while joining: fetch it now.
            Some(_) => Self::drain(room_id, room, out),
        }
    }

    /// An event arrived (live or replayed). Deliverable events go to `out`.
    pub fn offer(&mut self, event: Event, out: &mut Vec<Event>) -> Option<Fill> {
        let room = self.rooms.get_mut(&*event.room_id)?;
        let last = room.last;
        if last.is_some_and(|last| event.seq <= last) {
            return None;
        }
        if room.held.is_empty() && last.is_some_and(|last| event.seq == last + 1) {
            // The normal case, the room's next event with nothing held:
            // what `drain` would do, without a copy of the room id and a
            // trip through `held` (they were a tenth of a subscriber's CPU).
            room.last = Some(event.seq);
            out.push(event);
            return None;
        }
        let room_id = event.room_id.clone();
        room.held.insert(event.seq, event);
        Self::drain(&room_id, room, out)
    }

    /// A gap-filling page arrived (`Forward` order); `None` when the
    /// request failed.
    pub fn filled(
        &mut self,
        room_id: &str,
        events: Option<Vec<Event>>,
        out: &mut Vec<Event>,
    ) -> Option<Fill> {
        let room = self.rooms.get_mut(room_id)?;
        room.filling = false;
        let before = room.last;
        for event in events.into_iter().flatten() {
            if event.room_id == room_id && room.last.is_none_or(|last| event.seq > last) {
                room.held.insert(event.seq, event);
            }
        }
        let next = Self::drain(room_id, room, out);
        if next.is_some() && room.last == before {
            // The server has nothing for the gap: do not stall the room
            // forever; hand out what is held and say so.
            let (Some(last), Some((&first, _))) = (room.last, room.held.first_key_value()) else {
                return None;
            };
            tracing::warn!(
                room_id,
                missing_from = last + 1,
                missing_to = first - 1,
                "events missing from the timeline; delivering past the gap"
            );
            room.filling = false;
            room.last = Some(first - 1);
            return Self::drain(room_id, room, out);
        }
        next
    }

    /// Moves contiguous held events to `out`; asks for the gap before the
    /// first one left, if any and none is being fetched.
    fn drain(room_id: &str, room: &mut Room, out: &mut Vec<Event>) -> Option<Fill> {
        let mut last = room.last?;
        while let Some(entry) = room.held.first_entry() {
            let seq = *entry.key();
            if seq <= last {
                entry.remove();
            } else if seq == last + 1 {
                out.push(entry.remove());
                last = seq;
            } else {
                break;
            }
        }
        room.last = Some(last);
        let (&first, _) = room.held.first_key_value()?;
        if room.filling || room.joining {
            return None;
        }
        room.filling = true;
        Some(fill(room_id, last, first - 1))
    }
}

/// A fill of `after + 1 ..= upto`, capped at [`MAX_FILL`].
fn fill(room_id: &str, after: u64, upto: u64) -> Fill {
    Fill {
        room_id: room_id.to_owned(),
        after,
        limit: (upto - after).min(MAX_FILL) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(room: &str, seq: u64) -> Event {
        Event {
            event_id: format!("$e{seq}").into(),
            room_id: room.into(),
            sender: "@a:x".into(),
            event_type: "m.room.message".into(),
            state_key: None,
            content: bytes::Bytes::from_static(b"{}"),
            origin_server_ts: 0,
            seq,
            pos: seq,
        }
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn in_order_events_pass_and_duplicates_are_dropped() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(3));
        for seq in [4, 5, 4, 3, 6, 6] {
            assert_eq!(cursor.offer(event("!r", seq), &mut out), None);
        }
        assert_eq!(seqs(&out), [4, 5, 6]);
        assert_eq!(cursor.positions(), [("!r".to_owned(), 6)]);
    }

    #[test]
    fn untracked_rooms_are_dropped() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        assert_eq!(cursor.offer(event("!other", 1), &mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn subscribe_without_position_starts_at_head() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", None);
        assert_eq!(cursor.positions(), []);
        // An event ahead of the confirmation is held, not lost.
        assert_eq!(cursor.offer(event("!r", 11), &mut out), None);
        assert_eq!(cursor.subscribed("!r", 10, &mut out), None);
        assert_eq!(seqs(&out), [11]);
        assert_eq!(cursor.last("!r"), Some(11));
    }

    #[test]
    fn live_events_ahead_of_the_replay_wait_for_subscribed() {
        // A resume over QUIC: lane events 8 and 9 overtake the replay
        // (2..=7) and `Subscribed { head: 7 }` on the control stream.
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(1));
        cursor.reset_fills();
        assert_eq!(cursor.offer(event("!r", 8), &mut out), None, "no fill");
        assert_eq!(cursor.offer(event("!r", 9), &mut out), None);
        for seq in 2..=5 {
            assert_eq!(cursor.offer(event("!r", seq), &mut out), None);
        }
        assert_eq!(seqs(&out), [2, 3, 4, 5]);
        for seq in 6..=7 {
            assert_eq!(cursor.offer(event("!r", seq), &mut out), None);
        }
        assert_eq!(cursor.subscribed("!r", 7, &mut out), None);
        assert_eq!(seqs(&out), [2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(cursor.offer(event("!r", 9), &mut out), None);
        assert_eq!(cursor.offer(event("!r", 10), &mut out), None);
        assert_eq!(seqs(&out), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn a_gap_left_after_subscribed_is_fetched() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(1));
        assert_eq!(cursor.offer(event("!r", 2), &mut out), None);
        assert_eq!(cursor.offer(event("!r", 5), &mut out), None);
        assert_eq!(
            cursor.subscribed("!r", 2, &mut out),
            Some(Fill {
                room_id: "!r".into(),
                after: 2,
                limit: 2
            })
        );
        assert_eq!(seqs(&out), [2]);
    }

    #[test]
    fn a_gap_is_held_fetched_and_then_delivered_in_order() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(1));
        cursor.subscribed("!r", 1, &mut out);
        let fill = cursor.offer(event("!r", 5), &mut out);
        assert_eq!(
            fill,
            Some(Fill {
                room_id: "!r".into(),
                after: 1,
                limit: 3
            })
        );
        // One fill at a time.
        assert_eq!(cursor.offer(event("!r", 6), &mut out), None);
        assert!(out.is_empty());
        let page = vec![event("!r", 2), event("!r", 3), event("!r", 4)];
        assert_eq!(cursor.filled("!r", Some(page), &mut out), None);
        assert_eq!(seqs(&out), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_partial_fill_asks_for_the_rest() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(0));
        cursor.subscribed("!r", 0, &mut out);
        assert!(cursor.offer(event("!r", 4), &mut out).is_some());
        let next = cursor.filled("!r", Some(vec![event("!r", 1)]), &mut out);
        assert_eq!(
            next,
            Some(Fill {
                room_id: "!r".into(),
                after: 1,
                limit: 2
            })
        );
        assert_eq!(seqs(&out), [1]);
    }

    #[test]
    fn an_unfillable_gap_does_not_stall_the_room() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(1));
        cursor.subscribed("!r", 1, &mut out);
        assert!(cursor.offer(event("!r", 4), &mut out).is_some());
        assert_eq!(cursor.filled("!r", None, &mut out), None);
        assert_eq!(seqs(&out), [4]);
        assert_eq!(cursor.offer(event("!r", 5), &mut out), None);
        assert_eq!(seqs(&out), [4, 5]);
    }

    #[test]
    fn a_short_replay_is_completed_from_history() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(2));
        cursor.offer(event("!r", 3), &mut out);
        let fill = cursor.subscribed("!r", 5, &mut out);
        assert_eq!(
            fill,
            Some(Fill {
                room_id: "!r".into(),
                after: 3,
                limit: 2
            })
        );
    }

    #[test]
    fn reconnect_drops_held_events_and_keeps_positions() {
        let mut cursor = ResumeCursor::default();
        let mut out = Vec::new();
        cursor.track("!r", Some(1));
        cursor.subscribed("!r", 1, &mut out);
        assert!(cursor.offer(event("!r", 3), &mut out).is_some());
        cursor.reset_fills();
        assert_eq!(cursor.positions(), [("!r".to_owned(), 1)]);
        // The replay after the reconnect delivers normally.
        assert_eq!(cursor.offer(event("!r", 2), &mut out), None);
        assert_eq!(cursor.offer(event("!r", 3), &mut out), None);
        assert_eq!(seqs(&out), [2, 3]);
    }
}
