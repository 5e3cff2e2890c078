//! [`SubscriberQueue`]: a bounded queue per subscriber, with the lag policy.
//!
//! Publishers never wait: `push` either queues the delivery or, when the
//! queue is full, flips it to *lagged* and frees what it held. A lagged queue
//! refuses further deliveries until its consumer has seen the lag signal;
//! the consumer then replays from storage from its last delivered `seq` per
//! room (every routed event is durable before it is published, so nothing is
//! lost) and de-duplicates against live deliveries with a
//! [`DeliveryCursor`](super::DeliveryCursor). Whether the consumer catches
//! up or closes the connection with a resumable reason is its policy.
//!
//! The consumer drains everything queued at once, so its writer can put many
//! frames into one socket write.
//!
//! Beside the deliveries, a queue holds *ephemeral* frames (typing,
//! receipts, presence): not part of any timeline, not stored, so they cannot
//! be caught up from storage. They have a bound of their own; when it is
//! reached the oldest is dropped (and counted) — each such frame states the
//! whole current state of what it is about, so a later one supersedes it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Delivery;

/// What happened to one pushed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for the consumer.
    Queued,
    /// The queue was full: it is now lagged and the consumer will catch up.
    Lagged,
    /// The queue was already lagged; the delivery will come from storage.
    AlreadyLagged,
    /// The consumer is gone.
    Closed,
}

/// What a drain found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueSignal {
    /// Deliveries were moved to the output.
    Items,
    /// The queue had lagged: deliveries were lost from the queue and the
    /// consumer must catch up from storage. The queue accepts deliveries again.
    Lagged,
    /// Nothing queued.
    Empty,
    /// The queue is closed.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Delivery>,
    ephemeral: VecDeque<Bytes>,
    wants_ephemeral: bool,
    lagged: bool,
    closed: bool,
}

/// A bounded, lag-aware queue of deliveries for one subscriber.
#[derive(Debug)]
pub struct SubscriberQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    capacity: usize,
}

impl SubscriberQueue {
    /// A queue holding at most `capacity` deliveries (at least 1).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
        })
    }

    /// Queues a delivery without waiting.
    pub fn push(&self, delivery: &Delivery) -> PushOutcome {
        self.push_run(std::slice::from_ref(delivery))
    }

    /// Queues a run of deliveries (one room's, in `seq` order) without
    /// waiting, under one lock and with at most one wake-up, so the consumer
    /// finds the whole run when it wakes and writes it at once. A run that
    /// does not fit lags the queue, as pushing its deliveries one by one
    /// would have.
    pub fn push_run(&self, run: &[Delivery]) -> PushOutcome {
        let mut inner = self.inner.lock();
        if inner.closed {
            return PushOutcome::Closed;
        }
        if inner.lagged {
            return PushOutcome::AlreadyLagged;
        }
        if inner.items.len() + run.len() > self.capacity {
            inner.lagged = true;
            inner.items = VecDeque::new();
            drop(inner);
            metrics::counter!("axon_router_lagged_total").increment(1);
            self.notify.notify_one();
            return PushOutcome::Lagged;
        }
        let was_empty = inner.items.is_empty();
        inner.items.extend(run.iter().cloned());
        drop(inner);
        // Only the transition from empty wakes the consumer: it drains all.
        if was_empty && !run.is_empty() {
            self.notify.notify_one();
        }
        PushOutcome::Queued
    }

    /// From now on, take ephemeral frames. Only a consumer that drains them
    /// with [`take_ephemeral`](Self::take_ephemeral) may ask for them: a
    /// waiting one is woken for them.
    pub fn accept_ephemeral(&self) {
        self.inner.lock().wants_ephemeral = true;
    }

    /// Queues an ephemeral frame without waiting, if the consumer takes
    /// them; when the ephemeral bound is reached the oldest one is dropped.
    /// Returns whether the frame was queued.
    pub fn push_ephemeral(&self, frame: &Bytes) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed || !inner.wants_ephemeral {
            return false;
        }
        if inner.ephemeral.len() >= self.capacity {
            inner.ephemeral.pop_front();
            metrics::counter!("axon_router_ephemeral_dropped_total").increment(1);
        }
        let was_empty = inner.ephemeral.is_empty();
        inner.ephemeral.push_back(frame.clone());
        drop(inner);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Moves the queued ephemeral frames into `out` without waiting.
    pub fn take_ephemeral(&self, out: &mut Vec<Bytes>) {
        let mut inner = self.inner.lock();
        if !inner.ephemeral.is_empty() {
            out.extend(inner.ephemeral.drain(..));
        }
    }

    /// Moves everything queued into `out` without waiting.
    pub fn try_drain(&self, out: &mut Vec<Delivery>) -> QueueSignal {
        let mut inner = self.inner.lock();
        if inner.lagged {
            inner.lagged = false;
            return QueueSignal::Lagged;
        }
        if !inner.items.is_empty() {
            out.extend(inner.items.drain(..));
            return QueueSignal::Items;
        }
        if inner.closed {
            QueueSignal::Closed
        } else {
            QueueSignal::Empty
        }
    }

    /// Waits until a drain would find something (items, a lag, or the
    /// close), without draining. Cancel-safe.
    pub async fn ready(&self) {
        loop {
            {
                let inner = self.inner.lock();
                if !inner.items.is_empty()
                    || !inner.ephemeral.is_empty()
                    || inner.lagged
                    || inner.closed
                {
                    return;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Waits until there is something to report, then drains like
    /// [`try_drain`](Self::try_drain) (never returns `Empty`).
    pub async fn drain(&self, out: &mut Vec<Delivery>) -> QueueSignal {
        loop {
            match self.try_drain(out) {
                QueueSignal::Empty => self.notify.notified().await,
                signal => return signal,
            }
        }
    }

    /// Closes the queue: pushes are refused and the consumer sees `Closed`
    /// once it has drained what is left.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.notify.notify_one();
    }

    /// How many deliveries wait.
    pub fn len(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most deliveries the queue holds before it lags.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::ids::{EventId, RoomId, UserId};
    use crate::router::RoutedEvent;

    fn d(seq: u64) -> Delivery {
        RoutedEvent::encode(
            Event {
                event_id: EventId::generate(),
                room_id: RoomId::parse("!r:x").unwrap(),
                sender: UserId::parse("@a:x").unwrap(),
                event_type: "t".into(),
                state_key: None,
                content: bytes::Bytes::from_static(b"{}"),
                origin_server_ts: 0,
                seq,
                pos: seq,
            },
            &mut axon_schemas::FrameEncoder::new(),
        )
    }

    #[test]
    fn overflow_lags_once_then_recovers() {
        let q = SubscriberQueue::new(2);
        assert_eq!(q.push(&d(1)), PushOutcome::Queued);
        assert_eq!(q.push(&d(2)), PushOutcome::Queued);
        assert_eq!(q.push(&d(3)), PushOutcome::Lagged);
        assert_eq!(q.push(&d(4)), PushOutcome::AlreadyLagged);
        assert_eq!(q.len(), 0);
        let mut out = Vec::new();
        assert_eq!(q.try_drain(&mut out), QueueSignal::Lagged);
        assert!(out.is_empty());
        assert_eq!(q.push(&d(5)), PushOutcome::Queued);
        assert_eq!(q.try_drain(&mut out), QueueSignal::Items);
        assert_eq!(out[0].event.seq, 5);
        assert_eq!(q.try_drain(&mut out), QueueSignal::Empty);
        q.close();
        assert_eq!(q.push(&d(6)), PushOutcome::Closed);
        assert_eq!(q.try_drain(&mut out), QueueSignal::Closed);
    }

    #[test]
    fn ephemeral_frames_are_bounded_and_keep_the_newest() {
        let q = SubscriberQueue::new(2);
        assert!(
            !q.push_ephemeral(&Bytes::from_static(b"x")),
            "not asked for"
        );
        q.accept_ephemeral();
        for n in 1..=3u8 {
            assert!(q.push_ephemeral(&Bytes::from(vec![n])));
        }
        let mut out = Vec::new();
        q.take_ephemeral(&mut out);
        assert_eq!(out, vec![Bytes::from(vec![2]), Bytes::from(vec![3])]);
        // Ephemeral frames never make the queue lag.
        assert_eq!(q.push(&d(1)), PushOutcome::Queued);
        q.close();
        assert!(!q.push_ephemeral(&Bytes::from_static(b"x")));
    }

    #[test]
    fn a_run_is_queued_whole_or_lags_the_queue() {
        let q = SubscriberQueue::new(4);
        assert_eq!(q.push_run(&[d(1), d(2), d(3)]), PushOutcome::Queued);
        assert_eq!(q.push_run(&[]), PushOutcome::Queued);
        let mut out = Vec::new();
        assert_eq!(q.try_drain(&mut out), QueueSignal::Items);
        let seqs: Vec<u64> = out.iter().map(|d| d.event.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(q.push(&d(4)), PushOutcome::Queued);
        // Four would fit, five do not: the queue lags and frees what it held.
        assert_eq!(q.push_run(&[d(5), d(6), d(7), d(8)]), PushOutcome::Lagged);
        assert_eq!(q.len(), 0);
        assert_eq!(q.push_run(&[d(9)]), PushOutcome::AlreadyLagged);
        out.clear();
        assert_eq!(q.try_drain(&mut out), QueueSignal::Lagged);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn ready_wakes_on_an_ephemeral_frame() {
        let q = SubscriberQueue::new(4);
        q.accept_ephemeral();
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.ready().await });
        tokio::task::yield_now().await;
        q.push_ephemeral(&Bytes::from_static(b"t"));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn drain_wakes_on_push() {
        let q = SubscriberQueue::new(4);
        let q2 = Arc::clone(&q);
        let consumer = tokio::spawn(async move {
            let mut out = Vec::new();
            let signal = q2.drain(&mut out).await;
            (signal, out.len())
        });
        tokio::task::yield_now().await;
        q.push(&d(1));
        assert_eq!(consumer.await.unwrap(), (QueueSignal::Items, 1));
    }
}
