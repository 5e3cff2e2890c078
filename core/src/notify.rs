//! [`UserNotifier`]: wakes a user's waiters (Matrix `/sync` long-polls) for
//! changes that reach no room they are subscribed to — an invite to a new
//! room, their own account data, presence, private receipts.
//!
//! Room events and ephemeral frames of joined rooms wake a waiter through
//! its router subscription; this covers the rest. Each user has a counter
//! in a `watch` channel: a waiter takes a receiver *before* it reads what
//! is new, so a signal between the read and the wait is not lost.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::ids::UserId;

/// User id → a counter bumped on every signal for that user.
#[derive(Default)]
pub struct UserNotifier {
    users: Mutex<HashMap<UserId, watch::Sender<u64>>>,
}

impl UserNotifier {
    /// A receiver that changes whenever `user` is signalled from now on.
    pub fn watch(&self, user: &UserId) -> watch::Receiver<u64> {
        let mut users = self.users.lock();
        users
            .entry(user.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes every waiter of `user`. Users nobody waits for are forgotten
    /// here, so the map holds only users with a live waiter or a recent one.
    pub fn signal(&self, user: &UserId) {
        let mut users = self.users.lock();
        let Some(sender) = users.get(user) else {
            return;
        };
        if sender.receiver_count() == 0 {
            users.remove(user);
            return;
        }
        sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_after_watch_is_seen() {
        let n = UserNotifier::default();
        let a = UserId::parse("@a:x").unwrap();
        let b = UserId::parse("@b:x").unwrap();
        let mut rx = n.watch(&a);
        n.signal(&b);
        assert!(!rx.has_changed().unwrap(), "another user's signal");
        n.signal(&a);
        rx.changed().await.unwrap();
        drop(rx);
        n.signal(&a);
        assert!(n.users.lock().is_empty(), "nobody waits for a any more");
    }
}
