//! Hostile input: arbitrary bytes, and valid frames with random bytes
//! overwritten or cut off, never panic the decoder; whatever it accepts can be
//! re-encoded and decodes to the same frame.

use axon_schemas::{
    ClientFrame, DecodeLimits, Direction, ErrorCode, ErrorFrame, EventBatch, EventView, Frame,
    FrameEncoder, FrameError, Hello, HistoryPage, HistoryRequest, Login, Ping, Presence,
    PresenceState, PresenceUpdate, Receipt, ReceiptUpdate, ResumePosition, SendAck, SendEvent,
    ServerFrame, Subscribe, Typing, TypingUpdate, Unsubscribe, Welcome, decode,
};
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

const EVENT: EventView<'static> = EventView {
    event_id: "$event:x",
    room_id: "!room:x",
    sender: "@alice:x",
    event_type: "m.room.member",
    state_key: Some(""),
    content: br#"{"membership":"join"}"#,
    origin_server_ts: 1_700_000_000_000,
    seq: 7,
    pos: 70,
};

const POSITION: ResumePosition<'static> = ResumePosition {
    room_id: "!room:x",
    seq: 3,
};

/// One valid frame of every variant, as mutation seeds.
fn seeds() -> Vec<Bytes> {
    let client = [
        ClientFrame::Hello(Hello {
            access_token: "token",
            device_id: Some("DEV"),
            client_name: Some("test"),
            client_version: None,
            resume: vec![POSITION, POSITION],
        }),
        ClientFrame::Login(Login {
            user: "alice",
            password: "pw",
            device_id: None,
            client_name: None,
            client_version: Some("1"),
            resume: vec![POSITION],
        }),
        ClientFrame::Subscribe(Subscribe {
            request_id: 1,
            room_ids: vec!["!a:x", "!b:x"],
            since: vec![POSITION],
        }),
        ClientFrame::Unsubscribe(Unsubscribe {
            request_id: 2,
            room_ids: vec!["!a:x"],
        }),
        ClientFrame::Send(SendEvent {
            request_id: 3,
            room_id: "!a:x",
            txn_id: "t1",
            event_type: "m.room.message",
            state_key: None,
            content: br#"{"body":"hi"}"#,
        }),
        ClientFrame::HistoryRequest(HistoryRequest {
            request_id: 4,
            room_id: "!a:x",
            from_seq: u64::MAX,
            direction: Direction::Backward,
            limit: 50,
        }),
        ClientFrame::Typing(Typing {
            room_id: "!a:x",
            typing: true,
            timeout_ms: 30_000,
        }),
        ClientFrame::Receipt(Receipt {
            room_id: "!a:x",
            event_id: "$e",
            receipt_type: "m.read",
            thread_id: Some("main"),
        }),
        ClientFrame::Presence(Presence {
            state: PresenceState::Unavailable,
            status_msg: Some("away"),
        }),
        ClientFrame::Ping(Ping { nonce: 9 }),
    ];
    let server = [
        ServerFrame::Welcome(Welcome {
            user_id: "@alice:x",
            device_id: "DEV",
            access_token: Some("token"),
            session_id: "s1",
            server_time_ms: 1,
            heartbeat_interval_ms: 30_000,
            max_frame_bytes: 65_536,
        }),
        ServerFrame::Event(EVENT),
        ServerFrame::EventBatch(EventBatch {
            events: vec![EVENT, EVENT],
        }),
        ServerFrame::SendAck(SendAck {
            request_id: 3,
            event_id: "$e",
            room_id: "!a:x",
            seq: 8,
            pos: 80,
        }),
        ServerFrame::HistoryPage(HistoryPage {
            request_id: 4,
            room_id: "!a:x",
            events: vec![EVENT],
            next_from_seq: 6,
            end: false,
        }),
        ServerFrame::TypingUpdate(TypingUpdate {
            room_id: "!a:x",
            user_ids: vec!["@alice:x", "@bob:x"],
        }),
        ServerFrame::ReceiptUpdate(ReceiptUpdate {
            room_id: "!a:x",
            user_id: "@bob:x",
            event_id: "$e",
            receipt_type: "m.read",
            ts: 5,
            thread_id: None,
        }),
        ServerFrame::PresenceUpdate(PresenceUpdate {
            user_id: "@bob:x",
            state: PresenceState::Online,
            status_msg: None,
            last_active_ago_ms: 10,
            currently_active: true,
        }),
        ServerFrame::Error(ErrorFrame {
            request_id: 0,
            code: ErrorCode::Lagged,
            message: "fell behind",
            retry_after_ms: 0,
            close: true,
            resumable: true,
        }),
        ServerFrame::Pong(axon_schemas::Pong { nonce: 9 }),
    ];
    let mut encoder = FrameEncoder::new();
    client
        .into_iter()
        .map(Frame::Client)
        .chain(server.into_iter().map(Frame::Server))
        .map(|frame| encoder.encode(&frame))
        .collect()
}

/// Decoding never panics; if it succeeds, re-encoding and decoding again
/// gives the same frame (nothing the decoder accepts is lost or invented).
fn check(buf: &[u8]) {
    let limits = DecodeLimits::default();
    match decode(buf, &limits) {
        Ok(frame) => {
            let again = FrameEncoder::new().encode(&frame);
            // Re-encoding may be larger than the input (which may share one
            // string among many fields), so only the size limit is relaxed.
            let relaxed = DecodeLimits::with_max_frame_bytes(usize::MAX);
            let decoded: Frame<'_> = decode(&again, &relaxed).expect("re-encoded frame decodes");
            assert_eq!(decoded, frame);
        }
        Err(err) => {
            // Every error maps to a code; exercising Display catches panics there.
            let _ = (err.code(), err.to_string());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_bytes_past_the_identifier_never_panic(
        root in any::<u32>(),
        rest in vec(any::<u8>(), 0..512),
    ) {
        // Force the file identifier so the verifier, not the cheap sniff,
        // sees the garbage.
        let mut bytes = root.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"AXN1");
        bytes.extend_from_slice(&rest);
        check(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        keep_identifier in any::<bool>(),
    ) {
        let seeds = seeds();
        let mut bytes = seeds[seed.index(seeds.len())].to_vec();
        for (at, value) in mutations {
            let at = at.index(bytes.len());
            if keep_identifier && (4..8).contains(&at) {
                continue;
            }
            bytes[at] = value;
        }
        check(&bytes);
    }

    #[test]
    fn truncated_and_extended_frames_never_panic(
        seed in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        tail in vec(any::<u8>(), 0..16),
    ) {
        let seeds = seeds();
        let mut bytes = seeds[seed.index(seeds.len())].to_vec();
        bytes.truncate(cut.index(bytes.len() + 1));
        check(&bytes);
        bytes.extend_from_slice(&tail);
        check(&bytes);
    }
}

#[test]
fn every_seed_decodes_in_its_direction() {
    for (i, seed) in seeds().iter().enumerate() {
        let frame = decode(seed, &DecodeLimits::default()).expect("seed decodes");
        assert_eq!(
            matches!(frame, Frame::Client(_)),
            i < 10,
            "{}",
            frame.name()
        );
    }
}

#[test]
fn every_strict_prefix_of_every_seed_is_handled() {
    for seed in seeds() {
        for len in 0..seed.len() {
            check(&seed[..len]);
        }
        // Below the identifier nothing is even looked at.
        assert!(matches!(
            decode(&seed[..7], &DecodeLimits::default()),
            Err(FrameError::NotAnEnvelope)
        ));
    }
}
