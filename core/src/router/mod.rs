//! The router: room id → the local subscribers of that room, and fan-out of
//! each sequenced event to them (DESIGN "Router", invariant 5).
//!
//! - [`RoomRouter`] — the concurrent map. Publishing never takes a lock:
//!   readers pin a papaya map and load an `arc-swap` snapshot of the room's
//!   subscriber list; subscribe and unsubscribe copy the list on write.
//! - [`queue`] — [`SubscriberQueue`], the bounded per-connection queue with
//!   the lag policy: a full queue is not waited on and does not drop silently;
//!   it flips to *lagged*, and its consumer catches up from storage.
//! - [`cursor`] — [`DeliveryCursor`], the consumer's last delivered `seq` per
//!   room, which de-duplicates live events against a replay and detects gaps.
//! - [`feed`] — [`Feed`], a consumer's subscriptions merged with storage
//!   replay: join (subscribe, then replay to the live point), catch-up after a
//!   lag or gap, in `seq` order without gaps or duplicates (invariant 3).
//!
//! The router also holds the [`UserNotifier`], which wakes a user's waiters
//! (Matrix `/sync`) for changes outside the rooms they subscribe to.
//!
//! Each event is encoded once into `Bytes` ([`RoutedEvent::frame`]) and the
//! same `Arc` goes to every subscriber.

pub mod cursor;
pub mod feed;
pub mod queue;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;

pub use cursor::{CursorVerdict, DeliveryCursor};
pub use feed::{Feed, FeedError, LagPolicy};
pub use queue::{PushOutcome, QueueSignal, SubscriberQueue};

use crate::event::Event;
use crate::ids::RoomId;
use crate::notify::UserNotifier;

/// An event as the router hands it out: the event itself (for consumers that
/// need fields, like Matrix `/sync`) and its wire frame, encoded once.
#[derive(Debug)]
pub struct RoutedEvent {
    /// The sequenced event.
    pub event: Event,
    /// The event as an encoded native-protocol frame.
    pub frame: Bytes,
}

impl RoutedEvent {
    /// Encodes `event` once into its native frame with `encoder` (the
    /// publisher keeps one encoder and reuses its buffer).
    pub fn encode(event: Event, encoder: &mut axon_schemas::FrameEncoder) -> Arc<Self> {
        let frame = encoder.encode_event(&event.wire_view());
        Arc::new(Self { event, frame })
    }
}

/// What the router hands to a subscriber queue.
pub type Delivery = Arc<RoutedEvent>;

/// Identifies one subscriber (usually one connection) across rooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u64);

/// A subscriber: an id and the queue its deliveries go to.
#[derive(Clone, Debug)]
pub struct Subscriber {
    /// Unique among live subscribers.
    pub id: SubscriberId,
    /// Where deliveries go.
    pub queue: Arc<SubscriberQueue>,
}

type SubscriberList = ArcSwap<Vec<Subscriber>>;

/// Counts of one publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Deliveries queued: events × queues that accepted them.
    pub delivered: usize,
    /// Deliveries not queued because a queue was full, or already lagged;
    /// its consumer will catch up from storage.
    pub lagged: usize,
}

/// Lock stripes for subscribe/unsubscribe: changes to one room's list are
/// serialised so that a list is never replaced by a stale copy, while
/// publishing stays lock-free.
const STRIPES: usize = 64;

/// Room id → local subscribers; lock-free for publishers.
pub struct RoomRouter {
    rooms: papaya::HashMap<RoomId, Arc<SubscriberList>>,
    stripes: [Mutex<()>; STRIPES],
    next_id: AtomicU64,
    users: UserNotifier,
}

impl Default for RoomRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self {
            rooms: papaya::HashMap::new(),
            stripes: std::array::from_fn(|_| Mutex::new(())),
            next_id: AtomicU64::new(1),
            users: UserNotifier::default(),
        }
    }

    /// A fresh subscriber with a queue of `capacity` deliveries.
    pub fn new_subscriber(&self, capacity: usize) -> Subscriber {
        Subscriber {
            id: SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            queue: SubscriberQueue::new(capacity),
        }
    }

    fn stripe(&self, room: &RoomId) -> &Mutex<()> {
        let h = crate::shard::ShardId::of(room, STRIPES as u16);
        &self.stripes[h.0 as usize]
    }

    /// Adds `sub` to `room`; idempotent.
    pub fn subscribe(&self, room: &RoomId, sub: &Subscriber) {
        let _guard = self.stripe(room).lock();
        let rooms = self.rooms.pin();
        match rooms.get(room) {
            Some(list) => {
                let current = list.load();
                if current.iter().any(|s| s.id == sub.id) {
                    return;
                }
                let mut next = Vec::with_capacity(current.len() + 1);
                next.extend(current.iter().cloned());
                next.push(sub.clone());
                list.store(Arc::new(next));
            }
            None => {
                rooms.insert(
                    room.clone(),
                    Arc::new(ArcSwap::from_pointee(vec![sub.clone()])),
                );
            }
        }
        metrics::gauge!("axon_router_subscriptions").increment(1.0);
    }

    /// Removes subscriber `id` from `room`; a room left without subscribers is
    /// dropped from the map.
    pub fn unsubscribe(&self, room: &RoomId, id: SubscriberId) {
        let _guard = self.stripe(room).lock();
        let rooms = self.rooms.pin();
        let Some(list) = rooms.get(room) else { return };
        let current = list.load();
        if !current.iter().any(|s| s.id == id) {
            return;
        }
        let next: Vec<Subscriber> = current.iter().filter(|s| s.id != id).cloned().collect();
        if next.is_empty() {
            rooms.remove(room);
        } else {
            list.store(Arc::new(next));
        }
        metrics::gauge!("axon_router_subscriptions").decrement(1.0);
    }

    /// Hands `delivery` to every subscriber of `room` without waiting on any.
    /// Callers publish a room's events in `seq` order (the room's sequencer
    /// does), so every queue receives them in order.
    pub fn publish(&self, room: &RoomId, delivery: &Delivery) -> PublishStats {
        self.publish_run(room, std::slice::from_ref(delivery))
    }

    /// Hands a run of `room`'s events (in `seq` order) to every subscriber
    /// of `room`: one lock and at most one wake-up per subscriber for the
    /// whole run, so a subscriber's writer sends the run in one socket write
    /// rather than racing the publisher event by event.
    pub fn publish_run(&self, room: &RoomId, run: &[Delivery]) -> PublishStats {
        let rooms = self.rooms.pin();
        let Some(list) = rooms.get(room) else {
            return PublishStats::default();
        };
        let subs = list.load();
        let mut stats = PublishStats::default();
        for sub in subs.iter() {
            match sub.queue.push_run(run) {
                PushOutcome::Queued => stats.delivered += run.len(),
                PushOutcome::Lagged | PushOutcome::AlreadyLagged => stats.lagged += run.len(),
                PushOutcome::Closed => {}
            }
        }
        stats
    }

    /// Hands an ephemeral frame (typing, receipt, presence) to every
    /// subscriber of `room` that takes them; returns how many took it.
    pub fn publish_ephemeral(&self, room: &RoomId, frame: &Bytes) -> usize {
        let rooms = self.rooms.pin();
        let Some(list) = rooms.get(room) else {
            return 0;
        };
        list.load()
            .iter()
            .filter(|sub| sub.queue.push_ephemeral(frame))
            .count()
    }

    /// Wakes waiters per user; lives here because everything that publishes
    /// (the sequencer, [`Ephemeral`](crate::Ephemeral)) already holds the router.
    pub fn users(&self) -> &UserNotifier {
        &self.users
    }

    /// How many subscribers `room` has here.
    pub fn subscriber_count(&self, room: &RoomId) -> usize {
        self.rooms.pin().get(room).map_or(0, |l| l.load().len())
    }

    /// How many rooms have at least one subscriber here.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, UserId};

    fn delivery(room: &RoomId, seq: u64) -> Delivery {
        RoutedEvent::encode(
            Event {
                event_id: EventId::generate(),
                room_id: room.clone(),
                sender: UserId::parse("@a:x").unwrap(),
                event_type: "m.room.message".into(),
                state_key: None,
                content: Bytes::from_static(b"{}"),
                origin_server_ts: 0,
                seq,
                pos: seq,
            },
            &mut axon_schemas::FrameEncoder::new(),
        )
    }

    #[test]
    fn publishes_to_subscribers_of_the_room_only() {
        let router = RoomRouter::new();
        let a = RoomId::parse("!a:x").unwrap();
        let b = RoomId::parse("!b:x").unwrap();
        let s1 = router.new_subscriber(8);
        let s2 = router.new_subscriber(8);
        router.subscribe(&a, &s1);
        router.subscribe(&a, &s1);
        router.subscribe(&b, &s2);
        assert_eq!(router.subscriber_count(&a), 1);
        let stats = router.publish(&a, &delivery(&a, 1));
        assert_eq!(
            stats,
            PublishStats {
                delivered: 1,
                lagged: 0
            }
        );
        assert_eq!(s1.queue.len(), 1);
        assert_eq!(s2.queue.len(), 0);
        router.unsubscribe(&a, s1.id);
        assert_eq!(router.subscriber_count(&a), 0);
        assert_eq!(router.room_count(), 1);
        assert_eq!(router.publish(&a, &delivery(&a, 2)).delivered, 0);
    }

    #[test]
    fn a_run_counts_each_event_for_each_queue() {
        let router = RoomRouter::new();
        let a = RoomId::parse("!a:x").unwrap();
        let roomy = router.new_subscriber(8);
        let small = router.new_subscriber(2);
        router.subscribe(&a, &roomy);
        router.subscribe(&a, &small);
        let run: Vec<Delivery> = (1..=3).map(|seq| delivery(&a, seq)).collect();
        assert_eq!(
            router.publish_run(&a, &run),
            PublishStats {
                delivered: 3,
                lagged: 3
            }
        );
        let mut out = Vec::new();
        assert_eq!(roomy.queue.try_drain(&mut out), QueueSignal::Items);
        assert_eq!(out.len(), 3);
        assert_eq!(small.queue.try_drain(&mut out), QueueSignal::Lagged);
    }

    #[test]
    fn the_same_frame_goes_to_everyone() {
        let router = RoomRouter::new();
        let a = RoomId::parse("!a:x").unwrap();
        let subs: Vec<_> = (0..3).map(|_| router.new_subscriber(4)).collect();
        for s in &subs {
            router.subscribe(&a, s);
        }
        let d = delivery(&a, 1);
        router.publish(&a, &d);
        for s in &subs {
            let mut out = Vec::new();
            assert_eq!(s.queue.try_drain(&mut out), QueueSignal::Items);
            assert!(Arc::ptr_eq(&out[0], &d));
        }
    }
}
