//! [`PresenceRegistry`]: each user's presence as they last set it, and
//! whether they are connected at all.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::ids::UserId;

/// A user's presence state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PresenceState {
    /// Connected and active.
    Online,
    /// Connected but idle or away.
    Unavailable,
    /// Not connected, or hiding.
    #[default]
    Offline,
}

/// A user's presence as others see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceView {
    /// The state.
    pub state: PresenceState,
    /// Free text the user set, if any.
    pub status_msg: Option<String>,
    /// When the user was last active, Unix ms (0 = never seen).
    pub last_active_ms: u64,
    /// Whether the user is active right now.
    pub currently_active: bool,
}

#[derive(Default)]
struct Entry {
    view: PresenceView,
    connections: u32,
}

/// Every user's presence on this node.
#[derive(Default)]
pub struct PresenceRegistry {
    users: Mutex<HashMap<UserId, Entry>>,
}

impl PresenceRegistry {
    /// `user` sets their presence at `now_ms`; returns what others see now.
    pub fn set(
        &self,
        user: &UserId,
        state: PresenceState,
        status_msg: Option<String>,
        now_ms: u64,
    ) -> PresenceView {
        let mut users = self.users.lock();
        let entry = users.entry(user.clone()).or_default();
        entry.view = PresenceView {
            state,
            status_msg,
            last_active_ms: now_ms,
            currently_active: state == PresenceState::Online,
        };
        entry.view.clone()
    }

    /// `user`'s presence (offline, never seen, for a user not known here).
    pub fn get(&self, user: &UserId) -> PresenceView {
        self.users
            .lock()
            .get(user)
            .map(|e| e.view.clone())
            .unwrap_or_default()
    }

    /// A connection of `user` opened.
    pub fn connected(&self, user: &UserId) {
        self.users
            .lock()
            .entry(user.clone())
            .or_default()
            .connections += 1;
    }

    /// A connection of `user` closed at `now_ms`. When it was the last one
    /// and the user was not offline already, they go offline: the view to
    /// announce is returned.
    pub fn disconnected(&self, user: &UserId, now_ms: u64) -> Option<PresenceView> {
        let mut users = self.users.lock();
        let entry = users.get_mut(user)?;
        entry.connections = entry.connections.saturating_sub(1);
        if entry.connections > 0 {
            return None;
        }
        if entry.view.state == PresenceState::Offline {
            // Nothing to announce and nothing worth keeping.
            if entry.view.status_msg.is_none() {
                users.remove(user);
            }
            return None;
        }
        entry.view.state = PresenceState::Offline;
        entry.view.currently_active = false;
        entry.view.last_active_ms = now_ms;
        Some(entry.view.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_connection_closing_takes_an_online_user_offline() {
        let p = PresenceRegistry::default();
        let a = UserId::parse("@a:x").unwrap();
        assert_eq!(p.get(&a), PresenceView::default());
        p.connected(&a);
        p.connected(&a);
        let view = p.set(&a, PresenceState::Online, Some("here".into()), 100);
        assert!(view.currently_active);
        assert_eq!(p.disconnected(&a, 200), None, "one connection left");
        let gone = p.disconnected(&a, 300).expect("now offline");
        assert_eq!(gone.state, PresenceState::Offline);
        assert_eq!(gone.status_msg.as_deref(), Some("here"));
        assert_eq!(gone.last_active_ms, 300);
        assert_eq!(p.get(&a).state, PresenceState::Offline);
    }

    #[test]
    fn a_user_who_never_set_presence_goes_quietly() {
        let p = PresenceRegistry::default();
        let a = UserId::parse("@a:x").unwrap();
        p.connected(&a);
        assert_eq!(p.disconnected(&a, 1), None);
        assert_eq!(p.disconnected(&a, 2), None, "unknown users are ignored");
    }
}
