//! [`Waiter`]: what a long-polling `/sync` waits on — a router subscriber
//! (with ephemeral frames) on each of the user's joined rooms, and the
//! user's [`UserNotifier`](axon_core::notify::UserNotifier) receiver for
//! everything else (invites, own account data, presence, private
//! receipts). Nothing polls storage: the response is rebuilt only after a
//! wake-up.
//!
//! Both are taken before the response that found nothing is rebuilt, so a
//! change between that read and the wait still wakes the waiter.

use std::sync::Arc;

use axon_core::router::Subscriber;
use axon_core::{RoomId, RoomRouter, UserId};
use tokio::sync::watch;

/// Deliveries a waiter's queue holds before it lags; a lag only wakes it,
/// since the response is read from storage anyway.
const QUEUE: usize = 16;

/// Subscriptions for one long-poll; dropping it unsubscribes.
pub struct Waiter {
    router: Arc<RoomRouter>,
    sub: Subscriber,
    rooms: Vec<RoomId>,
    user: watch::Receiver<u64>,
}

impl Waiter {
    /// Subscribes to `rooms` and to `user`'s signals.
    pub fn new(router: &Arc<RoomRouter>, user: &UserId, rooms: Vec<RoomId>) -> Self {
        let sub = router.new_subscriber(QUEUE);
        sub.queue.accept_ephemeral();
        for room in &rooms {
            router.subscribe(room, &sub);
        }
        Self {
            router: Arc::clone(router),
            user: router.users().watch(user),
            sub,
            rooms,
        }
    }

    /// Waits for the next event, ephemeral frame or user signal, and
    /// clears what woke it.
    pub async fn woken(&mut self) {
        tokio::select! {
            () = self.sub.queue.ready() => {}
            changed = self.user.changed() => {
                // The notifier keeps the sender while a receiver lives, so
                // this does not happen; if it did, rooms still wake us.
                if changed.is_err() {
                    self.sub.queue.ready().await;
                }
            }
        }
        let mut drained = Vec::new();
        let _ = self.sub.queue.try_drain(&mut drained);
        let mut frames = Vec::new();
        self.sub.queue.take_ephemeral(&mut frames);
        self.user.mark_unchanged();
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        for room in &self.rooms {
            self.router.unsubscribe(room, self.sub.id);
        }
        self.sub.queue.close();
    }
}
