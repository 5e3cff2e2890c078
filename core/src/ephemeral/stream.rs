//! [`StreamLog`]: a monotonic stream position and, per key, the position of
//! its last change — so that a Matrix `/sync` token can say "what changed
//! since" for state that has no timeline (typing, receipts, presence,
//! account data; DESIGN invariant 7).
//!
//! Positions live in memory and start at 0 when the process starts: a
//! token from before a restart may name a position above the current one,
//! which [`StreamLog::changed_since`] answers as "everything changed", so
//! the client is sent the whole current state once rather than nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use parking_lot::Mutex;

/// Positions of changes per key.
pub struct StreamLog<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    head: u64,
    last: HashMap<K, u64>,
    /// The same changes by position, each key once at its latest: what
    /// changed since a position is a range, not a scan of every key (every
    /// `/sync` asks, and presence has a key per user).
    by_pos: BTreeMap<u64, K>,
}

impl<K> Default for StreamLog<K> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                head: 0,
                last: HashMap::new(),
                by_pos: BTreeMap::new(),
            }),
        }
    }
}

impl<K: Eq + Hash + Clone> StreamLog<K> {
    /// Records a change of `key`; returns its position.
    pub fn record(&self, key: &K) -> u64 {
        let mut inner = self.inner.lock();
        inner.head += 1;
        let head = inner.head;
        if let Some(before) = inner.last.insert(key.clone(), head) {
            inner.by_pos.remove(&before);
        }
        inner.by_pos.insert(head, key.clone());
        head
    }

    /// The latest position.
    pub fn head(&self) -> u64 {
        self.inner.lock().head
    }

    /// Whether `key` changed after position `since` (always, for a `since`
    /// from before a restart, see the module docs).
    pub fn changed_since(&self, key: &K, since: u64) -> bool {
        let inner = self.inner.lock();
        since > inner.head || inner.last.get(key).is_some_and(|p| *p > since)
    }

    /// The keys that changed after `since`, in the order of their latest
    /// change (every key, for a `since` from before a restart).
    pub fn changes_since(&self, since: u64) -> Vec<K> {
        let inner = self.inner.lock();
        let from = if since > inner.head { 0 } else { since };
        inner
            .by_pos
            .range(from.saturating_add(1)..)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_after_a_position() {
        let log = StreamLog::<&str>::default();
        assert_eq!(log.head(), 0);
        let a = log.record(&"a");
        log.record(&"b");
        assert!(log.changed_since(&"a", 0));
        assert!(!log.changed_since(&"a", a));
        assert!(log.changed_since(&"b", a));
        assert_eq!(log.changes_since(a), vec!["b"]);
        assert!(log.changes_since(log.head()).is_empty());
        let mut all = log.changes_since(99);
        all.sort_unstable();
        assert_eq!(all, vec!["a", "b"], "a token from before a restart");
    }

    #[test]
    fn a_key_changed_again_is_listed_once_at_its_latest_change() {
        let log = StreamLog::<&str>::default();
        let a = log.record(&"a");
        let b = log.record(&"b");
        log.record(&"a");
        assert_eq!(log.changes_since(0), vec!["b", "a"]);
        assert_eq!(log.changes_since(a), vec!["b", "a"]);
        assert_eq!(log.changes_since(b), vec!["a"]);
        assert!(log.changes_since(log.head()).is_empty());
        assert_eq!(log.changes_since(log.head() + 1), vec!["b", "a"]);
    }
}
