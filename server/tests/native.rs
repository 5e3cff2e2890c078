//! The native faces end to end, over real sockets on loopback: WebSocket
//! (plain `ws://` and `wss://` with the development certificate) and QUIC,
//! one timeline for all, resume without gaps or duplicates, and bad input
//! answered with stable error codes while other connections carry on.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axon_core::{RoomCreation, RoomId, UserId};
use axon_schemas::{
    ClientFrame, DecodeLimits, ErrorCode, Frame, Hello, Ping, ResumePosition, SendEvent,
    ServerFrame, Subscribe,
};
use axon_server::Server;
use bytes::Bytes;
use common::loopback_config;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A frame the server sent, owned (the decoded view borrows the message).
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Welcome {
        user_id: String,
    },
    Event {
        room: String,
        seq: u64,
        body: String,
    },
    Ack {
        request_id: u64,
        seq: u64,
    },
    Subscribed {
        room: String,
        head: u64,
    },
    Error {
        code: ErrorCode,
        close: bool,
    },
    Pong(u64),
    Other(&'static str),
}

fn parse(bytes: &[u8]) -> Got {
    let frame = axon_schemas::decode(bytes, &DecodeLimits::default())
        .expect("the server sends valid frames");
    let Frame::Server(frame) = frame else {
        panic!("a client frame from the server")
    };
    match frame {
        ServerFrame::Welcome(w) => Got::Welcome {
            user_id: w.user_id.into(),
        },
        ServerFrame::Event(e) => Got::Event {
            room: e.room_id.into(),
            seq: e.seq,
            body: String::from_utf8_lossy(e.content).into_owned(),
        },
        ServerFrame::SendAck(a) => Got::Ack {
            request_id: a.request_id,
            seq: a.seq,
        },
        ServerFrame::Subscribed(s) => Got::Subscribed {
            room: s.room_id.into(),
            head: s.head,
        },
        ServerFrame::Error(e) => Got::Error {
            code: e.code,
            close: e.close,
        },
        ServerFrame::Pong(p) => Got::Pong(p.nonce),
        other => Got::Other(other.name()),
    }
}

struct Client<S> {
    ws: WebSocketStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn open(stream: S, url: &str) -> Self {
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("axon.v1"),
        );
        let (ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("Sec-WebSocket-Protocol").unwrap(),
            "axon.v1"
        );
        Self { ws }
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) {
        self.ws
            .send(Message::Binary(axon_schemas::encode_client(frame)))
            .await
            .unwrap();
    }

    async fn raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next frame, or `None` when the server closed.
    async fn next(&mut self) -> Option<Got> {
        let next = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
            .await
            .expect("a frame within 10 s");
        match next? {
            Ok(Message::Binary(b)) => Some(parse(&b)),
            Ok(Message::Close(_)) | Err(_) => None,
            Ok(other) => panic!("unexpected message {other:?}"),
        }
    }

    async fn hello(&mut self, token: &str, resume: &[(&str, u64)]) -> Got {
        let resume = resume
            .iter()
            .map(|(room_id, seq)| ResumePosition { room_id, seq: *seq })
            .collect();
        self.send(&ClientFrame::Hello(Hello {
            access_token: token,
            device_id: None,
            client_name: Some("websocket-test"),
            client_version: None,
            resume,
        }))
        .await;
        self.next().await.unwrap()
    }

    async fn subscribe(&mut self, room: &str) -> Got {
        self.send(&ClientFrame::Subscribe(Subscribe {
            request_id: 1,
            room_ids: vec![room],
            since: vec![],
        }))
        .await;
        self.next().await.unwrap()
    }

    async fn say(&mut self, request_id: u64, room: &str, body: &str) {
        let content = format!(r#"{{"msgtype":"m.text","body":"{body}"}}"#);
        let txn = format!("t{request_id}");
        self.send(&ClientFrame::Send(SendEvent {
            request_id,
            room_id: room,
            txn_id: &txn,
            event_type: "m.room.message",
            state_key: None,
            content: content.as_bytes(),
        }))
        .await;
    }

    /// Reads frames until `n` events arrived, returning them and any acks.
    async fn events(&mut self, n: usize) -> Vec<(u64, String)> {
        let mut events = Vec::new();
        while events.len() < n {
            match self.next().await.expect("connection open") {
                Got::Event { seq, body, .. } => events.push((seq, body)),
                // Acks, pongs, and ephemeral updates (typing, presence).
                Got::Ack { .. } | Got::Pong(_) | Got::Other(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        events
    }
}

async fn ws(server: &Server) -> Client<TcpStream> {
    let addr = server.addrs().http;
    Client::open(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/_axon/v1/ws"),
    )
    .await
}

async fn wss(server: &Server) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&server.certificate().cert_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = server.addrs().https;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    Client::open(tls, &format!("wss://localhost:{}/_axon/v1/ws", addr.port())).await
}

/// A server with users alice and bob in one room; their tokens and the room.
async fn setup(dir: &std::path::Path) -> (Server, String, String, String) {
    // The test's TLS clients need a process-wide provider, as the server does.
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let server = Server::start(loopback_config(dir)).await.unwrap();
    let core = server.core();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let user = core
            .accounts
            .create_user(name, Some("pw".into()), false)
            .await
            .unwrap();
        tokens.push(
            core.accounts
                .open_session(&user.user_id, None, None)
                .await
                .unwrap()
                .access_token
                .expose()
                .to_owned(),
        );
    }
    let alice = UserId::parse("@alice:localhost").unwrap();
    let bob = UserId::parse("@bob:localhost").unwrap();
    let room = RoomId::random(core.accounts.server_name());
    let mut creation = RoomCreation::new(room.clone(), alice);
    creation.invites.push(bob.clone());
    core.sequencer.append_all(creation.events()).await.unwrap();
    core.sequencer
        .append(axon_core::NewEvent::membership(
            &room,
            &bob,
            &bob,
            axon_core::Membership::Join,
        ))
        .await
        .unwrap();
    let bob_token = tokens.pop().unwrap();
    let alice_token = tokens.pop().unwrap();
    (server, alice_token, bob_token, room.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_and_wss_clients_share_one_timeline_and_resume_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice_token, bob_token, room) = setup(dir.path()).await;

    let mut alice = ws(&server).await;
    assert_eq!(
        alice.hello(&alice_token, &[]).await,
        Got::Welcome {
            user_id: "@alice:localhost".into()
        }
    );
    let mut bob = wss(&server).await;
    assert_eq!(
        bob.hello(&bob_token, &[]).await,
        Got::Welcome {
            user_id: "@bob:localhost".into()
        }
    );
    let head = match alice.subscribe(&room).await {
        Got::Subscribed { head, .. } => head,
        other => panic!("{other:?}"),
    };
    assert!(matches!(bob.subscribe(&room).await, Got::Subscribed { head: h, .. } if h == head));

    // Both send; both see the same events in the same seq order.
    for i in 0..5 {
        alice.say(100 + i, &room, &format!("a{i}")).await;
        bob.say(200 + i, &room, &format!("b{i}")).await;
    }
    let seen_by_alice = alice.events(10).await;
    let seen_by_bob = bob.events(10).await;
    assert_eq!(seen_by_alice, seen_by_bob);
    let seqs: Vec<u64> = seen_by_alice.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (head + 1..=head + 10).collect::<Vec<_>>());

    // Bob goes away; alice sends three more; bob resumes from his last seq
    // and gets exactly those three, then the subscription confirmation.
    let last = *seqs.last().unwrap();
    drop(bob);
    for i in 0..3 {
        alice.say(300 + i, &room, &format!("missed{i}")).await;
    }
    alice.events(3).await;
    let mut bob = ws(&server).await;
    assert!(matches!(
        bob.hello(&bob_token, &[(&room, last)]).await,
        Got::Welcome { .. }
    ));
    let replay = bob.events(3).await;
    assert_eq!(
        replay,
        (0..3)
            .map(|i| (
                last + 1 + i,
                format!(r#"{{"msgtype":"m.text","body":"missed{i}"}}"#)
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        bob.next().await,
        Some(Got::Subscribed {
            room: room.clone(),
            head: last + 3
        })
    );
    // And then live, with no repeat.
    alice.say(400, &room, "live").await;
    assert_eq!(bob.events(1).await[0].0, last + 4);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_stable_codes_and_does_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice_token, bob_token, room) = setup(dir.path()).await;
    let mut bob = ws(&server).await;
    bob.hello(&bob_token, &[]).await;
    bob.subscribe(&room).await;

    bad_input_scenario(&server, &alice_token, &room, async || ws(&server).await).await;

    // WebSocket only: a text message is a BadFrame; the connection stays.
    let mut alice = ws(&server).await;
    alice.hello(&alice_token, &[]).await;
    alice.raw(Message::Text("hello".into())).await;
    assert_eq!(
        alice.next().await,
        Some(Got::Error {
            code: ErrorCode::BadFrame,
            close: false
        })
    );
    alice.send(&ClientFrame::Ping(Ping { nonce: 8 })).await;
    assert_eq!(alice.next().await, Some(Got::Pong(8)));

    // Bob was never disturbed: alice's message reaches him.
    alice.say(9, &room, "still here").await;
    let got = bob.events(1).await;
    assert!(got[0].1.contains("still here"));

    server.shutdown().await.unwrap();
}

/// What [`bad_input_scenario`] needs of a face's test client.
trait Face {
    /// Writes `bytes` as one frame: a binary WebSocket message, or a
    /// length-prefixed frame on QUIC's control stream.
    async fn frame(&mut self, bytes: &[u8]);
    /// The next frame on the control path; `None` once the server closed.
    async fn reply(&mut self) -> Option<Got>;

    async fn send_frame(&mut self, frame: &ClientFrame<'_>) {
        self.frame(&axon_schemas::encode_client(frame)).await;
    }

    async fn hello_with(&mut self, token: &str) -> Option<Got> {
        self.send_frame(&ClientFrame::Hello(Hello {
            access_token: token,
            device_id: None,
            client_name: Some("bad-input-test"),
            client_version: None,
            resume: vec![],
        }))
        .await;
        self.reply().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Face for Client<S> {
    async fn frame(&mut self, bytes: &[u8]) {
        self.raw(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await;
    }

    async fn reply(&mut self) -> Option<Got> {
        self.next().await
    }
}

impl Face for QuicClient {
    async fn frame(&mut self, bytes: &[u8]) {
        self.control
            .write_all(&(bytes.len() as u32).to_be_bytes())
            .await
            .unwrap();
        self.control.write_all(bytes).await.unwrap();
    }

    async fn reply(&mut self) -> Option<Got> {
        QuicClient::reply(self).await
    }
}

/// The bad input every face must answer the same way: each case gets its
/// stable code, a soft error leaves the connection usable, and a fatal
/// one closes it. `connect` opens a new connection of the face.
async fn bad_input_scenario<F: Face>(
    server: &Server,
    alice_token: &str,
    room: &str,
    connect: impl AsyncFn() -> F,
) {
    let closed = |code| Some(Got::Error { code, close: true });
    let soft = |code| Some(Got::Error { code, close: false });

    // A frame before hello: UnexpectedFrame, then the server closes.
    let mut early = connect().await;
    early
        .send_frame(&ClientFrame::Ping(Ping { nonce: 1 }))
        .await;
    assert_eq!(
        early.reply().await,
        Some(Got::Pong(1)),
        "Ping is fine before Hello"
    );
    early
        .send_frame(&ClientFrame::Subscribe(Subscribe {
            request_id: 1,
            room_ids: vec![room],
            since: vec![],
        }))
        .await;
    assert_eq!(early.reply().await, closed(ErrorCode::UnexpectedFrame));
    assert_eq!(early.reply().await, None);

    // A wrong token: Unauthenticated, closed.
    let mut wrong = connect().await;
    assert_eq!(
        wrong.hello_with("axat_nope").await,
        closed(ErrorCode::Unauthenticated)
    );
    assert_eq!(wrong.reply().await, None);

    // Garbage and a truncated frame: BadFrame, and the connection stays.
    let mut alice = connect().await;
    assert!(matches!(
        alice.hello_with(alice_token).await,
        Some(Got::Welcome { .. })
    ));
    alice.frame(b"\x00\x01garbage").await;
    assert_eq!(alice.reply().await, soft(ErrorCode::BadFrame));
    let ping = axon_schemas::encode_client(&ClientFrame::Ping(Ping { nonce: 7 }));
    alice.frame(&ping[..ping.len() / 2]).await;
    assert_eq!(alice.reply().await, soft(ErrorCode::BadFrame));
    alice
        .send_frame(&ClientFrame::Ping(Ping { nonce: 8 }))
        .await;
    assert_eq!(alice.reply().await, Some(Got::Pong(8)));

    // A room alice is not in: Forbidden, for a send and a subscribe.
    let other = RoomId::random(server.core().accounts.server_name());
    let bob_id = UserId::parse("@bob:localhost").unwrap();
    server
        .core()
        .sequencer
        .append_all(RoomCreation::new(other.clone(), bob_id).events())
        .await
        .unwrap();
    alice
        .send_frame(&ClientFrame::Send(SendEvent {
            request_id: 5,
            room_id: other.as_str(),
            txn_id: "intrusion",
            event_type: "m.room.message",
            state_key: None,
            content: br#"{"body":"intrusion"}"#,
        }))
        .await;
    assert_eq!(alice.reply().await, soft(ErrorCode::Forbidden));
    alice
        .send_frame(&ClientFrame::Subscribe(Subscribe {
            request_id: 6,
            room_ids: vec![other.as_str()],
            since: vec![],
        }))
        .await;
    assert_eq!(alice.reply().await, soft(ErrorCode::Forbidden));

    // A flood past the rate limit (typing shares the send limit): some
    // frames are answered RateLimited, and the connection stays.
    for _ in 0..400 {
        alice
            .send_frame(&ClientFrame::Typing(axon_schemas::Typing {
                room_id: room,
                typing: true,
                timeout_ms: 1000,
            }))
            .await;
    }
    assert_eq!(alice.reply().await, soft(ErrorCode::RateLimited));
    alice
        .send_frame(&ClientFrame::Ping(Ping { nonce: 9 }))
        .await;
    loop {
        match alice.reply().await {
            Some(Got::Pong(9)) => break,
            other => assert_eq!(other, soft(ErrorCode::RateLimited)),
        }
    }

    // A frame over the limit: FrameTooLarge, and the server closes.
    alice.frame(&vec![0u8; 200 * 1024]).await;
    assert_eq!(alice.reply().await, closed(ErrorCode::FrameTooLarge));
    assert_eq!(alice.reply().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice_token, _bob_token, _room) = setup(dir.path()).await;
    let mut alice = ws(&server).await;
    alice.hello(&alice_token, &[]).await;
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(
        alice.next().await,
        Some(Got::Error {
            code: ErrorCode::ShuttingDown,
            close: true
        })
    );
    assert_eq!(alice.next().await, None);
    shutdown.await.unwrap().unwrap();
}

/// Appends `n` messages of about `pad` bytes to `room` as alice, from 64
/// concurrent senders (so group commit carries them quickly).
async fn flood(server: &Server, room: &str, n: usize, pad: usize) {
    let sequencer = server.core().sequencer.clone();
    let room = RoomId::parse(room).unwrap();
    let alice = UserId::parse("@alice:localhost").unwrap();
    let filler = "x".repeat(pad);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (sequencer, room, alice, filler) = (
            sequencer.clone(),
            room.clone(),
            alice.clone(),
            filler.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(64) {
                let content =
                    format!(r#"{{"msgtype":"m.text","body":"flood {i}","pad":"{filler}"}}"#);
                let event = axon_core::NewEvent::message(&room, &alice, content);
                sequencer.append(event).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_flood_resumes_with_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _alice_token, bob_token, room) = setup(dir.path()).await;
    let mut bob = ws(&server).await;
    bob.hello(&bob_token, &[]).await;
    let Got::Subscribed { head: start, .. } = bob.subscribe(&room).await else {
        panic!("not subscribed")
    };

    const EVENTS: u64 = 10_000;
    let flooding = flood(&server, &room, EVENTS as usize, 16);
    let (server_ref, room_ref, token) = (&server, room.clone(), bob_token.clone());
    let reading = async move {
        let (server, room, bob_token) = (server_ref, room_ref, token);
        let mut seen = Vec::new();
        // Read part of the flood, then kill the connection without a close.
        for (seq, _) in bob.events(2_000).await {
            seen.push(seq);
        }
        drop(bob);
        let mut bob = ws(server).await;
        let last = *seen.last().unwrap();
        assert!(matches!(
            bob.hello(&bob_token, &[(&room, last)]).await,
            Got::Welcome { .. }
        ));
        while seen.len() < EVENTS as usize {
            match bob.next().await.expect("connection open") {
                Got::Event { seq, .. } => seen.push(seq),
                Got::Subscribed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    };
    let ((), seen) = tokio::join!(flooding, reading);
    assert_eq!(
        seen,
        (start + 1..=start + EVENTS).collect::<Vec<_>>(),
        "every event exactly once, in order"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_hold_up_the_others_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice_token, bob_token, room) = setup(dir.path()).await;
    let mut fast = ws(&server).await;
    fast.hello(&alice_token, &[]).await;
    let Got::Subscribed { head: start, .. } = fast.subscribe(&room).await else {
        panic!("not subscribed")
    };
    let mut slow = ws(&server).await;
    slow.hello(&bob_token, &[]).await;
    slow.subscribe(&room).await;

    // ~40 MB of events: far more than the slow reader's socket buffers and
    // its 4096-deep queue hold while it reads nothing.
    const EVENTS: u64 = 20_000;
    let flooding = flood(&server, &room, EVENTS as usize, 2_000);
    let fast_reads = async {
        fast.events(EVENTS as usize)
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    };
    let ((), fast_seen) = tokio::join!(flooding, fast_reads);
    assert_eq!(fast_seen, (start + 1..=start + EVENTS).collect::<Vec<_>>());

    // The slow reader's queue overflowed (it lagged) rather than the
    // router waiting for it.
    let metrics = common::get(server.addrs().admin, "/metrics").await.body;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let lagged = value("axon_router_lagged_total");
    assert!(lagged >= 1.0, "expected a lag to be counted:\n{metrics}");
    // Every write was fsynced, and group commit shared the fsyncs: far
    // fewer of them than events.
    let fsyncs = value("axon_store_fsync_seconds_count");
    let events = value("axon_sequencer_events_total");
    assert!(
        fsyncs >= 1.0 && fsyncs < events / 2.0,
        "{fsyncs} fsyncs for {events} events:\n{metrics}"
    );

    // Only now does the slow reader read: it was caught up from storage and
    // still sees every event once, in order.
    let slow_seen: Vec<u64> = slow
        .events(EVENTS as usize)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(slow_seen, (start + 1..=start + EVENTS).collect::<Vec<_>>());
    server.shutdown().await.unwrap();
}

/// A minimal QUIC client: the control stream, and every lane stream read
/// into one channel of events (a room's events share a lane, so they stay
/// in order).
struct QuicClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    control: quinn::SendStream,
    replies: tokio::sync::mpsc::UnboundedReceiver<Got>,
    events: tokio::sync::mpsc::UnboundedReceiver<Got>,
}

async fn read_framed(mut recv: quinn::RecvStream, tx: tokio::sync::mpsc::UnboundedSender<Got>) {
    loop {
        let mut len = [0u8; 4];
        if recv.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        if recv.read_exact(&mut frame).await.is_err() || tx.send(parse(&frame)).is_err() {
            return;
        }
    }
}

impl QuicClient {
    async fn connect(server: &Server) -> Self {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&server.certificate().cert_path).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"axon/1".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let conn = endpoint
            .connect(server.addrs().quic, "localhost")
            .unwrap()
            .await
            .unwrap();
        let (control, recv) = conn.open_bi().await.unwrap();
        let (reply_tx, replies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(read_framed(recv, reply_tx));
        let (event_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let lanes = conn.clone();
        tokio::spawn(async move {
            while let Ok(lane) = lanes.accept_uni().await {
                tokio::spawn(read_framed(lane, event_tx.clone()));
            }
        });
        Self {
            _endpoint: endpoint,
            conn,
            control,
            replies,
            events,
        }
    }

    async fn send(&mut self, frame: &ClientFrame<'_>) {
        let bytes = axon_schemas::encode_client(frame);
        self.control
            .write_all(&(bytes.len() as u32).to_be_bytes())
            .await
            .unwrap();
        self.control.write_all(&bytes).await.unwrap();
    }

    async fn reply(&mut self) -> Option<Got> {
        tokio::time::timeout(Duration::from_secs(10), self.replies.recv())
            .await
            .expect("a reply within 10 s")
    }

    async fn events(&mut self, n: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .expect("an event within 10 s")
            {
                Some(Got::Event { seq, body, .. }) => out.push((seq, body)),
                other => panic!("unexpected on a lane: {other:?}"),
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_quic_clients_see_one_timeline_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice_token, bob_token, room) = setup(dir.path()).await;

    let mut alice = ws(&server).await;
    alice.hello(&alice_token, &[]).await;
    let Got::Subscribed { head, .. } = alice.subscribe(&room).await else {
        panic!("not subscribed")
    };

    let mut bob = QuicClient::connect(&server).await;
    bob.send(&ClientFrame::Hello(Hello {
        access_token: &bob_token,
        device_id: None,
        client_name: Some("quic-test"),
        client_version: None,
        resume: vec![],
    }))
    .await;
    assert_eq!(
        bob.reply().await,
        Some(Got::Welcome {
            user_id: "@bob:localhost".into()
        })
    );
    bob.send(&ClientFrame::Subscribe(Subscribe {
        request_id: 2,
        room_ids: vec![&room],
        since: vec![],
    }))
    .await;
    assert_eq!(
        bob.reply().await,
        Some(Got::Subscribed {
            room: room.clone(),
            head
        })
    );

    for i in 0..5u64 {
        alice.say(10 + i, &room, &format!("ws{i}")).await;
        let content = format!(r#"{{"msgtype":"m.text","body":"quic{i}"}}"#);
        let txn = format!("q{i}");
        bob.send(&ClientFrame::Send(SendEvent {
            request_id: 20 + i,
            room_id: &room,
            txn_id: &txn,
            event_type: "m.room.message",
            state_key: None,
            content: content.as_bytes(),
        }))
        .await;
    }
    let mut acks = 0;
    while acks < 5 {
        match bob.reply().await {
            Some(Got::Ack { .. }) => acks += 1,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let via_ws = alice.events(10).await;
    let via_quic = bob.events(10).await;
    assert_eq!(
        via_ws, via_quic,
        "both faces see the same events in the same order"
    );
    assert_eq!(
        via_ws.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (head + 1..=head + 10).collect::<Vec<_>>()
    );

    // A QUIC client that resumes gets exactly what it missed.
    let last = head + 10;
    bob.conn.close(0u32.into(), b"bye");
    alice.say(30, &room, "while away").await;
    alice.events(1).await;
    let mut bob = QuicClient::connect(&server).await;
    bob.send(&ClientFrame::Hello(Hello {
        access_token: &bob_token,
        device_id: None,
        client_name: None,
        client_version: None,
        resume: vec![ResumePosition {
            room_id: &room,
            seq: last,
        }],
    }))
    .await;
    assert!(matches!(bob.reply().await, Some(Got::Welcome { .. })));
    assert!(
        matches!(bob.reply().await, Some(Got::Event { seq, .. }) if seq == last + 1),
        "replay on the control stream"
    );
    assert_eq!(
        bob.reply().await,
        Some(Got::Subscribed {
            room: room.clone(),
            head: last + 1
        })
    );
    alice.say(31, &room, "live again").await;
    assert_eq!(bob.events(1).await[0].0, last + 2);

    // Bad input on QUIC gets the same answers as on WebSocket.
    bad_input_scenario(&server, &alice_token, &room, async || {
        QuicClient::connect(&server).await
    })
    .await;
    // And bob, on QUIC all along, was not disturbed.
    alice.say(40, &room, "after the bad input").await;
    assert!(bob.events(1).await[0].1.contains("after the bad input"));

    server.shutdown().await.unwrap();
}
