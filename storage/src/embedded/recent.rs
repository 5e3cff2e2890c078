//! What the hottest reads of a `/sync` ask for, kept in memory as appends
//! make it readable: each shard's latest events ([`RecentEvents`]), the
//! heads of busy rooms ([`RoomHeads`]) and each user's rooms
//! ([`Memberships`]). Under a Matrix load these reads were a
//! sixth of the server's CPU: every sync reads the shards' streams after
//! its token and the user's rooms, and each LSM range read sets up an
//! iterator over every memtable and table.
//!
//! Both only ever hold what the store's read view holds: events are added
//! after the append that wrote them is readable (after its fsync, with
//! fsync durability), and a user's rooms are remembered only when no
//! membership changed while they were read.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use axon_core::event::Event;
use axon_core::ids::{RoomId, UserId};
use axon_core::room::Membership;
use axon_core::shard::ShardId;
use axon_core::store::ShardRead;
use parking_lot::{Mutex, RwLock};

/// Events kept per shard: a `/sync` at most this far behind is answered
/// from memory.
const EVENTS_PER_SHARD: usize = 1_024;

/// The latest events of each shard, in `pos` order, with no gap: every
/// event after the first one kept is there, up to the last append that
/// became readable.
#[derive(Default)]
pub(super) struct RecentEvents {
    shards: RwLock<HashMap<u16, Ring>>,
}

#[derive(Default)]
struct Ring {
    events: VecDeque<Event>,
    /// Appends came out of order: never answered from memory again.
    disabled: bool,
}

impl RecentEvents {
    /// Adds an appended batch of `shard` (ascending `pos`), once readable.
    /// A shard's appends are made one after another by its sequencer, so
    /// batches arrive in order.
    pub(super) fn push(&self, shard: ShardId, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut shards = self.shards.write();
        let ring = shards.entry(shard.0).or_default();
        for event in events {
            if ring.disabled {
                return;
            }
            if ring.events.back().is_some_and(|last| last.pos >= event.pos) {
                // Only a bug elsewhere could do this; a gap or a repeat
                // must never be served, so the store answers from now on.
                tracing::error!(
                    shard = shard.0,
                    pos = event.pos,
                    "appends out of order; shard reads go to the store"
                );
                ring.events.clear();
                ring.disabled = true;
                return;
            }
            if ring.events.len() == EVENTS_PER_SHARD {
                ring.events.pop_front();
            }
            ring.events.push_back(event.clone());
        }
    }

    /// What [`TimelineStore::shard_events_of`](axon_core::store::TimelineStore::shard_events_of)
    /// returns, when every event of `shard` after `after` that is kept
    /// reaches back to `after`; `None` sends the read to the store.
    pub(super) fn shard_events_of(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
        rooms: &std::collections::HashSet<RoomId>,
    ) -> Option<ShardRead> {
        let shards = self.shards.read();
        let ring = &shards.get(&shard.0)?.events;
        let first = ring.front()?;
        if after.checked_add(1)? < first.pos {
            return None;
        }
        let start = ring.partition_point(|e| e.pos <= after);
        let mut out = ShardRead::default();
        for event in ring.range(start..).take(limit) {
            out.last_pos = Some(event.pos);
            out.scanned += 1;
            if rooms.contains(&event.room_id) {
                out.events.push(event.clone());
            }
        }
        Some(out)
    }
}

/// The head (`seq` of the latest event) of every room appended to since
/// the store opened, as of the last append that became readable: most
/// reads of a room's head are of rooms that are busy now. A room not here
/// is read from the store, which then holds its latest head. Past
/// [`MAX_ROOM_HEADS`] rooms the table starts over.
#[derive(Default)]
pub(super) struct RoomHeads {
    heads: RwLock<HashMap<RoomId, u64>>,
}

/// Rooms whose heads are kept.
pub(super) const MAX_ROOM_HEADS: usize = 1_000_000;

impl RoomHeads {
    /// The head of `room`, when an append to it was seen.
    pub(super) fn get(&self, room: &RoomId) -> Option<u64> {
        self.heads.read().get(room).copied()
    }

    /// Records the heads an append (now readable) moved to. A room's
    /// appends are made in order by its shard's writer; a lower head never
    /// replaces a higher one all the same.
    pub(super) fn advance(&self, moved: impl IntoIterator<Item = (RoomId, u64)>) {
        let mut heads = self.heads.write();
        for (room, seq) in moved {
            if heads.len() >= MAX_ROOM_HEADS && !heads.contains_key(&room) {
                heads.clear();
            }
            let head = heads.entry(room).or_insert(seq);
            *head = (*head).max(seq);
        }
    }
}

/// Records read through to the store and kept: users' rooms
/// ([`TimelineStore::rooms_of_user`](axon_core::store::TimelineStore::rooms_of_user))
/// and access tokens.
///
/// A reader takes the generation before it reads the store and keeps what
/// it read only if the generation is unchanged; a write moves the
/// generation and forgets the keys concerned once it is readable. So a
/// record read from a view older than a write is never kept after it.
pub(super) struct ReadThrough<K, V> {
    inner: Mutex<ReadThroughInner<K, V>>,
    max: usize,
}

struct ReadThroughInner<K, V> {
    generation: u64,
    kept: HashMap<K, Arc<V>>,
}

impl<K: Eq + Hash + Clone, V> ReadThrough<K, V> {
    /// Keeps at most `max` records; past it the table starts over.
    pub(super) fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(ReadThroughInner {
                generation: 0,
                kept: HashMap::new(),
            }),
            max,
        }
    }

    /// The generation to pass to [`Self::keep`] after reading the store.
    pub(super) fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// The record of `key`, if kept.
    pub(super) fn get(&self, key: &K) -> Option<Arc<V>> {
        self.inner.lock().kept.get(key).cloned()
    }

    /// Keeps `value`, read from the store after [`Self::generation`]
    /// returned `generation`, unless something was written since.
    pub(super) fn keep(&self, key: &K, generation: u64, value: V) {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if inner.kept.len() >= self.max {
            inner.kept.clear();
        }
        inner.kept.insert(key.clone(), Arc::new(value));
    }

    /// Forgets `keys`, which a write changed; call once it is readable.
    pub(super) fn changed<'a>(&self, keys: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        for key in keys {
            inner.kept.remove(key);
        }
    }

    /// Forgets everything (a write whose keys are not known up front).
    pub(super) fn changed_all(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.kept.clear();
    }
}

/// Users' rooms.
pub(super) type Memberships = ReadThrough<UserId, Vec<(RoomId, Membership)>>;

/// Users whose rooms are kept.
pub(super) const MAX_USERS: usize = 100_000;
/// Access tokens kept (by hash).
pub(super) const MAX_TOKENS: usize = 100_000;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::conformance::{message, room};

    #[test]
    fn a_shard_read_is_served_only_when_memory_reaches_back_to_it() {
        let recent = RecentEvents::default();
        let shard = ShardId(3);
        let rooms: HashSet<RoomId> = [room(1)].into();
        assert!(recent.shard_events_of(shard, 0, 10, &rooms).is_none());
        recent.push(shard, &[message(&room(1), 1, 5), message(&room(2), 1, 6)]);
        recent.push(shard, &[message(&room(1), 2, 7)]);
        // Before the first kept event: not known to be complete.
        assert!(recent.shard_events_of(shard, 3, 10, &rooms).is_none());
        let read = recent.shard_events_of(shard, 4, 10, &rooms).unwrap();
        assert_eq!((read.scanned, read.last_pos), (3, Some(7)));
        assert_eq!(
            read.events.iter().map(|e| e.pos).collect::<Vec<_>>(),
            [5, 7]
        );
        let read = recent.shard_events_of(shard, 5, 1, &rooms).unwrap();
        assert_eq!((read.scanned, read.last_pos), (1, Some(6)));
        assert!(read.events.is_empty());
        let read = recent.shard_events_of(shard, 7, 10, &rooms).unwrap();
        assert_eq!((read.scanned, read.last_pos), (0, None));
        // Another shard is not known at all.
        assert!(recent.shard_events_of(ShardId(4), 0, 10, &rooms).is_none());
    }

    #[test]
    fn old_events_fall_out_and_disorder_turns_memory_off() {
        let recent = RecentEvents::default();
        let shard = ShardId(0);
        let events: Vec<Event> = (1..=EVENTS_PER_SHARD as u64 + 10)
            .map(|p| message(&room(1), p, p))
            .collect();
        recent.push(shard, &events);
        let rooms: HashSet<RoomId> = HashSet::new();
        assert!(recent.shard_events_of(shard, 9, 10, &rooms).is_none());
        assert!(recent.shard_events_of(shard, 10, 10, &rooms).is_some());
        // Out of order: the shard is read from the store from then on.
        recent.push(shard, &[message(&room(1), 1, 3)]);
        recent.push(shard, &[message(&room(1), 2, 10_000)]);
        assert!(recent.shard_events_of(shard, 10, 10, &rooms).is_none());
        assert!(recent.shard_events_of(shard, 9_999, 10, &rooms).is_none());
    }

    #[test]
    fn records_read_before_a_write_are_not_kept() {
        let m = Memberships::new(MAX_USERS);
        let alice = UserId::parse("@alice:x").unwrap();
        let rooms = vec![(RoomId::parse("!a:x").unwrap(), Membership::Join)];
        let get = |m: &Memberships| m.get(&alice).map(|r| r.as_ref().clone());
        let g = m.generation();
        m.keep(&alice, g, rooms.clone());
        assert_eq!(get(&m), Some(rooms.clone()));
        let g = m.generation();
        m.changed([&alice]);
        assert_eq!(get(&m), None);
        // Read from a view older than the change: dropped.
        m.keep(&alice, g, rooms.clone());
        assert_eq!(get(&m), None);
        m.keep(&alice, m.generation(), rooms.clone());
        assert_eq!(get(&m), Some(rooms.clone()));
        m.changed_all();
        assert_eq!(get(&m), None);
    }

    #[test]
    fn the_table_starts_over_when_full() {
        let m: ReadThrough<u32, u32> = ReadThrough::new(2);
        for k in 0..3 {
            m.keep(&k, m.generation(), k);
        }
        assert!(m.get(&0).is_none() && m.get(&1).is_none());
        assert_eq!(m.get(&2).as_deref(), Some(&2));
    }

    #[test]
    fn room_heads_only_move_forward() {
        let heads = RoomHeads::default();
        let (a, b) = (room(1), room(2));
        assert_eq!(heads.get(&a), None);
        heads.advance([(a.clone(), 3), (b.clone(), 1)]);
        heads.advance([(a.clone(), 2)]);
        assert_eq!((heads.get(&a), heads.get(&b)), (Some(3), Some(1)));
        heads.advance([(a.clone(), 4)]);
        assert_eq!(heads.get(&a), Some(4));
    }
}
