//! [`Feed`]: one consumer's gap-free, duplicate-free view of its rooms
//! (DESIGN invariant 3), built from a router subscription plus storage.
//!
//! Joining a room subscribes *first*, then replays from storage up to the
//! live point; live deliveries the replay already covered are dropped by the
//! [`DeliveryCursor`]. When the subscriber queue lags, or a live delivery
//! shows a gap, the missing range is read from storage before anything newer
//! is handed out. Every published event is durable first, so storage always
//! has what the queue lost.
//!
//! A lagging consumer catches up one page per room at a time: each
//! [`Feed::try_next`] hands out at most `REPLAY_PAGE` (512) events of a room
//! until the room's head is reached, and only then drains the live queue
//! again. So a consumer far behind holds a page of events, not everything
//! it missed. Joining from far back works the same way: [`Feed::join`]
//! returns the first page, and the rest follows as catch-up.

use std::sync::Arc;

use super::{
    CursorVerdict, Delivery, DeliveryCursor, QueueSignal, RoomRouter, RoutedEvent, Subscriber,
};
use crate::encoder::with_encoder;
use crate::ids::RoomId;
use crate::store::{Direction, StoreError, TimelineStore};

/// Most events read from storage per request, and handed out per room and
/// per [`Feed::try_next`], while catching up.
const REPLAY_PAGE: usize = 512;

/// What a consumer does when its queue overflows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagPolicy {
    /// Read what was missed from storage and go on.
    #[default]
    CatchUp,
    /// Stop; the connection is closed with a resumable reason and the client
    /// resumes from its last `seq`.
    Close,
}

/// Why a feed cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The consumer fell behind and the policy is [`LagPolicy::Close`].
    #[error("the consumer fell behind")]
    Lagged,
    /// The subscriber queue was closed.
    #[error("the feed is closed")]
    Closed,
    /// Storage failed during a replay.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A consumer's subscriptions, delivered in `seq` order per room.
pub struct Feed {
    router: Arc<RoomRouter>,
    store: Arc<dyn TimelineStore>,
    sub: Subscriber,
    cursor: DeliveryCursor,
    policy: LagPolicy,
    live: Vec<Delivery>,
    lags: u64,
    /// Catching up after a lag: the live queue waits until every room has
    /// been read from storage up to its head.
    catching_up: bool,
}

impl Feed {
    /// A feed with a queue of `capacity` deliveries.
    pub fn new(
        router: Arc<RoomRouter>,
        store: Arc<dyn TimelineStore>,
        capacity: usize,
        policy: LagPolicy,
    ) -> Self {
        let sub = router.new_subscriber(capacity);
        Self {
            router,
            store,
            sub,
            cursor: DeliveryCursor::new(),
            policy,
            live: Vec::new(),
            lags: 0,
            catching_up: false,
        }
    }

    /// Subscribes to `room` and returns the events after `after_seq`, up
    /// to the live point or at most a page (`REPLAY_PAGE`) of them; `None`
    /// starts at the live point (nothing replayed). When more than a page
    /// was missed, the feed is catching up: [`try_next`](Self::try_next)
    /// hands out the rest a page at a time before anything live. So a
    /// subscribe from far back (`since: 0` on a long timeline) never holds
    /// more than a page.
    pub async fn join(
        &mut self,
        room: &RoomId,
        after_seq: Option<u64>,
    ) -> Result<Vec<Delivery>, FeedError> {
        if self.cursor.last(room).is_some() {
            return Ok(Vec::new());
        }
        self.router.subscribe(room, &self.sub);
        let head = self.store.room_head(room).await?.unwrap_or(0);
        let start = after_seq.unwrap_or(head).min(head);
        self.cursor.track(room.clone(), start);
        let mut out = Vec::new();
        self.catching_up |= self.replay_page(room, start, head, &mut out).await?;
        Ok(out)
    }

    /// Unsubscribes from `room`.
    pub fn leave(&mut self, room: &RoomId) {
        self.router.unsubscribe(room, self.sub.id);
        self.cursor.forget(room);
    }

    /// The last delivered `seq` of every room: what a client resumes from.
    pub fn cursor(&self) -> &DeliveryCursor {
        &self.cursor
    }

    /// How many times the queue lagged.
    pub fn lags(&self) -> u64 {
        self.lags
    }

    /// The subscriber behind this feed.
    pub fn subscriber(&self) -> &Subscriber {
        &self.sub
    }

    /// From now on, also take the rooms' ephemeral frames (typing,
    /// receipts, presence); the owner drains them with
    /// [`take_ephemeral`](Self::take_ephemeral) whenever it is woken.
    pub fn accept_ephemeral(&self) {
        self.sub.queue.accept_ephemeral();
    }

    /// Moves the queued ephemeral frames into `out`.
    pub fn take_ephemeral(&self, out: &mut Vec<bytes::Bytes>) {
        self.sub.queue.take_ephemeral(out);
    }

    /// Waits until the queue has something to hand out. Cancel-safe: a
    /// connection selects on this and on its socket, then calls
    /// [`try_next`](Self::try_next).
    pub async fn ready(&self) {
        if self.catching_up {
            return;
        }
        self.sub.queue.ready().await;
    }

    /// Appends what is ready to `out` without waiting for more: each room's
    /// events in `seq` order with no gap and no duplicate (it may append
    /// nothing, when all that was queued were duplicates).
    pub async fn try_next(&mut self, out: &mut Vec<Delivery>) -> Result<(), FeedError> {
        if self.catching_up {
            return self.catch_up(out).await;
        }
        match self.sub.queue.try_drain(&mut self.live) {
            QueueSignal::Items => {
                // Moved, not cloned: each delivery's count is shared by
                // every subscriber, and touching it costs a contended
                // cache line per delivery.
                let mut live = std::mem::take(&mut self.live);
                let mut accepted = Ok(());
                for d in live.drain(..) {
                    accepted = self.accept(d, out).await;
                    if accepted.is_err() {
                        break;
                    }
                }
                // `drain` leaves it empty even after an early stop, ready
                // for the next drain.
                self.live = live;
                accepted?;
            }
            QueueSignal::Lagged => {
                self.lags += 1;
                metrics::counter!("axon_feed_catch_ups_total").increment(1);
                if self.policy == LagPolicy::Close {
                    return Err(FeedError::Lagged);
                }
                self.catching_up = true;
                self.catch_up(out).await?;
            }
            QueueSignal::Closed => return Err(FeedError::Closed),
            QueueSignal::Empty => {}
        }
        Ok(())
    }

    /// Waits for deliveries and appends at least one to `out`.
    pub async fn next(&mut self, out: &mut Vec<Delivery>) -> Result<(), FeedError> {
        let start = out.len();
        while out.len() == start {
            self.ready().await;
            self.try_next(out).await?;
        }
        Ok(())
    }

    async fn accept(&mut self, d: Delivery, out: &mut Vec<Delivery>) -> Result<(), FeedError> {
        let room = &d.event.room_id;
        match self.cursor.offer(room, d.event.seq) {
            CursorVerdict::Deliver => out.push(d),
            CursorVerdict::Duplicate => {}
            CursorVerdict::Gap { to, .. } => {
                self.replay(room, to, out).await?;
                if self.cursor.offer(room, d.event.seq) == CursorVerdict::Deliver {
                    out.push(d);
                }
            }
        }
        Ok(())
    }

    /// One step of catching up: at most a page of each room that is behind
    /// its head. Catching up ends when no room is.
    async fn catch_up(&mut self, out: &mut Vec<Delivery>) -> Result<(), FeedError> {
        let rooms: Vec<(RoomId, u64)> = self
            .cursor
            .positions()
            .map(|(r, last)| (r.clone(), last))
            .collect();
        let mut behind = false;
        for (room, last) in rooms {
            let head = self.store.room_head(&room).await?.unwrap_or(0);
            behind |= self.replay_page(&room, last, head, out).await?;
        }
        self.catching_up = behind;
        Ok(())
    }

    /// Replays at most a page of `room` after `last` towards `head`;
    /// whether the room is still behind its head afterwards.
    async fn replay_page(
        &mut self,
        room: &RoomId,
        last: u64,
        head: u64,
        out: &mut Vec<Delivery>,
    ) -> Result<bool, FeedError> {
        let to = head.min(last.saturating_add(REPLAY_PAGE as u64));
        self.replay(room, to, out).await?;
        Ok(to < head)
    }

    /// Reads events of `room` after the cursor up to `to` from storage.
    async fn replay(
        &mut self,
        room: &RoomId,
        to: u64,
        out: &mut Vec<Delivery>,
    ) -> Result<(), FeedError> {
        while let Some(last) = self.cursor.last(room).filter(|last| *last < to) {
            let page = self
                .store
                .events(room, last + 1, to, Direction::Forward, REPLAY_PAGE)
                .await?;
            if page.is_empty() {
                // Storage is behind the head it reported: it cannot be, as
                // events are durable before they are published.
                return Err(StoreError::Corrupt(format!(
                    "{room}: events {}..={to} missing",
                    last + 1
                ))
                .into());
            }
            for event in page {
                if self.cursor.offer(room, event.seq) == CursorVerdict::Deliver {
                    out.push(with_encoder(|e| RoutedEvent::encode(event, e)));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let rooms: Vec<RoomId> = self.cursor.positions().map(|(r, _)| r.clone()).collect();
        for room in rooms {
            self.router.unsubscribe(&room, self.sub.id);
        }
        self.sub.queue.close();
    }
}
