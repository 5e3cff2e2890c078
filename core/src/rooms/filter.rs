//! [`EventFilter`]: which events a page of the timeline keeps, as the
//! spec's `RoomEventFilter` has it.

use crate::event::Event;
use crate::ids::UserId;

/// Which events to keep; the default keeps all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these types (`*` matches any run of characters); `None` is all.
    pub types: Option<Vec<String>>,
    /// Never these types (wins over `types`).
    pub not_types: Vec<String>,
    /// Only from these senders; `None` is all.
    pub senders: Option<Vec<UserId>>,
    /// Never from these senders.
    pub not_senders: Vec<UserId>,
    /// Return the member events of the page's senders with it.
    pub lazy_load_members: bool,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        if !self.matches_type(&event.event_type) {
            return false;
        }
        if self.not_senders.contains(&event.sender) {
            return false;
        }
        self.senders
            .as_ref()
            .is_none_or(|s| s.contains(&event.sender))
    }
}

impl EventFilter {
    /// Whether an event of type `t` passes `types` and `not_types` (for
    /// what is not a timeline event: presence, account data, ephemeral).
    pub fn matches_type(&self, t: &str) -> bool {
        !self.not_types.iter().any(|p| glob(p, t))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|p| glob(p, t)))
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ids::{EventId, RoomId};

    fn event(event_type: &str, sender: &str) -> Event {
        Event {
            event_id: EventId::generate(),
            room_id: RoomId::parse("!r:x").unwrap(),
            sender: UserId::parse(sender).unwrap(),
            event_type: event_type.into(),
            state_key: None,
            content: Bytes::from_static(b"{}"),
            origin_server_ts: 0,
            seq: 1,
            pos: 1,
        }
    }

    #[test]
    fn types_senders_and_wildcards() {
        let all = EventFilter::default();
        assert!(all.matches(&event("m.room.message", "@a:x")));
        let rooms_only = EventFilter {
            types: Some(vec!["m.room.*".into()]),
            not_types: vec!["m.room.member".into()],
            ..Default::default()
        };
        assert!(rooms_only.matches(&event("m.room.message", "@a:x")));
        assert!(!rooms_only.matches(&event("m.room.member", "@a:x")));
        assert!(!rooms_only.matches(&event("org.example", "@a:x")));
        let not_b = EventFilter {
            not_senders: vec![UserId::parse("@b:x").unwrap()],
            senders: Some(vec![
                UserId::parse("@a:x").unwrap(),
                UserId::parse("@b:x").unwrap(),
            ]),
            ..Default::default()
        };
        assert!(not_b.matches(&event("m.room.message", "@a:x")));
        assert!(!not_b.matches(&event("m.room.message", "@b:x")));
        assert!(!not_b.matches(&event("m.room.message", "@c:x")));
        assert!(glob("*", ""));
        assert!(glob("a*c*", "abcd"));
        assert!(!glob("a*c", "abcd"));
    }
}
