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

use std::collections::VecDeque;
use std::sync::Arc;

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
        let mut inner = self.inner.lock();
        if inner.closed {
            return PushOutcome::Closed;
        }
        if inner.lagged {
            return PushOutcome::AlreadyLagged;
        }
        if inner.items.len() >= self.capacity {
            inner.lagged = true;
            inner.items = VecDeque::new();
            drop(inner);
            metrics::counter!("axon_router_lagged_total").increment(1);
            self.notify.notify_one();
            return PushOutcome::Lagged;
        }
        let was_empty = inner.items.is_empty();
        inner.items.push_back(Arc::clone(delivery));
        drop(inner);
        // Only the transition from empty wakes the consumer: it drains all.
        if was_empty {
            self.notify.notify_one();
        }
        PushOutcome::Queued
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
                if !inner.items.is_empty() || inner.lagged || inner.closed {
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
                event_id: EventId::random(),
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
