//! Value encoding: one format-version byte, then postcard.
//!
//! The version byte lets a later release recognise and migrate records
//! written by this one. Decoding never panics on bad bytes: a wrong version,
//! a truncated record or an invalid id inside it is [`StoreError::Corrupt`].

use axon_core::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format of every value this version writes.
pub(super) const FORMAT_V1: u8 = 1;

/// `FORMAT_V1` followed by the postcard encoding of `value`.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(value, vec![FORMAT_V1])
        .map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

/// Decodes a value written by [`encode`]; `what` names the record in errors.
pub(super) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        }
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "{what}: unknown format version {v}"
        ))),
        None => Err(StoreError::Corrupt(format!("{what}: empty record"))),
    }
}

#[cfg(test)]
mod tests {
    use axon_core::Membership;
    use axon_core::accounts::TokenHash;
    use axon_core::event::Event;
    use axon_core::ids::{DeviceId, EventId, RoomId, UserId};
    use axon_core::store::{TokenKind, TokenRecord};
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    fn event(seq: u64, state_key: Option<String>, content: Vec<u8>) -> Event {
        Event {
            event_id: EventId::generate(),
            room_id: RoomId::parse("!room:example.org").expect("valid room id"),
            sender: UserId::parse("@alice:example.org").expect("valid user id"),
            event_type: "m.room.message".into(),
            state_key,
            content: Bytes::from(content),
            origin_server_ts: 1_700_000_000_000,
            seq,
            pos: seq.wrapping_mul(3),
        }
    }

    proptest! {
        #[test]
        fn events_round_trip(seq in any::<u64>(), key in proptest::option::of(".{0,8}"), content in proptest::collection::vec(any::<u8>(), 0..300)) {
            let e = event(seq, key, content);
            let bytes = encode(&e).expect("encodes");
            prop_assert_eq!(bytes[0], FORMAT_V1);
            prop_assert_eq!(decode::<Event>("event", &bytes).expect("decodes"), e);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<Event>("event", &bytes);
            let _ = decode::<TokenRecord>("token", &bytes);
            let _ = decode::<Membership>("membership", &bytes);
        }

        #[test]
        fn truncated_events_are_corrupt(cut in 0usize..60) {
            let bytes = encode(&event(7, Some(String::new()), b"{\"body\":\"hello\"}".to_vec())).expect("encodes");
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(matches!(decode::<Event>("event", &bytes[..cut]), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn tokens_round_trip() {
        let t = TokenRecord {
            hash: TokenHash([7; 32]),
            kind: TokenKind::Refresh,
            user_id: UserId::parse("@bob:x").expect("valid user id"),
            device_id: DeviceId::parse("DEV").expect("valid device id"),
            created_ts: 5,
            expires_ts: Some(9),
        };
        assert_eq!(
            decode::<TokenRecord>("token", &encode(&t).expect("encodes")).expect("decodes"),
            t
        );
    }

    #[test]
    fn wrong_version_and_invalid_ids_are_corrupt() {
        let mut bytes = encode(&event(1, None, b"{}".to_vec())).expect("encodes");
        bytes[0] = 9;
        assert!(
            matches!(decode::<Event>("event", &bytes), Err(StoreError::Corrupt(m)) if m.contains("version 9"))
        );
        assert!(matches!(
            decode::<Event>("event", &[]),
            Err(StoreError::Corrupt(_))
        ));
        // A user id that core's parser refuses is corrupt, not a panic.
        let bad = encode(&"not-a-user-id").expect("encodes");
        assert!(matches!(
            decode::<UserId>("user id", &bad),
            Err(StoreError::Corrupt(_))
        ));
    }
}
