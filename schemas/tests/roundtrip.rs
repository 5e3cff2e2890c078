//! Every frame variant survives encode -> decode unchanged, for arbitrary
//! field values: empty and non-ASCII strings, optional fields absent and
//! present (including the empty state key), and extreme integers.

use axon_schemas::{
    ClientFrame, DecodeLimits, Direction, ErrorCode, ErrorFrame, EventBatch, EventView, Frame,
    FrameEncoder, Hello, HistoryPage, HistoryRequest, Login, Ping, Pong, Presence, PresenceState,
    PresenceUpdate, Receipt, ReceiptUpdate, ResumePosition, SendAck, SendEvent, ServerFrame,
    Subscribe, Subscribed, Typing, TypingUpdate, Unsubscribe, Welcome, decode, encode_client,
    encode_server,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Large enough for any generated frame: these tests are about fidelity, not
/// about the size limit.
fn limits() -> DecodeLimits {
    DecodeLimits::with_max_frame_bytes(1 << 20)
}

fn text() -> impl Strategy<Value = String> {
    // Mix plain ids, the empty string and arbitrary Unicode (including NUL,
    // which FlatBuffers strings may contain because they are length-prefixed).
    prop_oneof![
        Just(String::new()),
        "[!@$a-z0-9:._-]{1,24}",
        any::<String>(),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn int() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), any::<u64>()]
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..6)
}

fn positions() -> impl Strategy<Value = Vec<(String, u64)>> {
    vec((text(), int()), 0..6)
}

fn view_positions(positions: &[(String, u64)]) -> Vec<ResumePosition<'_>> {
    positions
        .iter()
        .map(|(room_id, seq)| ResumePosition { room_id, seq: *seq })
        .collect()
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Backward), Just(Direction::Forward)]
}

fn presence_state() -> impl Strategy<Value = PresenceState> {
    prop_oneof![
        Just(PresenceState::Online),
        Just(PresenceState::Unavailable),
        Just(PresenceState::Offline),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

/// Owned data behind an `EventView`, since strategies cannot yield borrows.
#[derive(Debug, Clone)]
struct OwnedEvent {
    event_id: String,
    room_id: String,
    sender: String,
    event_type: String,
    state_key: Option<String>,
    content: Vec<u8>,
    origin_server_ts: u64,
    seq: u64,
    pos: u64,
}

impl OwnedEvent {
    fn view(&self) -> EventView<'_> {
        EventView {
            event_id: &self.event_id,
            room_id: &self.room_id,
            sender: &self.sender,
            event_type: &self.event_type,
            state_key: self.state_key.as_deref(),
            content: &self.content,
            origin_server_ts: self.origin_server_ts,
            seq: self.seq,
            pos: self.pos,
        }
    }
}

fn owned_event() -> impl Strategy<Value = OwnedEvent> {
    (
        (text(), text(), text(), text()),
        // State key: absent, the (valid) empty string, or any string.
        prop_oneof![Just(None), Just(Some(String::new())), opt_text()],
        vec(any::<u8>(), 0..64),
        (int(), int(), int()),
    )
        .prop_map(
            |(
                (event_id, room_id, sender, event_type),
                state_key,
                content,
                (origin_server_ts, seq, pos),
            )| OwnedEvent {
                event_id,
                room_id,
                sender,
                event_type,
                state_key,
                content,
                origin_server_ts,
                seq,
                pos,
            },
        )
}

fn owned_events() -> impl Strategy<Value = Vec<OwnedEvent>> {
    vec(owned_event(), 0..5)
}

fn assert_client_roundtrip(frame: ClientFrame<'_>) {
    let bytes = encode_client(&frame);
    let decoded = decode(&bytes, &limits())
        .expect("a frame we encoded must decode")
        .into_client()
        .expect("a client frame must decode as a client frame");
    assert_eq!(decoded, frame);
    // The reusable encoder produces the same bytes as the one-shot helper.
    assert_eq!(
        FrameEncoder::new().encode(&Frame::Client(frame.clone())),
        bytes
    );
}

fn assert_server_roundtrip(frame: ServerFrame<'_>) {
    let bytes = encode_server(&frame);
    let decoded = decode(&bytes, &limits())
        .expect("a frame we encoded must decode")
        .into_server()
        .expect("a server frame must decode as a server frame");
    assert_eq!(decoded, frame);
    assert_eq!(
        FrameEncoder::new().encode(&Frame::Server(frame.clone())),
        bytes
    );
}

proptest! {
    #[test]
    fn hello(
        access_token in text(),
        device_id in opt_text(),
        client_name in opt_text(),
        client_version in opt_text(),
        resume in positions(),
    ) {
        assert_client_roundtrip(ClientFrame::Hello(Hello {
            access_token: &access_token,
            device_id: device_id.as_deref(),
            client_name: client_name.as_deref(),
            client_version: client_version.as_deref(),
            resume: view_positions(&resume),
        }));
    }

    #[test]
    fn login(
        user in text(),
        password in text(),
        device_id in opt_text(),
        client_name in opt_text(),
        client_version in opt_text(),
        resume in positions(),
    ) {
        assert_client_roundtrip(ClientFrame::Login(Login {
            user: &user,
            password: &password,
            device_id: device_id.as_deref(),
            client_name: client_name.as_deref(),
            client_version: client_version.as_deref(),
            resume: view_positions(&resume),
        }));
    }

    #[test]
    fn subscribe(request_id in int(), room_ids in texts(), since in positions()) {
        assert_client_roundtrip(ClientFrame::Subscribe(Subscribe {
            request_id,
            room_ids: strs(&room_ids),
            since: view_positions(&since),
        }));
    }

    #[test]
    fn unsubscribe(request_id in int(), room_ids in texts()) {
        assert_client_roundtrip(ClientFrame::Unsubscribe(Unsubscribe {
            request_id,
            room_ids: strs(&room_ids),
        }));
    }

    #[test]
    fn send(
        request_id in int(),
        (room_id, txn_id, event_type) in (text(), text(), text()),
        state_key in prop_oneof![Just(None), Just(Some(String::new())), opt_text()],
        content in vec(any::<u8>(), 0..256),
    ) {
        assert_client_roundtrip(ClientFrame::Send(SendEvent {
            request_id,
            room_id: &room_id,
            txn_id: &txn_id,
            event_type: &event_type,
            state_key: state_key.as_deref(),
            content: &content,
        }));
    }

    #[test]
    fn history_request(
        request_id in int(),
        room_id in text(),
        from_seq in int(),
        direction in direction(),
        limit in any::<u32>(),
    ) {
        assert_client_roundtrip(ClientFrame::HistoryRequest(HistoryRequest {
            request_id,
            room_id: &room_id,
            from_seq,
            direction,
            limit,
        }));
    }

    #[test]
    fn typing(room_id in text(), typing in any::<bool>(), timeout_ms in any::<u32>()) {
        assert_client_roundtrip(ClientFrame::Typing(Typing {
            room_id: &room_id,
            typing,
            timeout_ms,
        }));
    }

    #[test]
    fn receipt(
        (room_id, event_id, receipt_type) in (text(), text(), text()),
        thread_id in opt_text(),
    ) {
        assert_client_roundtrip(ClientFrame::Receipt(Receipt {
            room_id: &room_id,
            event_id: &event_id,
            receipt_type: &receipt_type,
            thread_id: thread_id.as_deref(),
        }));
    }

    #[test]
    fn presence(state in presence_state(), status_msg in opt_text()) {
        assert_client_roundtrip(ClientFrame::Presence(Presence {
            state,
            status_msg: status_msg.as_deref(),
        }));
    }

    #[test]
    fn ping(nonce in int()) {
        assert_client_roundtrip(ClientFrame::Ping(Ping { nonce }));
    }

    #[test]
    fn welcome(
        (user_id, device_id, session_id) in (text(), text(), text()),
        access_token in opt_text(),
        server_time_ms in int(),
        heartbeat_interval_ms in any::<u32>(),
        max_frame_bytes in any::<u32>(),
    ) {
        assert_server_roundtrip(ServerFrame::Welcome(Welcome {
            user_id: &user_id,
            device_id: &device_id,
            access_token: access_token.as_deref(),
            session_id: &session_id,
            server_time_ms,
            heartbeat_interval_ms,
            max_frame_bytes,
        }));
    }

    #[test]
    fn event(event in owned_event()) {
        let view = event.view();
        assert_server_roundtrip(ServerFrame::Event(view));
        // The router's dedicated path produces the same frame.
        assert_eq!(
            FrameEncoder::new().encode_event(&view),
            encode_server(&ServerFrame::Event(view))
        );
    }

    #[test]
    fn event_batch(events in owned_events()) {
        let views: Vec<_> = events.iter().map(OwnedEvent::view).collect();
        assert_eq!(
            FrameEncoder::new().encode_event_batch(&views),
            encode_server(&ServerFrame::EventBatch(EventBatch { events: views.clone() }))
        );
        assert_server_roundtrip(ServerFrame::EventBatch(EventBatch { events: views }));
    }

    #[test]
    fn send_ack(
        request_id in int(),
        (event_id, room_id) in (text(), text()),
        seq in int(),
        pos in int(),
    ) {
        assert_server_roundtrip(ServerFrame::SendAck(SendAck {
            request_id,
            event_id: &event_id,
            room_id: &room_id,
            seq,
            pos,
        }));
    }

    #[test]
    fn history_page(
        request_id in int(),
        room_id in text(),
        events in owned_events(),
        next_from_seq in int(),
        end in any::<bool>(),
    ) {
        let views: Vec<_> = events.iter().map(OwnedEvent::view).collect();
        let page = HistoryPage {
            request_id,
            room_id: &room_id,
            events: views.clone(),
            next_from_seq,
            end,
        };
        assert_eq!(
            FrameEncoder::new().encode_history_page(request_id, &room_id, &views, next_from_seq, end),
            encode_server(&ServerFrame::HistoryPage(page.clone()))
        );
        assert_server_roundtrip(ServerFrame::HistoryPage(page));
    }

    #[test]
    fn typing_update(room_id in text(), user_ids in texts()) {
        assert_server_roundtrip(ServerFrame::TypingUpdate(TypingUpdate {
            room_id: &room_id,
            user_ids: strs(&user_ids),
        }));
    }

    #[test]
    fn receipt_update(
        (room_id, user_id, event_id, receipt_type) in (text(), text(), text(), text()),
        ts in int(),
        thread_id in opt_text(),
    ) {
        assert_server_roundtrip(ServerFrame::ReceiptUpdate(ReceiptUpdate {
            room_id: &room_id,
            user_id: &user_id,
            event_id: &event_id,
            receipt_type: &receipt_type,
            ts,
            thread_id: thread_id.as_deref(),
        }));
    }

    #[test]
    fn presence_update(
        user_id in text(),
        state in presence_state(),
        status_msg in opt_text(),
        last_active_ago_ms in int(),
        currently_active in any::<bool>(),
    ) {
        assert_server_roundtrip(ServerFrame::PresenceUpdate(PresenceUpdate {
            user_id: &user_id,
            state,
            status_msg: status_msg.as_deref(),
            last_active_ago_ms,
            currently_active,
        }));
    }

    #[test]
    fn error(
        request_id in int(),
        code in error_code(),
        message in text(),
        retry_after_ms in any::<u32>(),
        close in any::<bool>(),
        resumable in any::<bool>(),
    ) {
        assert_server_roundtrip(ServerFrame::Error(ErrorFrame {
            request_id,
            code,
            message: &message,
            retry_after_ms,
            close,
            resumable,
        }));
    }

    #[test]
    fn subscribed(request_id in int(), room_id in text(), head in int()) {
        assert_server_roundtrip(ServerFrame::Subscribed(Subscribed { request_id, room_id: &room_id, head }));
    }

    #[test]
    fn pong(nonce in int()) {
        assert_server_roundtrip(ServerFrame::Pong(Pong { nonce }));
    }
}

#[test]
fn empty_state_key_and_absent_state_key_stay_distinct() {
    let mut event = EventView {
        event_id: "$e",
        room_id: "!r:x",
        sender: "@u:x",
        event_type: "m.room.name",
        state_key: Some(""),
        content: br#"{"name":"x"}"#,
        origin_server_ts: 0,
        seq: 1,
        pos: 1,
    };
    for state_key in [Some(""), None, Some("@u:x")] {
        event.state_key = state_key;
        let bytes = encode_server(&ServerFrame::Event(event));
        let decoded = decode(&bytes, &limits()).unwrap().into_server().unwrap();
        let ServerFrame::Event(decoded) = decoded else {
            panic!("expected Event, got {decoded:?}");
        };
        assert_eq!(decoded.state_key, state_key);
    }
}

#[test]
fn secrets_are_not_printed_by_debug() {
    let hello = ClientFrame::Hello(Hello {
        access_token: "tok-SECRET",
        device_id: None,
        client_name: None,
        client_version: None,
        resume: vec![],
    });
    let login = ClientFrame::Login(Login {
        user: "alice",
        password: "pw-SECRET",
        device_id: None,
        client_name: None,
        client_version: None,
        resume: vec![],
    });
    let welcome = ServerFrame::Welcome(Welcome {
        user_id: "@alice:x",
        device_id: "D",
        access_token: Some("tok-SECRET"),
        session_id: "s",
        server_time_ms: 0,
        heartbeat_interval_ms: 0,
        max_frame_bytes: 0,
    });
    for printed in [
        format!("{hello:?}"),
        format!("{login:?}"),
        format!("{welcome:?}"),
    ] {
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
