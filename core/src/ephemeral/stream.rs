//! [`StreamLog`]: a monotonic stream position and, per key, the position of
//! its last change — so that a Matrix `/sync` token can say "what changed
//! since" for state that has no timeline (typing, receipts, presence,
//! account data; DESIGN invariant 7).
//!
//! Positions live in memory and start at 0 when the process starts: a
//! token from before a restart may name a position above the current one,
//! which [`StreamLog::changed_since`] answers as "everything changed", so
//! the client is sent the whole current state once rather than nothing.

use std::collections::HashMap;
use std::hash::Hash;

use parking_lot::Mutex;

/// Positions of changes per key.
pub struct StreamLog<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    head: u64,
    last: HashMap<K, u64>,
}

impl<K> Default for StreamLog<K> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                head: 0,
                last: HashMap::new(),
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
        inner.last.insert(key.clone(), head);
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

    /// The keys that changed after `since` (every key, for a `since` from
    /// before a restart).
    pub fn changes_since(&self, since: u64) -> Vec<K> {
        let inner = self.inner.lock();
        let stale = since > inner.head;
        inner
            .last
            .iter()
            .filter(|(_, p)| stale || **p > since)
            .map(|(k, _)| k.clone())
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
}
