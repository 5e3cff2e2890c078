//! The native protocol state machine, [`axon_core::Session`], driven with
//! encoded frames on the real pipeline (embedded store → sequencer → router):
//! the handshake, bad frames, subscribe with replay and resume, sends and
//! their idempotency, live delivery, the end of a subscription with the
//! membership, history paging, receipts, and the limits (send rate, lag,
//! subscriptions), and the connection loop's handshake and idle deadlines.
//! No sockets: these are the rules both faces share, and what
//! `docs/protocol.md` promises a client.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axon_core::room::{JoinRule, Membership};
use axon_core::router::LagPolicy;
use axon_core::sequencer::Appended;
use axon_core::store::Store;
use axon_core::{
    Accounts, CloseReason, Ephemeral, NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer,
    SequencerConfig, ServerName, Services, Session, SessionConfig, UserId,
};
use axon_schemas::{
    ClientFrame, DecodeLimits, Direction, ErrorCode, Hello, HistoryRequest, Login, Ping, Presence,
    PresenceState, Receipt, ResumePosition, SendEvent, ServerFrame, Subscribe, Typing, Unsubscribe,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use axon_transport::tracker::TrafficCounters;
use axon_transport::{FrameIo, IoError, Timeouts, drive};
use bytes::Bytes;

/// How long a test waits for live events before it fails (a hang guard,
/// not a timing assertion).
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Decoded server frames, owned, so tests can compare them.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Welcome {
        user_id: String,
        device_id: String,
        access_token: Option<String>,
        heartbeat_interval_ms: u32,
        max_frame_bytes: u32,
    },
    Event {
        room_id: String,
        seq: u64,
        event_id: String,
        sender: String,
        event_type: String,
        state_key: Option<String>,
    },
    SendAck {
        request_id: u64,
        event_id: String,
        room_id: String,
        seq: u64,
    },
    Subscribed {
        request_id: u64,
        room_id: String,
        head: u64,
    },
    History {
        request_id: u64,
        room_id: String,
        seqs: Vec<u64>,
        next_from_seq: u64,
        end: bool,
    },
    Error {
        request_id: u64,
        code: ErrorCode,
        retry_after_ms: u32,
        close: bool,
        resumable: bool,
    },
    Pong(u64),
    Typing {
        room_id: String,
        users: Vec<String>,
    },
    Receipt {
        room_id: String,
        user_id: String,
        event_id: String,
        receipt_type: String,
    },
    Presence {
        user_id: String,
        state: PresenceState,
        status_msg: Option<String>,
        currently_active: bool,
    },
    Other(&'static str),
}

fn decode_one(bytes: &Bytes) -> Got {
    let frame = axon_schemas::decode(bytes, &DecodeLimits::default())
        .and_then(|f| f.into_server())
        .expect("the session only writes valid server frames");
    match frame {
        ServerFrame::Welcome(w) => Got::Welcome {
            user_id: w.user_id.into(),
            device_id: w.device_id.into(),
            access_token: w.access_token.map(Into::into),
            heartbeat_interval_ms: w.heartbeat_interval_ms,
            max_frame_bytes: w.max_frame_bytes,
        },
        ServerFrame::Event(e) => Got::Event {
            room_id: e.room_id.into(),
            seq: e.seq,
            event_id: e.event_id.into(),
            sender: e.sender.into(),
            event_type: e.event_type.into(),
            state_key: e.state_key.map(Into::into),
        },
        ServerFrame::SendAck(a) => Got::SendAck {
            request_id: a.request_id,
            event_id: a.event_id.into(),
            room_id: a.room_id.into(),
            seq: a.seq,
        },
        ServerFrame::Subscribed(s) => Got::Subscribed {
            request_id: s.request_id,
            room_id: s.room_id.into(),
            head: s.head,
        },
        ServerFrame::HistoryPage(p) => Got::History {
            request_id: p.request_id,
            room_id: p.room_id.into(),
            seqs: p.events.iter().map(|e| e.seq).collect(),
            next_from_seq: p.next_from_seq,
            end: p.end,
        },
        ServerFrame::Error(e) => Got::Error {
            request_id: e.request_id,
            code: e.code,
            retry_after_ms: e.retry_after_ms,
            close: e.close,
            resumable: e.resumable,
        },
        ServerFrame::Pong(p) => Got::Pong(p.nonce),
        ServerFrame::TypingUpdate(t) => Got::Typing {
            room_id: t.room_id.into(),
            users: t.user_ids.iter().map(|u| (*u).to_owned()).collect(),
        },
        ServerFrame::ReceiptUpdate(r) => Got::Receipt {
            room_id: r.room_id.into(),
            user_id: r.user_id.into(),
            event_id: r.event_id.into(),
            receipt_type: r.receipt_type.into(),
        },
        ServerFrame::PresenceUpdate(p) => Got::Presence {
            user_id: p.user_id.into(),
            state: p.state,
            status_msg: p.status_msg.map(Into::into),
            currently_active: p.currently_active,
        },
        other => Got::Other(other.name()),
    }
}

/// Decodes and empties `out`.
fn read(out: &mut Vec<Bytes>) -> Vec<Got> {
    out.drain(..).map(|b| decode_one(&b)).collect()
}

/// The seqs of the `Event` frames among `frames`, in order.
fn event_seqs(frames: &[Got]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            Got::Event { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// An `Error` frame that does not close the connection.
fn soft_error(request_id: u64, code: ErrorCode) -> Got {
    Got::Error {
        request_id,
        code,
        retry_after_ms: 0,
        close: false,
        resumable: false,
    }
}

/// The final `Error` frame before a close.
fn closing_error(code: ErrorCode, resumable: bool) -> Got {
    Got::Error {
        request_id: 0,
        code,
        retry_after_ms: 0,
        close: true,
        resumable,
    }
}

// ---------------------------------------------------------------------------
// Client frames.

fn hello(token: &str) -> ClientFrame<'_> {
    ClientFrame::Hello(Hello {
        access_token: token,
        device_id: None,
        client_name: Some("session-test"),
        client_version: None,
        resume: Vec::new(),
    })
}

fn send<'a>(request_id: u64, room: &'a str, txn_id: &'a str, content: &'a str) -> ClientFrame<'a> {
    ClientFrame::Send(SendEvent {
        request_id,
        room_id: room,
        txn_id,
        event_type: "m.room.message",
        state_key: None,
        content: content.as_bytes(),
    })
}

fn subscribe<'a>(
    request_id: u64,
    room_ids: Vec<&'a str>,
    since: Vec<ResumePosition<'a>>,
) -> ClientFrame<'a> {
    ClientFrame::Subscribe(Subscribe {
        request_id,
        room_ids,
        since,
    })
}

fn history(
    request_id: u64,
    room: &str,
    from_seq: u64,
    direction: Direction,
    limit: u32,
) -> ClientFrame<'_> {
    ClientFrame::HistoryRequest(HistoryRequest {
        request_id,
        room_id: room,
        from_seq,
        direction,
        limit,
    })
}

/// Hands one frame to the session; returns the result and what it wrote.
async fn call(
    session: &mut Session,
    frame: &ClientFrame<'_>,
) -> (Result<(), CloseReason>, Vec<Got>) {
    raw(session, &axon_schemas::encode_client(frame)).await
}

/// Hands raw bytes to the session.
async fn raw(session: &mut Session, bytes: &[u8]) -> (Result<(), CloseReason>, Vec<Got>) {
    let mut out = Vec::new();
    let mut result = session.on_frame(bytes, &mut out).await;
    // Sends are answered once durable: wait for them, as the connection
    // loop would.
    while result.is_ok() && session.has_pending_sends() {
        let settled = session.sends_settled().await;
        result = session.answer_sends(settled, &mut out);
    }
    (result, read(&mut out))
}

/// Hands one frame to the session and expects it to stay open.
async fn ok(session: &mut Session, frame: &ClientFrame<'_>) -> Vec<Got> {
    let (result, frames) = call(session, frame).await;
    assert_eq!(result, Ok(()), "frames written: {frames:?}");
    frames
}

/// What is ready now, without waiting.
async fn pump_now(session: &mut Session) -> Vec<Got> {
    let mut out = Vec::new();
    session
        .pump_events(&mut out)
        .await
        .expect("pump_events without a close");
    read(&mut out)
}

/// Waits for live events until `count` `Event` frames have arrived.
async fn live_events(session: &mut Session, count: usize) -> Vec<Got> {
    let mut got = Vec::new();
    while event_seqs(&got).len() < count {
        tokio::time::timeout(WAIT, session.events_ready())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} live events arrived", got.len()));
        got.extend(pump_now(session).await);
    }
    got
}

// ---------------------------------------------------------------------------
// A server without sockets.

/// Two users in one room, with a subscribed session each.
struct Pair {
    alice: UserId,
    alice_token: String,
    alice_session: Session,
    bob: UserId,
    bob_session: Session,
    room: RoomId,
}

struct Harness {
    services: Services,
    server: ServerName,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open the store"),
        );
        let router = Arc::new(RoomRouter::new());
        let sequencer = Sequencer::start(
            store.clone(),
            router.clone(),
            SequencerConfig {
                shards: 2,
                ..Default::default()
            },
        )
        .await
        .expect("start the sequencer");
        let server = ServerName::parse("test.local").expect("server name");
        let accounts = Accounts::new(store.clone(), server.clone(), None);
        Self {
            services: Services {
                sequencer,
                ephemeral: Ephemeral::start(router.clone(), store.clone()),
                store,
                accounts,
                router,
            },
            server,
            _dir: dir,
        }
    }

    /// A user without a password and an access token of a new device.
    async fn user(&self, localpart: &str) -> (UserId, String) {
        let record = self
            .services
            .accounts
            .create_user(localpart, None, false)
            .await
            .expect("create user");
        let token = self.token(&record.user_id).await;
        (record.user_id, token)
    }

    /// An access token of a new device of `user`.
    async fn token(&self, user: &UserId) -> String {
        let login = self
            .services
            .accounts
            .open_session(user, None, None)
            .await
            .expect("open session");
        login.access_token.expose().to_owned()
    }

    /// A public room created by `creator` and joined by `members`.
    async fn room(&self, creator: &UserId, members: &[&UserId]) -> RoomId {
        let room = RoomId::random(&self.server);
        let mut creation = RoomCreation::new(room.clone(), creator.clone());
        creation.join_rule = JoinRule::Public;
        self.services
            .sequencer
            .append_all(creation.events())
            .await
            .expect("create room");
        for member in members {
            self.services
                .sequencer
                .append(NewEvent::membership(
                    &room,
                    member,
                    member,
                    Membership::Join,
                ))
                .await
                .expect("join");
        }
        room
    }

    /// Appends a message through the sequencer, as another connection would.
    async fn message(&self, room: &RoomId, sender: &UserId, n: usize) -> Appended {
        self.services
            .sequencer
            .append(NewEvent::message(
                room,
                sender,
                format!(r#"{{"msgtype":"m.text","body":"{n}"}}"#),
            ))
            .await
            .expect("append message")
    }

    /// Appends `count` messages.
    async fn messages(&self, room: &RoomId, sender: &UserId, count: usize) {
        for n in 0..count {
            self.message(room, sender, n).await;
        }
    }

    async fn head(&self, room: &RoomId) -> u64 {
        self.services
            .store
            .room_head(room)
            .await
            .expect("room head")
            .expect("the room exists")
    }

    fn session(&self, config: SessionConfig) -> Session {
        Session::new(self.services.clone(), Arc::new(config))
    }

    /// A session that has said hello with `token`.
    async fn open(&self, config: SessionConfig, token: &str) -> Session {
        let mut session = self.session(config);
        let frames = ok(&mut session, &hello(token)).await;
        assert!(
            matches!(frames.as_slice(), [Got::Welcome { .. }]),
            "expected one Welcome, got {frames:?}"
        );
        session
    }

    /// How many receipts are stored for `room`.
    async fn receipt_count(&self, room: &RoomId) -> usize {
        self.services
            .store
            .receipts(room)
            .await
            .expect("receipts")
            .len()
    }

    /// Alice and bob, both joined to a new room and each with a session
    /// subscribed to it (live only).
    async fn two_subscribed(&self) -> Pair {
        let (alice, alice_token) = self.user("alice").await;
        let (bob, bob_token) = self.user("bob").await;
        let room = self.room(&alice, &[&bob]).await;
        let alice_session = self
            .subscribed(SessionConfig::default(), &alice_token, &room)
            .await;
        let bob_session = self
            .subscribed(SessionConfig::default(), &bob_token, &room)
            .await;
        Pair {
            alice,
            alice_token,
            alice_session,
            bob,
            bob_session,
            room,
        }
    }

    /// A session that has said hello and subscribed to `room` (live only).
    async fn subscribed(&self, config: SessionConfig, token: &str, room: &RoomId) -> Session {
        let mut session = self.open(config, token).await;
        let frames = ok(&mut session, &subscribe(1, vec![room.as_str()], vec![])).await;
        assert!(
            matches!(frames.as_slice(), [Got::Subscribed { .. }]),
            "expected Subscribed, got {frames:?}"
        );
        session
    }
}

// ---------------------------------------------------------------------------
// Handshake.

#[tokio::test]
async fn frames_before_hello_close_with_unexpected_frame() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let room = h.room(&alice, &[]).await;
    let room = room.as_str();
    let frames = [
        send(1, room, "t1", "{}"),
        subscribe(2, vec![room], vec![]),
        history(3, room, u64::MAX, Direction::Backward, 10),
        ClientFrame::Unsubscribe(Unsubscribe {
            request_id: 4,
            room_ids: vec![room],
        }),
    ];
    for frame in &frames {
        let mut session = h.session(SessionConfig::default());
        let (result, written) = call(&mut session, frame).await;
        let reason = result.expect_err("a frame before Hello closes the connection");
        assert_eq!(reason.code, ErrorCode::UnexpectedFrame, "{}", frame.name());
        assert!(!reason.resumable);
        assert_eq!(reason.websocket_code(), 4003);
        assert_eq!(
            written,
            vec![closing_error(ErrorCode::UnexpectedFrame, false)]
        );
        assert!(!session.is_open());
        assert_eq!(session.identity(), None);
    }
}

#[tokio::test]
async fn ping_before_hello_is_answered_and_hello_still_works() {
    let h = Harness::new().await;
    let (_, token) = h.user("alice").await;
    let mut session = h.session(SessionConfig::default());
    let frames = ok(&mut session, &ClientFrame::Ping(Ping { nonce: 42 })).await;
    assert_eq!(frames, vec![Got::Pong(42)]);
    assert!(!session.is_open());
    let frames = ok(&mut session, &hello(&token)).await;
    assert!(matches!(frames.as_slice(), [Got::Welcome { .. }]));
    assert!(session.is_open());
    let frames = ok(&mut session, &ClientFrame::Ping(Ping { nonce: 7 })).await;
    assert_eq!(frames, vec![Got::Pong(7)]);
}

#[tokio::test]
async fn hello_with_a_wrong_token_is_refused_and_closes() {
    let h = Harness::new().await;
    h.user("alice").await;
    for token in ["not-a-token", "", "axon_at_0000000000000000"] {
        let mut session = h.session(SessionConfig::default());
        let (result, frames) = call(&mut session, &hello(token)).await;
        let reason = result.expect_err("a bad token closes");
        assert_eq!(reason.code, ErrorCode::Unauthenticated);
        assert!(!reason.resumable);
        assert_eq!(
            frames,
            vec![closing_error(ErrorCode::Unauthenticated, false)]
        );
        assert!(!session.is_open());
    }
}

#[tokio::test]
async fn hello_with_a_good_token_welcomes_the_tokens_user_and_device() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let identity = h
        .services
        .accounts
        .authenticate(&token)
        .await
        .expect("the token is valid");
    let mut session = h.session(SessionConfig::default());
    let frames = ok(&mut session, &hello(&token)).await;
    let defaults = SessionConfig::default();
    assert_eq!(
        frames,
        vec![Got::Welcome {
            user_id: alice.as_str().into(),
            device_id: identity.device_id.as_str().into(),
            access_token: None,
            heartbeat_interval_ms: defaults.heartbeat_interval.as_millis() as u32,
            max_frame_bytes: defaults.max_frame_bytes as u32,
        }]
    );
    assert!(session.is_open());
    assert_eq!(session.identity(), Some(&identity));

    // A second handshake on an open session is refused, without a close.
    let frames = ok(&mut session, &hello(&token)).await;
    assert_eq!(frames, vec![soft_error(0, ErrorCode::UnexpectedFrame)]);
    assert!(session.is_open());
}

#[tokio::test]
async fn login_returns_a_token_that_works_in_another_session() {
    let h = Harness::new().await;
    let alice = h
        .services
        .accounts
        .create_user("alice", Some("correct horse".into()), false)
        .await
        .expect("create user")
        .user_id;

    // By localpart.
    let mut first = h.session(SessionConfig::default());
    let frames = ok(
        &mut first,
        &ClientFrame::Login(Login {
            user: "alice",
            password: "correct horse",
            device_id: None,
            client_name: Some("test"),
            client_version: None,
            resume: Vec::new(),
        }),
    )
    .await;
    let [
        Got::Welcome {
            user_id,
            device_id,
            access_token: Some(token),
            ..
        },
    ] = frames.as_slice()
    else {
        panic!("expected a Welcome with an access token, got {frames:?}");
    };
    assert_eq!(user_id, alice.as_str());
    assert!(first.is_open());

    let mut second = h.session(SessionConfig::default());
    let frames = ok(&mut second, &hello(token)).await;
    assert!(
        matches!(
            frames.as_slice(),
            [Got::Welcome { user_id: u, device_id: d, access_token: None, .. }]
                if u == alice.as_str() && d == device_id
        ),
        "the login's token opens a session on the same device: {frames:?}"
    );

    // By full user id, on a named device.
    let mut third = h.session(SessionConfig::default());
    let frames = ok(
        &mut third,
        &ClientFrame::Login(Login {
            user: alice.as_str(),
            password: "correct horse",
            device_id: Some("PHONE"),
            client_name: None,
            client_version: None,
            resume: Vec::new(),
        }),
    )
    .await;
    assert!(
        matches!(
            frames.as_slice(),
            [Got::Welcome { device_id, access_token: Some(_), .. }] if device_id == "PHONE"
        ),
        "{frames:?}"
    );

    // A wrong password and an unknown user close alike.
    for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
        let mut session = h.session(SessionConfig::default());
        let (result, frames) = call(
            &mut session,
            &ClientFrame::Login(Login {
                user,
                password,
                device_id: None,
                client_name: None,
                client_version: None,
                resume: Vec::new(),
            }),
        )
        .await;
        let reason = result.expect_err("bad credentials close");
        assert_eq!(reason.code, ErrorCode::Unauthenticated);
        assert_eq!(
            frames,
            vec![closing_error(ErrorCode::Unauthenticated, false)]
        );
        assert!(!session.is_open());
    }
}

// ---------------------------------------------------------------------------
// Bad frames.

#[tokio::test]
async fn bad_frames_get_an_error_and_the_session_stays_open() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let room = h.room(&alice, &[]).await;
    let config = SessionConfig {
        max_frame_bytes: 512,
        ..SessionConfig::default()
    };
    let mut session = h.session(config.clone());

    // Garbage is tolerated before the hello too.
    let (result, frames) = raw(&mut session, b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(result, Ok(()));
    assert_eq!(frames, vec![soft_error(0, ErrorCode::BadFrame)]);
    assert!(!session.is_open());
    let frames = ok(&mut session, &hello(&token)).await;
    assert!(
        matches!(
            frames.as_slice(),
            [Got::Welcome {
                max_frame_bytes: 512,
                ..
            }]
        ),
        "Welcome carries the configured limit: {frames:?}"
    );

    let valid = axon_schemas::encode_client(&send(1, room.as_str(), "t1", r#"{"body":"hi"}"#));
    let truncated = &valid[..valid.len() / 2];
    let body = format!(r#"{{"body":"{}"}}"#, "x".repeat(1000));
    let too_large = axon_schemas::encode_client(&send(2, room.as_str(), "t2", &body));
    assert!(too_large.len() > config.max_frame_bytes);
    let server_frame =
        axon_schemas::encode_server(&ServerFrame::Pong(axon_schemas::Pong { nonce: 1 }));

    let cases: [(&str, &[u8], ErrorCode); 5] = [
        (
            "garbage",
            &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8],
            ErrorCode::BadFrame,
        ),
        ("empty", &[], ErrorCode::BadFrame),
        ("truncated", truncated, ErrorCode::BadFrame),
        ("too large", &too_large, ErrorCode::FrameTooLarge),
        ("server frame", &server_frame, ErrorCode::UnexpectedFrame),
    ];
    for (what, bytes, code) in cases {
        let (result, frames) = raw(&mut session, bytes).await;
        assert_eq!(result, Ok(()), "{what}");
        assert_eq!(frames, vec![soft_error(0, code)], "{what}");
        assert!(session.is_open(), "{what}");
    }
    // The oversized send was not stored.
    assert_eq!(h.head(&room).await, 4);

    // And the session still works.
    let frames = ok(&mut session, &send(3, room.as_str(), "t3", "{}")).await;
    assert!(
        matches!(frames.as_slice(), [Got::SendAck { seq: 5, .. }]),
        "{frames:?}"
    );
}

#[tokio::test]
async fn too_many_bad_frames_close_the_session() {
    let h = Harness::new().await;
    let (_, token) = h.user("alice").await;
    let config = SessionConfig {
        max_bad_frames: 3,
        ..SessionConfig::default()
    };
    let mut session = h.open(config, &token).await;
    // `max_bad_frames` are tolerated, good frames in between do not reset
    // the count, and the next bad one closes.
    for n in 0..3 {
        let (result, frames) = raw(&mut session, b"garbage!garbage!").await;
        assert_eq!(result, Ok(()), "bad frame {n}");
        assert_eq!(frames, vec![soft_error(0, ErrorCode::BadFrame)]);
        assert_eq!(
            ok(&mut session, &ClientFrame::Ping(Ping { nonce: n })).await,
            vec![Got::Pong(n)]
        );
    }
    let (result, frames) = raw(&mut session, b"garbage!garbage!").await;
    let reason = result.expect_err("one bad frame too many closes");
    assert_eq!(reason.code, ErrorCode::BadFrame);
    assert!(!reason.resumable);
    assert_eq!(frames, vec![closing_error(ErrorCode::BadFrame, false)]);
}

// ---------------------------------------------------------------------------
// Subscribe.

#[tokio::test]
async fn subscribe_checks_the_room_and_the_membership() {
    let h = Harness::new().await;
    let (alice, alice_token) = h.user("alice").await;
    let (_, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[]).await;
    let unknown = RoomId::random(&h.server);

    let mut bob = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(&mut bob, &subscribe(11, vec![room.as_str()], vec![])).await;
    assert_eq!(frames, vec![soft_error(11, ErrorCode::Forbidden)]);
    let frames = ok(&mut bob, &subscribe(12, vec![unknown.as_str()], vec![])).await;
    assert_eq!(frames, vec![soft_error(12, ErrorCode::NotFound)]);
    let frames = ok(&mut bob, &subscribe(13, vec!["not-a-room-id"], vec![])).await;
    assert_eq!(frames, vec![soft_error(13, ErrorCode::InvalidArgument)]);
    assert_eq!(bob.subscriptions(), 0);
    assert_eq!(h.services.router.subscriber_count(&room), 0);

    // A member: Subscribed at the head, nothing replayed.
    h.messages(&room, &alice, 3).await;
    let head = h.head(&room).await;
    let mut alice_session = h.open(SessionConfig::default(), &alice_token).await;
    let frames = ok(
        &mut alice_session,
        &subscribe(14, vec!["not-a-room-id", room.as_str()], vec![]),
    )
    .await;
    assert_eq!(
        frames,
        vec![
            soft_error(14, ErrorCode::InvalidArgument),
            Got::Subscribed {
                request_id: 14,
                room_id: room.as_str().into(),
                head,
            },
        ],
        "each room of a Subscribe is answered on its own"
    );
    assert_eq!(alice_session.subscriptions(), 1);
    assert_eq!(h.services.router.subscriber_count(&room), 1);
}

#[tokio::test]
async fn subscribe_since_replays_in_order_before_subscribed() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    h.messages(&room, &alice, 6).await;
    let head = h.head(&room).await;

    // Since a seq: exactly the events after it, then Subscribed.
    let mut session = h.open(SessionConfig::default(), &bob_token).await;
    let since = head - 3;
    let frames = ok(
        &mut session,
        &subscribe(
            21,
            vec![],
            vec![ResumePosition {
                room_id: room.as_str(),
                seq: since,
            }],
        ),
    )
    .await;
    assert_eq!(event_seqs(&frames), vec![head - 2, head - 1, head]);
    assert_eq!(frames.len(), 4);
    assert_eq!(
        frames.last(),
        Some(&Got::Subscribed {
            request_id: 21,
            room_id: room.as_str().into(),
            head,
        })
    );

    // Since 0: the whole timeline from seq 1; a room named in both lists
    // is subscribed once, with the replay.
    let mut session = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(
        &mut session,
        &subscribe(
            22,
            vec![room.as_str()],
            vec![ResumePosition {
                room_id: room.as_str(),
                seq: 0,
            }],
        ),
    )
    .await;
    assert_eq!(event_seqs(&frames), (1..=head).collect::<Vec<_>>());
    let subscribed = frames
        .iter()
        .filter(|f| matches!(f, Got::Subscribed { .. }))
        .count();
    assert_eq!(subscribed, 1);
    assert!(matches!(
        frames.last(),
        Some(Got::Subscribed { request_id: 22, .. })
    ));
    assert_eq!(session.subscriptions(), 1);

    // Since beyond the head: nothing replayed, live from the head.
    let mut session = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(
        &mut session,
        &subscribe(
            23,
            vec![],
            vec![ResumePosition {
                room_id: room.as_str(),
                seq: head + 100,
            }],
        ),
    )
    .await;
    assert_eq!(
        frames,
        vec![Got::Subscribed {
            request_id: 23,
            room_id: room.as_str().into(),
            head,
        }]
    );
    h.message(&room, &alice, 99).await;
    assert_eq!(
        event_seqs(&live_events(&mut session, 1).await),
        vec![head + 1]
    );
}

#[tokio::test]
async fn subscription_limit_counts_distinct_rooms() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let first = h.room(&alice, &[]).await;
    let second = h.room(&alice, &[]).await;
    let config = SessionConfig {
        max_subscriptions: 1,
        ..SessionConfig::default()
    };
    let mut session = h.open(config, &token).await;
    let frames = ok(&mut session, &subscribe(1, vec![first.as_str()], vec![])).await;
    assert!(matches!(frames.as_slice(), [Got::Subscribed { .. }]));
    let frames = ok(&mut session, &subscribe(2, vec![second.as_str()], vec![])).await;
    assert_eq!(frames, vec![soft_error(2, ErrorCode::TooManySubscriptions)]);
    assert_eq!(session.subscriptions(), 1);
    // Subscribing again to a subscribed room is not a new subscription.
    let frames = ok(&mut session, &subscribe(3, vec![first.as_str()], vec![])).await;
    assert!(
        matches!(frames.as_slice(), [Got::Subscribed { request_id: 3, .. }]),
        "{frames:?}"
    );
    // Unsubscribing frees the slot.
    let frames = ok(
        &mut session,
        &ClientFrame::Unsubscribe(Unsubscribe {
            request_id: 4,
            room_ids: vec![first.as_str()],
        }),
    )
    .await;
    assert!(frames.is_empty(), "Unsubscribe is not answered: {frames:?}");
    assert_eq!(session.subscriptions(), 0);
    let frames = ok(&mut session, &subscribe(5, vec![second.as_str()], vec![])).await;
    assert!(
        matches!(frames.as_slice(), [Got::Subscribed { request_id: 5, .. }]),
        "{frames:?}"
    );
}

#[tokio::test]
async fn unsubscribe_stops_live_events() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut session = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;
    h.message(&room, &alice, 1).await;
    let head = h.head(&room).await;
    assert_eq!(event_seqs(&live_events(&mut session, 1).await), vec![head]);

    ok(
        &mut session,
        &ClientFrame::Unsubscribe(Unsubscribe {
            request_id: 1,
            room_ids: vec![room.as_str()],
        }),
    )
    .await;
    assert_eq!(session.subscriptions(), 0);
    assert_eq!(h.services.router.subscriber_count(&room), 0);
    h.messages(&room, &alice, 3).await;
    assert_eq!(pump_now(&mut session).await, vec![]);
}

// ---------------------------------------------------------------------------
// Send.

#[tokio::test]
async fn send_is_acked_and_idempotent_per_device() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut watcher = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;
    let head = h.head(&room).await;

    let mut session = h.open(SessionConfig::default(), &token).await;
    let frames = ok(
        &mut session,
        &send(5, room.as_str(), "txn-1", r#"{"body":"hi"}"#),
    )
    .await;
    let [
        Got::SendAck {
            request_id: 5,
            event_id,
            room_id,
            seq,
        },
    ] = frames.as_slice()
    else {
        panic!("expected a SendAck for request 5, got {frames:?}");
    };
    assert_eq!(*seq, head + 1);
    assert_eq!(room_id, room.as_str());
    let stored = h
        .services
        .store
        .event(&axon_core::EventId::parse(event_id).expect("an event id"))
        .await
        .expect("read")
        .expect("the acknowledged event is stored");
    assert_eq!(stored.seq, head + 1);
    assert_eq!(stored.sender, alice);

    // The same txn_id again (even with other content): the first result.
    let frames = ok(
        &mut session,
        &send(6, room.as_str(), "txn-1", r#"{"body":"again"}"#),
    )
    .await;
    assert_eq!(
        frames,
        vec![Got::SendAck {
            request_id: 6,
            event_id: event_id.clone(),
            room_id: room.as_str().into(),
            seq: head + 1,
        }]
    );
    assert_eq!(h.head(&room).await, head + 1, "a retry stores nothing");

    // The same txn_id from another session of the same device: still the first.
    let mut same_device = h.open(SessionConfig::default(), &token).await;
    let frames = ok(
        &mut same_device,
        &send(7, room.as_str(), "txn-1", r#"{"body":"hi"}"#),
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Got::SendAck { event_id: e, seq: s, .. }] if e == event_id && *s == head + 1),
        "{frames:?}"
    );

    // The same txn_id from another device of the same user: a new event.
    let other_token = h.token(&alice).await;
    let mut other_device = h.open(SessionConfig::default(), &other_token).await;
    let frames = ok(
        &mut other_device,
        &send(8, room.as_str(), "txn-1", r#"{"body":"hi"}"#),
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Got::SendAck { event_id: e, seq: s, .. }] if e != event_id && *s == head + 2),
        "{frames:?}"
    );

    // Subscribers saw each stored event once.
    assert_eq!(
        event_seqs(&pump_now(&mut watcher).await),
        vec![head + 1, head + 2]
    );
}

#[tokio::test]
async fn send_refusals_echo_the_request_id() {
    let h = Harness::new().await;
    let (alice, alice_token) = h.user("alice").await;
    let (_, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[]).await;
    let unknown = RoomId::random(&h.server);

    let mut bob = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(&mut bob, &send(31, room.as_str(), "t", "{}")).await;
    assert_eq!(frames, vec![soft_error(31, ErrorCode::Forbidden)]);
    let frames = ok(&mut bob, &send(32, unknown.as_str(), "t", "{}")).await;
    assert_eq!(frames, vec![soft_error(32, ErrorCode::NotFound)]);

    let mut alice_session = h.open(SessionConfig::default(), &alice_token).await;
    for (n, content) in ["[1, 2]", "\"text\"", "{", ""].into_iter().enumerate() {
        let request_id = 40 + n as u64;
        let frames = ok(
            &mut alice_session,
            &send(request_id, room.as_str(), "t", content),
        )
        .await;
        assert_eq!(
            frames,
            vec![soft_error(request_id, ErrorCode::InvalidArgument)],
            "{content:?}"
        );
    }
    let frames = ok(&mut alice_session, &send(50, "no-room", "t", "{}")).await;
    assert_eq!(frames, vec![soft_error(50, ErrorCode::InvalidArgument)]);
    let frames = ok(&mut alice_session, &send(51, room.as_str(), "", "{}")).await;
    assert_eq!(
        frames,
        vec![soft_error(51, ErrorCode::InvalidArgument)],
        "an empty txn_id"
    );
    // A bare create event, for an unused room id, does not create a room.
    let fresh = RoomId::random(&h.server);
    let create = ClientFrame::Send(SendEvent {
        request_id: 52,
        room_id: fresh.as_str(),
        txn_id: "c",
        event_type: "m.room.create",
        state_key: Some(""),
        content: b"{}",
    });
    let frames = ok(&mut alice_session, &create).await;
    assert_eq!(frames, vec![soft_error(52, ErrorCode::InvalidArgument)]);
    let fresh_head = h.services.store.room_head(&fresh).await.expect("room head");
    assert_eq!(fresh_head, None, "no room was created");
    assert_eq!(h.head(&room).await, 4, "nothing was stored");
    assert!(alice_session.is_open() && bob.is_open());
}

#[tokio::test]
async fn send_rate_limit_answers_with_retry_after_and_stays_open() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let room = h.room(&alice, &[]).await;
    let config = SessionConfig {
        sends_per_second: NonZeroU32::new(1).expect("1 is not zero"),
        send_burst: NonZeroU32::new(2).expect("2 is not zero"),
        ..SessionConfig::default()
    };
    let mut session = h.open(config, &token).await;
    for n in 1..=2u64 {
        let frames = ok(
            &mut session,
            &send(n, room.as_str(), &format!("t{n}"), "{}"),
        )
        .await;
        assert!(
            matches!(frames.as_slice(), [Got::SendAck { .. }]),
            "send {n}: {frames:?}"
        );
    }
    let head = h.head(&room).await;
    let frames = ok(&mut session, &send(3, room.as_str(), "t3", "{}")).await;
    let [
        Got::Error {
            request_id: 3,
            code: ErrorCode::RateLimited,
            retry_after_ms,
            close: false,
            resumable: false,
        },
    ] = frames.as_slice()
    else {
        panic!("expected RateLimited for request 3, got {frames:?}");
    };
    assert!(*retry_after_ms > 0);
    assert!(
        *retry_after_ms <= 1000,
        "one send per second: {retry_after_ms} ms"
    );
    assert_eq!(h.head(&room).await, head, "the limited send was not stored");
    assert!(session.is_open());
    assert_eq!(
        ok(&mut session, &ClientFrame::Ping(Ping { nonce: 3 })).await,
        vec![Got::Pong(3)]
    );
}

// ---------------------------------------------------------------------------
// Live delivery and resume.

#[tokio::test]
async fn live_events_reach_every_subscriber_in_seq_order() {
    let h = Harness::new().await;
    let Pair {
        alice,
        mut alice_session,
        mut bob_session,
        room,
        ..
    } = h.two_subscribed().await;
    let head = h.head(&room).await;

    let frames = ok(
        &mut alice_session,
        &send(1, room.as_str(), "first", r#"{"body":"hi"}"#),
    )
    .await;
    let [Got::SendAck { event_id, seq, .. }] = frames.as_slice() else {
        panic!("expected a SendAck, got {frames:?}");
    };
    let got = live_events(&mut bob_session, 1).await;
    assert_eq!(
        got,
        vec![Got::Event {
            room_id: room.as_str().into(),
            seq: *seq,
            event_id: event_id.clone(),
            sender: alice.as_str().into(),
            event_type: "m.room.message".into(),
            state_key: None,
        }]
    );

    const SENDS: u64 = 40;
    for n in 2..=SENDS {
        let frames = ok(
            &mut alice_session,
            &send(n, room.as_str(), &format!("t{n}"), "{}"),
        )
        .await;
        assert!(
            matches!(frames.as_slice(), [Got::SendAck { .. }]),
            "{frames:?}"
        );
    }
    let expected: Vec<u64> = (head + 2..=head + SENDS).collect();
    assert_eq!(
        event_seqs(&live_events(&mut bob_session, expected.len()).await),
        expected
    );
    // The sender's own session receives its events too, all of them.
    let expected: Vec<u64> = (head + 1..=head + SENDS).collect();
    assert_eq!(
        event_seqs(&live_events(&mut alice_session, expected.len()).await),
        expected
    );
    assert_eq!(pump_now(&mut bob_session).await, vec![]);
}

#[tokio::test]
async fn hello_resume_replays_exactly_the_missed_events_then_goes_live() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let other = h.room(&alice, &[&bob]).await;

    let mut first = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;
    h.messages(&room, &alice, 3).await;
    let seen = event_seqs(&live_events(&mut first, 3).await);
    let last = *seen.last().expect("three events");
    drop(first);

    // Missed while disconnected.
    h.messages(&room, &alice, 5).await;
    h.messages(&other, &alice, 2).await;
    let head = h.head(&room).await;
    let other_head = h.head(&other).await;
    assert_eq!(head, last + 5);

    let mut second = h.session(SessionConfig::default());
    let frames = ok(
        &mut second,
        &ClientFrame::Hello(Hello {
            access_token: &bob_token,
            device_id: None,
            client_name: None,
            client_version: None,
            resume: vec![
                ResumePosition {
                    room_id: room.as_str(),
                    seq: last,
                },
                ResumePosition {
                    room_id: other.as_str(),
                    seq: other_head - 1,
                },
            ],
        }),
    )
    .await;
    assert!(
        matches!(frames.first(), Some(Got::Welcome { .. })),
        "{frames:?}"
    );
    let rest = &frames[1..];
    let room_part: Vec<u64> = rest
        .iter()
        .filter_map(|f| match f {
            Got::Event { room_id, seq, .. } if room_id == room.as_str() => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(room_part, (last + 1..=head).collect::<Vec<_>>());
    assert!(
        rest[..5]
            .iter()
            .all(|f| matches!(f, Got::Event { room_id, .. } if room_id == room.as_str())),
        "{rest:?}"
    );
    assert_eq!(
        rest[5],
        Got::Subscribed {
            request_id: 0,
            room_id: room.as_str().into(),
            head,
        }
    );
    assert_eq!(
        event_seqs(&rest[..5]),
        (last + 1..=head).collect::<Vec<_>>()
    );
    assert_eq!(event_seqs(&rest[6..7]), vec![other_head]);
    assert_eq!(
        rest[7..],
        [Got::Subscribed {
            request_id: 0,
            room_id: other.as_str().into(),
            head: other_head,
        }]
    );
    assert_eq!(second.subscriptions(), 2);

    // Then live, without a repeat.
    h.message(&room, &alice, 100).await;
    assert_eq!(
        event_seqs(&live_events(&mut second, 1).await),
        vec![head + 1]
    );
    assert_eq!(pump_now(&mut second).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_while_the_room_is_busy_has_no_gap_and_no_repeat() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    h.messages(&room, &alice, 10).await;
    let last_seen = h.head(&room).await - 5;

    const MORE: usize = 200;
    let final_head = h.head(&room).await + MORE as u64;
    let appender = {
        let sequencer = h.services.sequencer.clone();
        let (room, alice) = (room.clone(), alice.clone());
        tokio::spawn(async move {
            for n in 0..MORE {
                sequencer
                    .append(NewEvent::message(
                        &room,
                        &alice,
                        format!(r#"{{"body":"{n}"}}"#),
                    ))
                    .await
                    .expect("append");
                tokio::task::yield_now().await;
            }
        })
    };

    // A small queue, so the live side also lags and catches up meanwhile.
    let config = SessionConfig {
        queue_capacity: 8,
        ..SessionConfig::default()
    };
    let mut session = h.session(config);
    let mut frames = ok(
        &mut session,
        &ClientFrame::Hello(Hello {
            access_token: &bob_token,
            device_id: None,
            client_name: None,
            client_version: None,
            resume: vec![ResumePosition {
                room_id: room.as_str(),
                seq: last_seen,
            }],
        }),
    )
    .await;
    let subscribed_at = frames
        .iter()
        .position(|f| matches!(f, Got::Subscribed { .. }))
        .expect("Subscribed after the replay");
    let Got::Subscribed { head, .. } = &frames[subscribed_at] else {
        unreachable!("found above")
    };
    assert_eq!(
        event_seqs(&frames[..subscribed_at]),
        (last_seen + 1..=*head).collect::<Vec<_>>(),
        "the replay ends at the head Subscribed reports"
    );
    while event_seqs(&frames).last().copied().unwrap_or(0) < final_head {
        tokio::time::timeout(WAIT, session.events_ready())
            .await
            .expect("live events keep coming until the final head");
        frames.extend(pump_now(&mut session).await);
    }
    appender.await.expect("appender");
    assert_eq!(
        event_seqs(&frames),
        (last_seen + 1..=final_head).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// The end of a membership ends the subscription.

#[tokio::test]
async fn a_kicked_member_gets_the_kick_and_nothing_after_it() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut session = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;

    h.message(&room, &alice, 1).await;
    let kick = h
        .services
        .sequencer
        .append(NewEvent::membership(&room, &alice, &bob, Membership::Leave))
        .await
        .expect("alice (PL 100) kicks bob");
    h.messages(&room, &alice, 3).await;

    // Everything above was published before bob reads: the kick and the
    // messages after it sit in the same drain.
    let frames = live_events(&mut session, 2).await;
    assert_eq!(event_seqs(&frames), vec![kick.seq - 1, kick.seq]);
    assert!(
        matches!(
            frames.last(),
            Some(Got::Event { event_type, state_key: Some(key), event_id, .. })
                if event_type == "m.room.member" && key == bob.as_str() && *event_id == kick.event_id.as_str()
        ),
        "{frames:?}"
    );
    assert_eq!(session.subscriptions(), 0);
    assert_eq!(h.services.router.subscriber_count(&room), 0);
    h.messages(&room, &alice, 2).await;
    assert_eq!(pump_now(&mut session).await, vec![]);

    // And bob cannot subscribe again, nor resume.
    let frames = ok(&mut session, &subscribe(9, vec![room.as_str()], vec![])).await;
    assert_eq!(frames, vec![soft_error(9, ErrorCode::Forbidden)]);
    let frames = ok(
        &mut session,
        &subscribe(
            10,
            vec![],
            vec![ResumePosition {
                room_id: room.as_str(),
                seq: 0,
            }],
        ),
    )
    .await;
    assert_eq!(frames, vec![soft_error(10, ErrorCode::Forbidden)]);
    assert!(session.is_open());
}

/// A kick that lands while a Subscribe is between its membership check and
/// its join to the live stream: the feed starts at a head that includes the
/// kick, so the kick never reaches the session as an event. Modelled
/// deterministically with a second sequencer on the same store, whose writes
/// the session's sequencer (and so its room state) has not seen.
#[tokio::test]
async fn a_membership_that_ended_before_the_live_point_is_not_subscribed() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let elsewhere = Sequencer::start(
        h.services.store.clone(),
        h.services.router.clone(),
        SequencerConfig {
            shards: 2,
            ..Default::default()
        },
    )
    .await
    .expect("second sequencer");
    elsewhere
        .append(NewEvent::membership(&room, &alice, &bob, Membership::Leave))
        .await
        .expect("kick");
    let stale = h
        .services
        .sequencer
        .room_state(&room)
        .await
        .expect("state")
        .expect("room");
    assert!(
        stale.is_joined(&bob),
        "the session's view is behind storage"
    );

    let mut session = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(&mut session, &subscribe(3, vec![room.as_str()], vec![])).await;
    assert_eq!(frames, vec![soft_error(3, ErrorCode::Forbidden)]);
    assert_eq!(session.subscriptions(), 0);
    assert_eq!(h.services.router.subscriber_count(&room), 0);
    let message = NewEvent::message(
        &room,
        &alice,
        Bytes::from_static(br#"{"body":"after the kick"}"#),
    );
    elsewhere.append(message).await.expect("message");
    assert_eq!(pump_now(&mut session).await, vec![]);
}

#[tokio::test]
async fn leaving_through_the_session_ends_the_subscription() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut session = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;

    let frames = ok(
        &mut session,
        &ClientFrame::Send(SendEvent {
            request_id: 1,
            room_id: room.as_str(),
            txn_id: "leave",
            event_type: "m.room.member",
            state_key: Some(bob.as_str()),
            content: br#"{"membership":"leave"}"#,
        }),
    )
    .await;
    let [Got::SendAck { seq, .. }] = frames.as_slice() else {
        panic!("expected a SendAck, got {frames:?}");
    };
    let leave_seq = *seq;
    h.message(&room, &alice, 1).await;
    let frames = live_events(&mut session, 1).await;
    assert_eq!(event_seqs(&frames), vec![leave_seq]);
    assert_eq!(session.subscriptions(), 0);
    assert_eq!(pump_now(&mut session).await, vec![]);
}

#[tokio::test]
async fn a_member_who_left_and_joined_again_stays_subscribed() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut session = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;
    let head = h.head(&room).await;
    let sequencer = &h.services.sequencer;
    sequencer
        .append(NewEvent::membership(&room, &bob, &bob, Membership::Leave))
        .await
        .expect("leave");
    sequencer
        .append(NewEvent::membership(&room, &bob, &bob, Membership::Join))
        .await
        .expect("join again (public room)");
    h.message(&room, &alice, 1).await;
    // By the time bob reads the leave, he is a member again: the current
    // state decides, and the subscription goes on.
    let frames = live_events(&mut session, 3).await;
    assert_eq!(event_seqs(&frames), vec![head + 1, head + 2, head + 3]);
    assert_eq!(session.subscriptions(), 1);
}

// ---------------------------------------------------------------------------
// Lag.

#[tokio::test]
async fn lag_policy_close_closes_resumably() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let config = SessionConfig {
        queue_capacity: 2,
        lag_policy: LagPolicy::Close,
        ..SessionConfig::default()
    };
    let mut session = h.subscribed(config, &bob_token, &room).await;
    h.messages(&room, &alice, 5).await;

    tokio::time::timeout(WAIT, session.events_ready())
        .await
        .expect("a lagged queue is ready");
    let mut out = Vec::new();
    let reason = session
        .pump_events(&mut out)
        .await
        .expect_err("a lagged connection closes under LagPolicy::Close");
    assert_eq!(reason.code, ErrorCode::Lagged);
    assert!(reason.resumable);
    assert_eq!(reason.websocket_code(), 4012);
    assert_eq!(read(&mut out), vec![closing_error(ErrorCode::Lagged, true)]);
}

#[tokio::test]
async fn lag_policy_catch_up_reads_the_missed_events_from_storage() {
    let h = Harness::new().await;
    let (alice, _) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let config = SessionConfig {
        queue_capacity: 2,
        lag_policy: LagPolicy::CatchUp,
        ..SessionConfig::default()
    };
    let mut session = h.subscribed(config, &bob_token, &room).await;
    let head = h.head(&room).await;
    h.messages(&room, &alice, 10).await;
    let frames = live_events(&mut session, 10).await;
    assert_eq!(
        event_seqs(&frames),
        (head + 1..=head + 10).collect::<Vec<_>>()
    );
    // Live again after the catch-up.
    h.message(&room, &alice, 11).await;
    assert_eq!(
        event_seqs(&live_events(&mut session, 1).await),
        vec![head + 11]
    );
}

// ---------------------------------------------------------------------------
// History.

/// Pages through a room's history until `end`, returning each page's seqs.
async fn all_pages(
    session: &mut Session,
    room: &RoomId,
    from: u64,
    direction: Direction,
    limit: u32,
) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut from = from;
    for request_id in 1..100 {
        let frames = ok(
            session,
            &history(request_id, room.as_str(), from, direction, limit),
        )
        .await;
        let [
            Got::History {
                request_id: r,
                room_id,
                seqs,
                next_from_seq,
                end,
            },
        ] = frames.as_slice()
        else {
            panic!("expected a HistoryPage, got {frames:?}");
        };
        assert_eq!(*r, request_id);
        assert_eq!(room_id, room.as_str());
        if let Some(last) = seqs.last() {
            assert_eq!(
                next_from_seq, last,
                "next_from_seq is the last seq of the page"
            );
        } else {
            assert_eq!(*next_from_seq, from, "an empty page keeps from_seq");
        }
        pages.push(seqs.clone());
        if *end {
            return pages;
        }
        from = *next_from_seq;
    }
    panic!("history never reached its end");
}

#[tokio::test]
async fn history_pages_backward_and_forward() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let room = h.room(&alice, &[]).await;
    h.messages(&room, &alice, 12).await;
    let head = h.head(&room).await;
    assert_eq!(head, 16);
    let mut session = h.open(SessionConfig::default(), &token).await;

    // The newest five, newest first.
    let frames = ok(
        &mut session,
        &history(7, room.as_str(), u64::MAX, Direction::Backward, 5),
    )
    .await;
    assert_eq!(
        frames,
        vec![Got::History {
            request_id: 7,
            room_id: room.as_str().into(),
            seqs: (head - 4..=head).rev().collect(),
            next_from_seq: head - 4,
            end: false,
        }]
    );

    // Backward to the start; a page that reaches seq 1 is the end, even full.
    let pages = all_pages(&mut session, &room, u64::MAX, Direction::Backward, 4).await;
    assert_eq!(pages.len(), 4);
    assert_eq!(pages.concat(), (1..=head).rev().collect::<Vec<_>>());

    // Forward from the start; a short page is the end.
    let pages = all_pages(&mut session, &room, 0, Direction::Forward, 5).await;
    assert_eq!(pages.concat(), (1..=head).collect::<Vec<_>>());
    assert_eq!(pages.len(), 4);
    assert_eq!(pages[0], vec![1, 2, 3, 4, 5]);

    // from_seq is exclusive both ways.
    let frames = ok(
        &mut session,
        &history(8, room.as_str(), 10, Direction::Backward, 3),
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Got::History { seqs, end: false, .. }] if *seqs == vec![9, 8, 7]),
        "{frames:?}"
    );
    let frames = ok(
        &mut session,
        &history(9, room.as_str(), 10, Direction::Forward, 3),
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Got::History { seqs, end: false, .. }] if *seqs == vec![11, 12, 13]),
        "{frames:?}"
    );

    // Past either end: empty and the end.
    for (from, direction) in [
        (head, Direction::Forward),
        (1, Direction::Backward),
        (0, Direction::Backward),
    ] {
        let frames = ok(
            &mut session,
            &history(10, room.as_str(), from, direction, 5),
        )
        .await;
        assert_eq!(
            frames,
            vec![Got::History {
                request_id: 10,
                room_id: room.as_str().into(),
                seqs: vec![],
                next_from_seq: from,
                end: true,
            }],
            "from {from} {direction:?}"
        );
    }

    // A page that exactly reaches the newest event is not yet known as the end.
    let frames = ok(
        &mut session,
        &history(11, room.as_str(), head - 2, Direction::Forward, 2),
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Got::History { seqs, next_from_seq, end: false, .. }] if *seqs == vec![head - 1, head] && *next_from_seq == head),
        "{frames:?}"
    );
}

#[tokio::test]
async fn history_limits_and_refusals() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let (_, carol_token) = h.user("carol").await;
    let room = h.room(&alice, &[]).await;
    h.messages(&room, &alice, 8).await;
    let head = h.head(&room).await;
    let config = SessionConfig {
        max_history_page: 3,
        ..SessionConfig::default()
    };
    let mut session = h.open(config.clone(), &token).await;
    for limit in [10, 0] {
        let frames = ok(
            &mut session,
            &history(1, room.as_str(), u64::MAX, Direction::Backward, limit),
        )
        .await;
        assert!(
            matches!(frames.as_slice(), [Got::History { seqs, end: false, .. }] if *seqs == vec![head, head - 1, head - 2]),
            "limit {limit} is capped at max_history_page: {frames:?}"
        );
    }

    let mut carol = h.open(config, &carol_token).await;
    let frames = ok(
        &mut carol,
        &history(21, room.as_str(), u64::MAX, Direction::Backward, 5),
    )
    .await;
    assert_eq!(frames, vec![soft_error(21, ErrorCode::Forbidden)]);
    let unknown = RoomId::random(&h.server);
    let frames = ok(
        &mut carol,
        &history(22, unknown.as_str(), u64::MAX, Direction::Backward, 5),
    )
    .await;
    assert_eq!(frames, vec![soft_error(22, ErrorCode::NotFound)]);
    let frames = ok(
        &mut carol,
        &history(23, "nope", u64::MAX, Direction::Backward, 5),
    )
    .await;
    assert_eq!(frames, vec![soft_error(23, ErrorCode::InvalidArgument)]);
}

#[tokio::test]
async fn history_pages_stay_within_the_frame_budget() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let room = h.room(&alice, &[]).await;
    let body = "y".repeat(600);
    for n in 0..10 {
        h.services
            .sequencer
            .append(NewEvent::message(
                &room,
                &alice,
                format!(r#"{{"n":{n},"body":"{body}"}}"#),
            ))
            .await
            .expect("append");
    }
    let head = h.head(&room).await;
    let config = SessionConfig {
        max_frame_bytes: 4096,
        ..SessionConfig::default()
    };
    let mut session = h.open(config.clone(), &token).await;
    let mut out = Vec::new();
    session
        .on_frame(
            &axon_schemas::encode_client(&history(
                1,
                room.as_str(),
                u64::MAX,
                Direction::Backward,
                50,
            )),
            &mut out,
        )
        .await
        .expect("history");
    assert_eq!(out.len(), 1);
    assert!(
        out[0].len() <= config.max_frame_bytes,
        "page of {} bytes",
        out[0].len()
    );
    let frames = read(&mut out);
    let [
        Got::History {
            seqs, end: false, ..
        },
    ] = frames.as_slice()
    else {
        panic!("a page cut by the byte budget is not the end: {frames:?}");
    };
    assert!(!seqs.is_empty() && seqs.len() < 10, "{seqs:?}");
    // Paging on still covers everything exactly once.
    let pages = all_pages(&mut session, &room, u64::MAX, Direction::Backward, 50).await;
    assert_eq!(pages.concat(), (1..=head).rev().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// Receipts, typing, presence.

#[tokio::test]
async fn receipts_are_stored_for_members_only() {
    let h = Harness::new().await;
    let (alice, token) = h.user("alice").await;
    let (_, carol_token) = h.user("carol").await;
    let room = h.room(&alice, &[]).await;
    let event = h.message(&room, &alice, 1).await;
    let receipt = |event_id| {
        ClientFrame::Receipt(Receipt {
            room_id: room.as_str(),
            event_id,
            receipt_type: "m.read",
            thread_id: None,
        })
    };

    let mut session = h.open(SessionConfig::default(), &token).await;
    let frames = ok(&mut session, &receipt(event.event_id.as_str())).await;
    assert_eq!(frames, vec![], "a stored receipt is not answered");
    let stored = h.services.store.receipts(&room).await.expect("receipts");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].user_id, alice);
    assert_eq!(stored[0].event_id, event.event_id);
    assert_eq!(stored[0].receipt_type, "m.read");

    let frames = ok(&mut session, &receipt("not an event id")).await;
    assert_eq!(frames, vec![soft_error(0, ErrorCode::InvalidArgument)]);

    let mut carol = h.open(SessionConfig::default(), &carol_token).await;
    let frames = ok(&mut carol, &receipt(event.event_id.as_str())).await;
    assert_eq!(frames, vec![soft_error(0, ErrorCode::Forbidden)]);
    assert_eq!(h.receipt_count(&room).await, 1);
}

/// Waits for ephemeral frames (typing, receipts, presence) until one
/// matches `wanted`; returns everything ephemeral seen up to it.
async fn ephemeral_until(session: &mut Session, wanted: impl Fn(&Got) -> bool) -> Vec<Got> {
    let mut seen = Vec::new();
    loop {
        tokio::time::timeout(WAIT, session.events_ready())
            .await
            .unwrap_or_else(|_| panic!("the wanted update never came; saw {seen:?}"));
        for got in pump_now(session).await {
            if matches!(
                got,
                Got::Typing { .. } | Got::Receipt { .. } | Got::Presence { .. }
            ) {
                let done = wanted(&got);
                seen.push(got);
                if done {
                    return seen;
                }
            }
        }
    }
}

fn typing_frame(room: &RoomId, typing: bool, timeout_ms: u32) -> ClientFrame<'_> {
    ClientFrame::Typing(Typing {
        room_id: room.as_str(),
        typing,
        timeout_ms,
    })
}

#[tokio::test]
async fn typing_reaches_the_room_and_ends_by_stop_or_timeout() {
    let h = Harness::new().await;
    let Pair {
        alice,
        alice_token,
        alice_session: mut alice_s,
        bob,
        bob_session: mut bob_s,
        room,
        ..
    } = h.two_subscribed().await;
    let (_, carol_token) = h.user("carol").await;

    assert_eq!(
        ok(&mut alice_s, &typing_frame(&room, true, 30_000)).await,
        vec![]
    );
    let typing = |users: Vec<&UserId>| Got::Typing {
        room_id: room.to_string(),
        users: users.into_iter().map(ToString::to_string).collect(),
    };
    let seen = ephemeral_until(&mut bob_s, |g| *g == typing(vec![&alice])).await;
    assert_eq!(seen, vec![typing(vec![&alice])], "one update, nothing else");

    // Renewing changes nothing anyone hears; bob starting does.
    ok(&mut alice_s, &typing_frame(&room, true, 30_000)).await;
    ok(&mut bob_s, &typing_frame(&room, true, 30_000)).await;
    let seen = ephemeral_until(&mut alice_s, |g| *g == typing(vec![&alice, &bob])).await;
    assert_eq!(seen.last(), Some(&typing(vec![&alice, &bob])));
    ok(&mut alice_s, &typing_frame(&room, false, 0)).await;
    ephemeral_until(&mut bob_s, |g| *g == typing(vec![&bob])).await;

    // A connection that subscribes now hears who types with `Subscribed`.
    let mut late = h.open(SessionConfig::default(), &alice_token).await;
    let frames = ok(&mut late, &subscribe(2, vec![room.as_str()], vec![])).await;
    assert!(
        matches!(frames.as_slice(), [Got::Subscribed { .. }, t] if *t == typing(vec![&bob])),
        "{frames:?}"
    );
    drop(late);

    // A notice with a short timeout ends by itself.
    ok(&mut alice_s, &typing_frame(&room, true, 100)).await;
    ephemeral_until(&mut bob_s, |g| *g == typing(vec![&bob, &alice])).await;
    ephemeral_until(&mut bob_s, |g| *g == typing(vec![&bob])).await;
    assert_eq!(
        h.services.ephemeral.typing.typing_in(&room),
        vec![bob.clone()]
    );

    // Not in the room: refused, and nobody hears anything.
    let mut carol_s = h.open(SessionConfig::default(), &carol_token).await;
    let frames = ok(&mut carol_s, &typing_frame(&room, true, 30_000)).await;
    assert_eq!(frames, vec![soft_error(0, ErrorCode::Forbidden)]);
    assert_eq!(h.services.ephemeral.typing.typing_in(&room), vec![bob]);
}

#[tokio::test]
async fn public_receipts_reach_the_room_and_private_ones_do_not() {
    let h = Harness::new().await;
    let Pair {
        alice,
        alice_session: mut alice_s,
        bob,
        bob_session: mut bob_s,
        room,
        ..
    } = h.two_subscribed().await;
    let first = h.message(&room, &alice, 1).await;
    let second = h.message(&room, &alice, 2).await;
    let receipt = |event_id, receipt_type| {
        ClientFrame::Receipt(Receipt {
            room_id: room.as_str(),
            event_id,
            receipt_type,
            thread_id: None,
        })
    };

    ok(
        &mut bob_s,
        &receipt(first.event_id.as_str(), "m.read.private"),
    )
    .await;
    ok(&mut bob_s, &receipt(second.event_id.as_str(), "m.read")).await;
    let seen = ephemeral_until(&mut alice_s, |g| matches!(g, Got::Receipt { .. })).await;
    assert_eq!(
        seen,
        vec![Got::Receipt {
            room_id: room.to_string(),
            user_id: bob.to_string(),
            event_id: second.event_id.to_string(),
            receipt_type: "m.read".into(),
        }],
        "the private receipt is not fanned out"
    );
    assert_eq!(h.receipt_count(&room).await, 2);
}

#[tokio::test]
async fn presence_reaches_rooms_shared_with_the_user_and_goes_offline_with_the_last_connection() {
    let h = Harness::new().await;
    let (alice, alice_token) = h.user("alice").await;
    let (bob, bob_token) = h.user("bob").await;
    let room = h.room(&alice, &[&bob]).await;
    let mut bob_s = h
        .subscribed(SessionConfig::default(), &bob_token, &room)
        .await;
    let mut alice_s = h.open(SessionConfig::default(), &alice_token).await;

    let frames = ok(
        &mut alice_s,
        &ClientFrame::Presence(Presence {
            state: PresenceState::Online,
            status_msg: Some("at my desk"),
        }),
    )
    .await;
    assert_eq!(frames, vec![]);
    let online = Got::Presence {
        user_id: alice.to_string(),
        state: PresenceState::Online,
        status_msg: Some("at my desk".into()),
        currently_active: true,
    };
    ephemeral_until(&mut bob_s, |g| *g == online).await;
    // A connection that subscribes later learns it with its `Subscribed`.
    let mut late = h.open(SessionConfig::default(), &bob_token).await;
    let frames = ok(&mut late, &subscribe(2, vec![room.as_str()], vec![])).await;
    assert!(
        matches!(frames.as_slice(), [Got::Subscribed { .. }, p] if *p == online),
        "{frames:?}"
    );
    drop(late);

    let too_long = "x".repeat(2000);
    let frames = ok(
        &mut alice_s,
        &ClientFrame::Presence(Presence {
            state: PresenceState::Online,
            status_msg: Some(&too_long),
        }),
    )
    .await;
    assert_eq!(frames, vec![soft_error(0, ErrorCode::InvalidArgument)]);

    drop(alice_s);
    let offline = Got::Presence {
        user_id: alice.to_string(),
        state: PresenceState::Offline,
        status_msg: Some("at my desk".into()),
        currently_active: false,
    };
    ephemeral_until(&mut bob_s, |g| *g == offline).await;
    assert_eq!(
        h.services.ephemeral.presence.get(&alice).state,
        axon_core::ephemeral::PresenceState::Offline
    );
}

// ---------------------------------------------------------------------------
// The connection loop's deadlines ([`axon_transport::drive`]), over a
// connection without a socket.

/// Inbound frames from a channel; outbound frames and the close reported.
struct MemoryIo {
    inbound: tokio::sync::mpsc::Receiver<Bytes>,
    sent: tokio::sync::mpsc::UnboundedSender<Got>,
    closed: Option<tokio::sync::oneshot::Sender<Option<CloseReason>>>,
}

impl FrameIo for MemoryIo {
    async fn recv(&mut self) -> Result<Option<Bytes>, IoError> {
        Ok(self.inbound.recv().await)
    }

    async fn send(&mut self, out: &mut Vec<Bytes>) -> Result<(), IoError> {
        for frame in out.drain(..) {
            let _ = self.sent.send(decode_one(&frame));
        }
        Ok(())
    }

    async fn close(&mut self, reason: Option<&CloseReason>) {
        if let Some(closed) = self.closed.take() {
            let _ = closed.send(reason.cloned());
        }
    }
}

/// A connection driven by [`drive`] with `timeouts`: the sender of its
/// inbound frames, what it writes, and its close.
struct Driven {
    inbound: tokio::sync::mpsc::Sender<Bytes>,
    sent: tokio::sync::mpsc::UnboundedReceiver<Got>,
    closed: tokio::sync::oneshot::Receiver<Option<CloseReason>>,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

impl Driven {
    fn start(h: &Harness, timeouts: Timeouts) -> Self {
        let (inbound, inbound_rx) = tokio::sync::mpsc::channel(16);
        let (sent_tx, sent) = tokio::sync::mpsc::unbounded_channel();
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let io = MemoryIo {
            inbound: inbound_rx,
            sent: sent_tx,
            closed: Some(closed_tx),
        };
        let session = h.session(SessionConfig::default());
        tokio::spawn(async move {
            let traffic: &'static TrafficCounters = Box::leak(Box::new(TrafficCounters {
                frames_in: metrics::Counter::noop(),
                bytes_in: metrics::Counter::noop(),
                frames_out: metrics::Counter::noop(),
                bytes_out: metrics::Counter::noop(),
            }));
            drive(session, io, timeouts, shutdown_rx, traffic).await;
        });
        Self {
            inbound,
            sent,
            closed,
            _shutdown: shutdown,
        }
    }

    async fn frame(&self, frame: &ClientFrame<'_>) {
        self.inbound
            .send(axon_schemas::encode_client(frame))
            .await
            .expect("the connection reads");
    }

    /// The next frame the connection wrote.
    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT, self.sent.recv())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
    }

    /// Waits for the close; its reason.
    async fn close(self) -> CloseReason {
        tokio::time::timeout(WAIT, self.closed)
            .await
            .expect("closed in time")
            .expect("closed, not dropped")
            .expect("closed with a reason")
    }
}

#[tokio::test]
async fn no_hello_by_the_handshake_deadline_closes_the_connection() {
    let h = Harness::new().await;
    let driven = Driven::start(
        &h,
        Timeouts {
            handshake: Duration::from_millis(200),
            idle: Duration::from_secs(600),
        },
    );
    let reason = driven.close().await;
    assert_eq!(reason.code, ErrorCode::HandshakeTimeout);
    assert!(!reason.resumable);
}

#[tokio::test]
async fn frames_keep_a_connection_past_its_idle_timeout_and_silence_ends_it() {
    let h = Harness::new().await;
    let (_, token) = h.user("pinger").await;
    let idle = Duration::from_millis(500);
    let mut driven = Driven::start(
        &h,
        Timeouts {
            handshake: Duration::from_secs(600),
            idle,
        },
    );
    driven.frame(&hello(&token)).await;
    assert!(matches!(driven.next().await, Got::Welcome { .. }));
    // Pings at a fifth of the idle timeout, over four idle timeouts: the
    // deadline moves with each one, and the connection stays open.
    for nonce in 1..=20 {
        driven.frame(&ClientFrame::Ping(Ping { nonce })).await;
        assert_eq!(driven.next().await, Got::Pong(nonce));
        tokio::time::sleep(idle / 5).await;
    }
    assert!(
        matches!(
            driven.closed.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "closed while pinging"
    );
    // Then silence: the idle close, which a client may resume from.
    let reason = driven.close().await;
    assert!(reason.resumable);
    assert!(reason.message.contains("idle"), "{}", reason.message);
}
