//! The client against a real server started in-process on loopback: ws,
//! wss and QUIC sharing one timeline, password login, resume after a lost
//! connection (over WebSocket and over QUIC), send idempotency across a
//! reconnect, and typed errors.

use std::path::Path;
use std::time::Duration;

use axon_client::{
    Auth, Client, ClientConfig, ClientError, ConnectionState, Direction, Ephemeral, Event,
    PresenceState, SharedQuicEndpoint,
};
use axon_core::{Membership, NewEvent, RoomCreation, RoomId, UserId};
use axon_server::{Config, Server};

/// Every listener on 127.0.0.1 port 0, the data in `dir`.
fn loopback_config(dir: &Path) -> Config {
    let mut config = Config::ephemeral(dir);
    config.sequencer.shards = 4;
    config
}

/// A server with users alice and bob (password "pw") in one room; their
/// tokens and the room.
struct Setup {
    server: Server,
    alice: String,
    bob: String,
    room: String,
}

async fn setup(dir: &Path) -> Setup {
    let server = Server::start(loopback_config(dir)).await.unwrap();
    let core = server.core();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let user = core
            .accounts
            .create_user(name, Some("pw".into()), false)
            .await
            .unwrap();
        let login = core
            .accounts
            .open_session(&user.user_id, None, None)
            .await
            .unwrap();
        tokens.push(login.access_token.expose().to_owned());
    }
    let alice = UserId::parse("@alice:localhost").unwrap();
    let bob = UserId::parse("@bob:localhost").unwrap();
    let room = RoomId::random(core.accounts.server_name());
    let mut creation = RoomCreation::new(room.clone(), alice);
    creation.invites.push(bob.clone());
    core.sequencer.append_all(creation.events()).await.unwrap();
    core.sequencer
        .append(NewEvent::membership(&room, &bob, &bob, Membership::Join))
        .await
        .unwrap();
    let bob_token = tokens.pop().unwrap();
    let alice_token = tokens.pop().unwrap();
    Setup {
        server,
        alice: alice_token,
        bob: bob_token,
        room: room.to_string(),
    }
}

fn ws_url(server: &Server) -> String {
    format!("ws://{}/_axon/v1/ws", server.addrs().http)
}

fn ws_config(server: &Server, auth: Auth) -> ClientConfig {
    ClientConfig::new(ws_url(server), auth).request_timeout(Duration::from_secs(10))
}

fn wss_config(server: &Server, auth: Auth) -> ClientConfig {
    let url = format!(
        "wss://localhost:{}/_axon/v1/ws",
        server.addrs().https.port()
    );
    let mut config = ClientConfig::new(url, auth)
        .add_root_pem(&server.certificate().cert_path)
        .request_timeout(Duration::from_secs(10));
    config.webpki_roots = false;
    config
}

/// QUIC to `127.0.0.1` (the development certificate names it), trusting
/// the server's certificate only.
fn quic_config(server: &Server, auth: Auth) -> ClientConfig {
    let url = format!("quic://127.0.0.1:{}", server.addrs().quic.port());
    let mut config = ClientConfig::new(url, auth)
        .add_root_pem(&server.certificate().cert_path)
        .request_timeout(Duration::from_secs(10));
    config.webpki_roots = false;
    config
}

fn message(body: &str) -> String {
    serde_json::json!({ "msgtype": "m.text", "body": body }).to_string()
}

fn body(event: &Event) -> String {
    let content: serde_json::Value = serde_json::from_slice(&event.content).unwrap();
    content["body"].as_str().unwrap_or_default().to_owned()
}

/// The next `n` events, each within 10 s: read one at a time and in
/// batches of up to three by turns, so that every ordering check of these
/// tests covers both ways of reading, and their mix.
async fn events(client: &Client, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut batched = false;
    while events.len() < n {
        if batched {
            let max = (n - events.len()).min(3);
            let taken = tokio::time::timeout(
                Duration::from_secs(10),
                client.next_events(&mut events, max),
            )
            .await
            .expect("events within 10 s");
            assert!((1..=max).contains(&taken), "took {taken} of at most {max}");
        } else {
            let event = tokio::time::timeout(Duration::from_secs(10), client.next_event())
                .await
                .expect("an event within 10 s")
                .expect("the client is open");
            events.push(event);
        }
        batched = !batched;
    }
    events
}

/// Nothing more arrives for a while (no duplicate after the expected events).
async fn assert_quiet(client: &Client) {
    if let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), client.next_event()).await
    {
        panic!(
            "unexpected extra event seq {} {:?}",
            event.seq,
            body(&event)
        );
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Bob (subscribed to the room here) loses his connection while alice sends
/// five messages; he reconnects by himself and gets exactly those, once and
/// in order, then a live one. Returns the room's head before it all.
async fn lose_and_resume(s: &Setup, alice: &Client, bob: &Client) -> u64 {
    let head = bob.subscribe(&s.room).await.unwrap().head;
    alice
        .send(&s.room, "m.room.message", message("before"))
        .await
        .unwrap();
    assert_eq!(seqs(&events(bob, 1).await), [head + 1]);

    // Bob's socket dies; alice goes on talking while he is away.
    let mut state = bob.watch_state();
    bob.kill_connection().await;
    for i in 0..5 {
        alice
            .send(&s.room, "m.room.message", message(&format!("missed{i}")))
            .await
            .unwrap();
    }
    state
        .wait_for(|s| *s == ConnectionState::Connected && bob.reconnects() == 1)
        .await
        .unwrap();
    alice
        .send(&s.room, "m.room.message", message("after"))
        .await
        .unwrap();

    let got = events(bob, 6).await;
    assert_eq!(seqs(&got), (head + 2..=head + 7).collect::<Vec<_>>());
    let bodies: Vec<String> = got.iter().map(body).collect();
    assert_eq!(
        bodies,
        [
            "missed0", "missed1", "missed2", "missed3", "missed4", "after"
        ]
    );
    assert_quiet(bob).await;
    assert_eq!(bob.reconnects(), 1);
    head
}

/// Alice and Bob subscribe and each send `n` messages at the same time; both
/// see the same 2n events, in the same order, each sender's in the order
/// sent. Returns the room's head before the messages.
async fn talk_in_turns(s: &Setup, alice: &Client, bob: &Client, n: usize) -> u64 {
    let head = alice.subscribe(&s.room).await.unwrap().head;
    assert_eq!(bob.subscribe(&s.room).await.unwrap().head, head);
    let say = |client: &Client, who: &'static str| {
        let client = client.clone();
        let room = s.room.clone();
        async move {
            for i in 0..n {
                client
                    .send(&room, "m.room.message", message(&format!("{who}{i}")))
                    .await
                    .unwrap();
            }
        }
    };
    tokio::join!(say(alice, "a"), say(bob, "b"));
    let seen_by_alice = events(alice, 2 * n).await;
    let seen_by_bob = events(bob, 2 * n).await;
    assert_eq!(seen_by_alice, seen_by_bob);
    assert_eq!(
        seqs(&seen_by_alice),
        (head + 1..=head + 2 * n as u64).collect::<Vec<_>>()
    );
    for (sender, who) in [("@alice:localhost", "a"), ("@bob:localhost", "b")] {
        let sent: Vec<String> = seen_by_alice
            .iter()
            .filter(|e| e.sender == sender)
            .map(body)
            .collect();
        assert_eq!(
            sent,
            (0..n).map(|i| format!("{who}{i}")).collect::<Vec<_>>()
        );
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_and_wss_clients_see_the_same_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let alice = Client::connect(ws_config(&s.server, Auth::Token(s.alice.clone())))
        .await
        .unwrap();
    let bob = Client::connect(wss_config(&s.server, Auth::Token(s.bob.clone())))
        .await
        .unwrap();
    assert_eq!(alice.user_id(), "@alice:localhost");
    assert_eq!(bob.user_id(), "@bob:localhost");
    assert_eq!(bob.state(), ConnectionState::Connected);

    talk_in_turns(&s, &alice, &bob, 5).await;

    alice.close().await;
    bob.close().await;
    assert_eq!(alice.state(), ConnectionState::Closed);
    assert!(matches!(
        alice.send(&s.room, "m.room.message", message("late")).await,
        Err(ClientError::Closed)
    ));
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_yields_a_token_that_connects() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let password = Auth::Password {
        user: "alice".into(),
        password: "pw".into(),
    };
    let alice = Client::connect(ws_config(&s.server, password))
        .await
        .unwrap();
    assert_eq!(alice.user_id(), "@alice:localhost");
    let token = alice.access_token().to_owned();
    assert!(!token.is_empty());
    assert_ne!(token, s.alice, "a login issues a new token");

    let again =
        Client::connect(ws_config(&s.server, Auth::Token(token)).device_id(alice.device_id()))
            .await
            .unwrap();
    assert_eq!(again.user_id(), "@alice:localhost");
    assert_eq!(again.device_id(), alice.device_id());
    again.subscribe(&s.room).await.unwrap();

    let wrong = Auth::Password {
        user: "alice".into(),
        password: "nope".into(),
    };
    assert!(matches!(
        Client::connect(ws_config(&s.server, wrong)).await,
        Err(ClientError::Unauthenticated(_))
    ));
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_resumes_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let alice = Client::connect(ws_config(&s.server, Auth::Token(s.alice.clone())))
        .await
        .unwrap();
    let bob = Client::connect(ws_config(&s.server, Auth::Token(s.bob.clone())))
        .await
        .unwrap();
    let head = lose_and_resume(&s, &alice, &bob).await;
    let mut state = bob.watch_state();

    // A second loss, with nothing missed, replays nothing.
    bob.kill_connection().await;
    state
        .wait_for(|s| *s == ConnectionState::Connected && bob.reconnects() == 2)
        .await
        .unwrap();
    alice
        .send(&s.room, "m.room.message", message("last"))
        .await
        .unwrap();
    assert_eq!(seqs(&events(&bob, 1).await), [head + 8]);
    assert_quiet(&bob).await;
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_retried_after_a_lost_ack_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let alice = Client::connect(ws_config(&s.server, Auth::Token(s.alice.clone())))
        .await
        .unwrap();
    let before = alice
        .history(&s.room, u64::MAX, Direction::Backward, 100)
        .await
        .unwrap();
    let head = before.events.first().map_or(0, |e| e.seq);

    // The server stores the event, then the connection dies before the ack
    // is read: the client reconnects and sends again with the same txn id.
    alice.drop_next_send_ack().await;
    let ack = alice
        .send(&s.room, "m.room.message", message("once"))
        .await
        .unwrap();
    assert_eq!(alice.reconnects(), 1);
    assert_eq!(ack.seq, head + 1);

    let next = alice
        .send(&s.room, "m.room.message", message("twice"))
        .await
        .unwrap();
    assert_eq!(next.seq, head + 2, "the retry stored nothing new");

    let page = alice
        .history(&s.room, head, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(seqs(&page.events), [head + 1, head + 2]);
    assert_eq!(page.events[0].event_id, ack.event_id);
    assert_eq!(body(&page.events[0]), "once");
    assert!(page.end);
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;

    // A bad token: connect fails at once, no reconnect loop.
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        Client::connect(ws_config(&s.server, Auth::Token("axat_nope".into()))),
    )
    .await
    .expect("a prompt answer");
    assert!(
        matches!(refused, Err(ClientError::Unauthenticated(_))),
        "{refused:?}"
    );

    let alice = Client::connect(ws_config(&s.server, Auth::Token(s.alice.clone())))
        .await
        .unwrap();
    // A room alice is not in.
    let other = RoomId::random(s.server.core().accounts.server_name());
    let bob = UserId::parse("@bob:localhost").unwrap();
    s.server
        .core()
        .sequencer
        .append_all(RoomCreation::new(other.clone(), bob).events())
        .await
        .unwrap();
    let other = other.to_string();
    assert!(matches!(
        alice.subscribe(&other).await,
        Err(ClientError::Forbidden(_))
    ));
    assert!(matches!(
        alice
            .send(&other, "m.room.message", message("intrusion"))
            .await,
        Err(ClientError::Forbidden(_))
    ));
    assert!(matches!(
        alice
            .history(&other, u64::MAX, Direction::Backward, 10)
            .await,
        Err(ClientError::Forbidden(_))
    ));
    // A room that does not exist, and a malformed room id.
    let missing = RoomId::random(s.server.core().accounts.server_name()).to_string();
    let e = alice
        .send(&missing, "m.room.message", message("void"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound(_)), "{e:?}");
    let e = alice.subscribe("not-a-room").await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");

    // None of this disturbed the connection.
    assert_eq!(alice.reconnects(), 0);
    alice.subscribe(&s.room).await.unwrap();
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_and_ws_clients_see_the_same_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let (alice, bob) = alice_on_ws_bob_on_quic(&s).await;
    assert_eq!(bob.user_id(), "@bob:localhost");
    assert_eq!(bob.state(), ConnectionState::Connected);

    let head = talk_in_turns(&s, &alice, &bob, 10).await;
    assert_quiet(&bob).await;

    // History works over the control stream too.
    let page = bob
        .history(&s.room, head, Direction::Forward, 5)
        .await
        .unwrap();
    assert_eq!(
        seqs(&page.events),
        (head + 1..=head + 5).collect::<Vec<_>>()
    );

    bob.close().await;
    assert_eq!(bob.state(), ConnectionState::Closed);
    alice.close().await;

    // A refusal comes back typed over QUIC too, at once.
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        Client::connect(quic_config(&s.server, Auth::Token("axat_nope".into()))),
    )
    .await
    .expect("a prompt answer");
    assert!(
        matches!(refused, Err(ClientError::Unauthenticated(_))),
        "{refused:?}"
    );
    // A certificate the client does not trust fails the connect.
    let mut untrusted = quic_config(&s.server, Auth::Token(s.bob.clone()));
    untrusted.root_pems.clear();
    untrusted.webpki_roots = true;
    assert!(matches!(
        Client::connect(untrusted).await,
        Err(ClientError::Connection { .. })
    ));
    s.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_quic_connection_resumes_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let (alice, bob) = alice_on_ws_bob_on_quic(&s).await;
    let head = lose_and_resume(&s, &alice, &bob).await;

    // Again, with alice talking all through the loss and the resume, so
    // live lane events race the replay on the control stream.
    let talking = {
        let alice = alice.clone();
        let room = s.room.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                alice
                    .send(&room, "m.room.message", message(&format!("busy{i}")))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    bob.kill_connection().await;
    talking.await.unwrap();
    let got = events(&bob, 40).await;
    assert_eq!(seqs(&got), (head + 8..=head + 47).collect::<Vec<_>>());
    assert_eq!(
        got.iter().map(body).collect::<Vec<_>>(),
        (0..40).map(|i| format!("busy{i}")).collect::<Vec<_>>()
    );
    assert_quiet(&bob).await;
    assert_eq!(bob.reconnects(), 2);
    s.server.shutdown().await.unwrap();
}

/// Alice connected over WebSocket, bob over QUIC.
async fn alice_on_ws_bob_on_quic(s: &Setup) -> (Client, Client) {
    let alice = Client::connect(ws_config(&s.server, Auth::Token(s.alice.clone())))
        .await
        .unwrap();
    let bob = Client::connect(quic_config(&s.server, Auth::Token(s.bob.clone())))
        .await
        .unwrap();
    (alice, bob)
}

/// The next ephemeral update `wanted` accepts, within 10 s.
async fn ephemeral_until(
    updates: &mut tokio::sync::broadcast::Receiver<Ephemeral>,
    wanted: impl Fn(&Ephemeral) -> bool,
) -> Ephemeral {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match updates.recv().await {
                Ok(update) if wanted(&update) => return update,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("the client closed: {e}"),
            }
        }
    })
    .await
    .expect("the update within 10 s")
}

#[tokio::test]
async fn typing_receipts_and_presence_cross_websocket_and_quic() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let (alice, bob) = alice_on_ws_bob_on_quic(&s).await;
    alice.subscribe(&s.room).await.unwrap();
    bob.subscribe(&s.room).await.unwrap();
    let mut alice_hears = alice.ephemeral();
    let mut bob_hears = bob.ephemeral();

    // WebSocket → QUIC (a datagram): alice types, then stops.
    alice
        .typing(&s.room, true, Duration::from_secs(30))
        .await
        .unwrap();
    let typing = |users: &[&str]| Ephemeral::Typing {
        room_id: s.room.clone(),
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
    };
    let heard = ephemeral_until(&mut bob_hears, |u| matches!(u, Ephemeral::Typing { .. })).await;
    assert_eq!(heard, typing(&["@alice:localhost"]));
    alice.typing(&s.room, false, Duration::ZERO).await.unwrap();
    let heard = ephemeral_until(&mut bob_hears, |u| matches!(u, Ephemeral::Typing { .. })).await;
    assert_eq!(heard, typing(&[]));

    // QUIC → WebSocket: bob reads alice's message and says where he is.
    let sent = alice
        .send(&s.room, "m.room.message", message("hi"))
        .await
        .unwrap();
    bob.receipt(&s.room, &sent.event_id, "m.read")
        .await
        .unwrap();
    let heard = ephemeral_until(&mut alice_hears, |u| matches!(u, Ephemeral::Receipt { .. })).await;
    assert!(
        matches!(&heard, Ephemeral::Receipt { user_id, event_id, .. }
            if user_id == "@bob:localhost" && *event_id == sent.event_id),
        "{heard:?}"
    );
    bob.set_presence(PresenceState::Unavailable, Some("lunch"))
        .await
        .unwrap();
    let heard = ephemeral_until(&mut alice_hears, |u| {
        matches!(u, Ephemeral::Presence { .. })
    })
    .await;
    assert!(
        matches!(&heard, Ephemeral::Presence { user_id, state: PresenceState::Unavailable, status_msg: Some(m), .. }
            if user_id == "@bob:localhost" && m == "lunch"),
        "{heard:?}"
    );

    // Bob's only connection closes: alice hears he is offline.
    bob.close().await;
    let heard = ephemeral_until(&mut alice_hears, |u| {
        matches!(
            u,
            Ephemeral::Presence {
                state: PresenceState::Offline,
                ..
            }
        )
    })
    .await;
    assert!(matches!(&heard, Ephemeral::Presence { user_id, .. } if user_id == "@bob:localhost"));
    alice.close().await;
    s.server.shutdown().await.unwrap();
}

/// Two QUIC clients on one shared endpoint (one UDP socket): both talk,
/// one loses its connection and resumes through the endpoint, and closing
/// one leaves the endpoint and the other connection working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_clients_share_one_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let shared = SharedQuicEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        &quic_config(&s.server, Auth::Token(String::new())),
    )
    .unwrap();
    let on_shared = |token: &str| {
        // No roots of its own: the shared endpoint's TLS must be the one used.
        let mut config = ClientConfig::new(
            format!("quic://127.0.0.1:{}", s.server.addrs().quic.port()),
            Auth::Token(token.to_owned()),
        )
        .request_timeout(Duration::from_secs(10))
        .quic_endpoint(shared.clone());
        config.webpki_roots = false;
        Client::connect(config)
    };
    let alice = on_shared(&s.alice).await.unwrap();
    let bob = on_shared(&s.bob).await.unwrap();
    assert_eq!(shared.open_connections(), 2);
    talk_in_turns(&s, &alice, &bob, 5).await;
    lose_and_resume(&s, &alice, &bob).await;
    assert_eq!(shared.open_connections(), 2);

    bob.close().await;
    let mut waited = 0;
    while shared.open_connections() != 1 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(shared.open_connections(), 1);
    let head = alice.subscribe(&s.room).await.unwrap().head;
    alice
        .send(&s.room, "m.room.message", message("still here"))
        .await
        .unwrap();
    // Alice, subscribed all along, still holds what bob sent before.
    let last = loop {
        let event = events(&alice, 1).await.remove(0);
        if body(&event) == "still here" {
            break event;
        }
    };
    assert_eq!(last.seq, head + 1);
    alice.close().await;
    s.server.shutdown().await.unwrap();
}

/// A WebSocket client bound to 127.0.0.2 connects from there; a local
/// address of the wrong family is a configuration error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connects_from_its_local_address() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let local: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    for config in [
        ws_config(&s.server, Auth::Token(s.alice.clone())),
        wss_config(&s.server, Auth::Token(s.alice.clone())),
        quic_config(&s.server, Auth::Token(s.alice.clone())),
    ] {
        let client = Client::connect(config.local_addr(local)).await.unwrap();
        let head = client.subscribe(&s.room).await.unwrap().head;
        client
            .send(&s.room, "m.room.message", message("from .2"))
            .await
            .unwrap();
        assert_eq!(events(&client, 1).await[0].seq, head + 1);
        client.kill_connection().await;
        let mut state = client.watch_state();
        state
            .wait_for(|st| *st == ConnectionState::Connected && client.reconnects() == 1)
            .await
            .unwrap();
        client.close().await;
    }
    let v6 = ws_config(&s.server, Auth::Token(s.alice.clone())).local_addr("::1".parse().unwrap());
    assert!(matches!(
        Client::connect(v6).await,
        Err(ClientError::Config(_))
    ));
    s.server.shutdown().await.unwrap();
}

/// A subscribe from the start of a long timeline gets every event once, in
/// order: the server replays the first 512 before `Subscribed` and the rest
/// after it, ahead of live events (docs/protocol.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_from_far_back_gets_the_whole_timeline_in_order() {
    const BACKLOG: usize = 1_200;
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let core = s.server.core();
    let room = RoomId::parse(&s.room).unwrap();
    let alice = UserId::parse("@alice:localhost").unwrap();
    for n in 0..BACKLOG {
        core.sequencer
            .append(NewEvent::message(&room, &alice, message(&format!("m{n}"))))
            .await
            .unwrap();
    }
    for config in [
        ws_config(&s.server, Auth::Token(s.bob.clone())),
        quic_config(&s.server, Auth::Token(s.bob.clone())),
    ] {
        let head = core.store.room_head(&room).await.unwrap().unwrap();
        let bob = Client::connect(config).await.unwrap();
        let ack = bob.subscribe_since(&s.room, 0).await.unwrap();
        assert!(ack.head >= 512 && ack.head <= head, "head {}", ack.head);
        let live = bob
            .send(&s.room, "m.room.message", message("live"))
            .await
            .unwrap();
        let got = events(&bob, head as usize + 1).await;
        assert_eq!(seqs(&got), (1..=head + 1).collect::<Vec<_>>());
        assert_eq!(got.last().map(body).as_deref(), Some("live"));
        assert_eq!(live.seq, head + 1);
        assert_quiet(&bob).await;
        bob.close().await;
    }
    s.server.shutdown().await.unwrap();
}
