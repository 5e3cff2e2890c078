//! Key encoding: byte strings whose order is the logical order, so that a
//! room's events, a user's devices or a shard's stream are each one
//! contiguous range.
//!
//! Components:
//! - ids (users, rooms, devices, event ids) are written raw and ended by a
//!   `0x00`. Ids are printable ASCII (core validates them when parsed), so
//!   they never contain `0x00`; the terminator sorts below every id byte, so
//!   `"!a"` < `"!ab"` holds for the encoded keys too, and one id's range
//!   never interleaves with another's.
//! - free text (event types, state keys, receipt types, thread ids) may
//!   contain any byte: `0x00` is escaped as `0x00 0xFF` and the text ends
//!   with `0x00 0x01`, which keeps both order and prefix-freedom.
//! - integers are big-endian, so they sort numerically.

use axon_core::StoreError;
use axon_core::ids::{RoomId, UserId};
use axon_core::shard::ShardId;
use axon_core::store::TxnKey;

/// A key under construction.
#[derive(Default)]
pub(super) struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub(super) fn new() -> Self {
        Self(Vec::with_capacity(64))
    }

    /// An id: raw bytes, then `0x00`.
    pub(super) fn id(mut self, id: &str) -> Self {
        debug_assert!(!id.as_bytes().contains(&0), "ids are printable ASCII");
        self.0.extend_from_slice(id.as_bytes());
        self.0.push(0);
        self
    }

    /// Free text: `0x00` escaped as `0x00 0xFF`, ended by `0x00 0x01`.
    pub(super) fn text(mut self, text: &str) -> Self {
        for &b in text.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.extend_from_slice(&[0, 1]);
        self
    }

    pub(super) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(super) fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(super) fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }

    pub(super) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(super) fn build(self) -> Vec<u8> {
        self.0
    }
}

/// `room\0`: the prefix of everything keyed by room.
pub(super) fn room(room: &RoomId) -> Vec<u8> {
    KeyBuf::new().id(room.as_str()).build()
}

/// `user\0`: the prefix of everything keyed by user.
pub(super) fn user(user: &UserId) -> Vec<u8> {
    KeyBuf::new().id(user.as_str()).build()
}

/// An event in the `events` keyspace: `room\0 seq`.
pub(super) fn event(room: &RoomId, seq: u64) -> Vec<u8> {
    KeyBuf::new().id(room.as_str()).u64(seq).build()
}

/// A position in a shard's stream: `shard pos`.
pub(super) fn shard_pos(shard: ShardId, pos: u64) -> Vec<u8> {
    KeyBuf::new().u16(shard.0).u64(pos).build()
}

/// The current-state index: `room\0 type state_key`.
pub(super) fn state(room: &RoomId, event_type: &str, state_key: &str) -> Vec<u8> {
    KeyBuf::new()
        .id(room.as_str())
        .text(event_type)
        .text(state_key)
        .build()
}

/// The membership index: `user\0 room\0`.
pub(super) fn membership(user: &UserId, room: &RoomId) -> Vec<u8> {
    KeyBuf::new().id(user.as_str()).id(room.as_str()).build()
}

/// A transaction record: `room\0 user\0 device\0 txn_id`.
pub(super) fn txn(key: &TxnKey) -> Vec<u8> {
    KeyBuf::new()
        .id(key.room_id.as_str())
        .id(key.user_id.as_str())
        .id(key.txn.device_id.as_str())
        .text(&key.txn.txn_id)
        .build()
}

/// Splits a key that starts with an id into the id and the rest.
pub(super) fn split_id(key: &[u8]) -> Result<(&str, &[u8]), StoreError> {
    let end = key
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| StoreError::Corrupt("key lacks an id terminator".into()))?;
    let id = std::str::from_utf8(&key[..end])
        .map_err(|_| StoreError::Corrupt("id in key is not UTF-8".into()))?;
    Ok((id, &key[end + 1..]))
}

/// Exactly eight big-endian bytes.
pub(super) fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id_string() -> impl Strategy<Value = String> {
        // The bytes core's id grammar allows: printable ASCII.
        proptest::collection::vec(0x21u8..=0x7e, 1..12)
            .prop_map(|v| String::from_utf8(v).expect("printable ASCII is UTF-8"))
    }

    fn text_string() -> impl Strategy<Value = String> {
        // Few distinct characters, including NUL and 0x01, so prefixes and
        // escapes collide often.
        proptest::collection::vec(
            prop_oneof![Just('\0'), Just('\u{1}'), Just('a'), Just('b'), Just('é')],
            0..6,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn id_then_u64_sorts_like_the_pair(a in id_string(), x in any::<u64>(), b in id_string(), y in any::<u64>()) {
            let ka = KeyBuf::new().id(&a).u64(x).build();
            let kb = KeyBuf::new().id(&b).u64(y).build();
            prop_assert_eq!(ka.cmp(&kb), (a.as_bytes(), x).cmp(&(b.as_bytes(), y)));
        }

        #[test]
        fn text_pairs_sort_like_the_strings(a in text_string(), b in text_string(), c in text_string(), d in text_string()) {
            let k1 = KeyBuf::new().text(&a).text(&b).build();
            let k2 = KeyBuf::new().text(&c).text(&d).build();
            prop_assert_eq!(k1.cmp(&k2), (a.as_bytes(), b.as_bytes()).cmp(&(c.as_bytes(), d.as_bytes())));
        }

        #[test]
        fn shard_positions_sort_numerically(s in any::<u16>(), p in any::<u64>(), t in any::<u16>(), q in any::<u64>()) {
            let k1 = shard_pos(ShardId(s), p);
            let k2 = shard_pos(ShardId(t), q);
            prop_assert_eq!(k1.cmp(&k2), (s, p).cmp(&(t, q)));
        }

        #[test]
        fn a_rooms_events_are_one_range(a in id_string(), b in id_string(), x in any::<u64>()) {
            // Every event key of room b lies outside room a's range, unless a == b.
            let (lo, hi) = (KeyBuf::new().id(&a).u64(0).build(), KeyBuf::new().id(&a).u64(u64::MAX).build());
            let k = KeyBuf::new().id(&b).u64(x).build();
            prop_assert_eq!(lo <= k && k <= hi, a == b);
        }

        #[test]
        fn split_id_inverts_id(a in id_string(), x in any::<u64>()) {
            let k = KeyBuf::new().id(&a).u64(x).build();
            let (id, rest) = split_id(&k).expect("well-formed key");
            prop_assert_eq!(id, a.as_str());
            prop_assert_eq!(be_u64(rest).expect("8 bytes"), x);
        }

        #[test]
        fn malformed_keys_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok((_, rest)) = split_id(&bytes) {
                let _ = be_u64(rest);
            }
        }
    }

    #[test]
    fn short_integers_are_corrupt() {
        assert!(matches!(be_u64(&[1, 2, 3]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            split_id(b"no terminator"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
