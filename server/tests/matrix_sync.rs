//! Matrix `/sync` over real HTTP: initial and incremental syncs, the
//! long-poll woken by the router (a message, an invite, a typing notice,
//! account data), limited timelines whose `prev_batch` works with
//! `/messages`, filters, invites and leaves, typing, receipts, presence,
//! account data, and one room shared with a native WebSocket client.
//!
//! Long-polls ask for a minute and are guarded by a shorter bound: a poll
//! that only ended at its own timeout would trip the guard, so passing
//! means the router woke it. The assertions are on content, never timing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axon_client::{Auth, Client, ClientConfig, Ephemeral};
use common::matrix::{Reply, V3, create, get, post, put, read_receipt, register, say, start};
use serde_json::{Value, json};

/// A long-poll's own timeout, in ms: longer than [`GUARD`].
const POLL_MS: u64 = 60_000;
/// The most a test waits for what it expects.
const GUARD: Duration = Duration::from_secs(30);

/// A server in `dir` with Alice and Bob registered and both in a public
/// room Alice made: the server, its HTTP address, their tokens, the room.
async fn alice_and_bob_in_a_room(
    dir: &std::path::Path,
) -> (axon_server::Server, SocketAddr, String, String, String) {
    let server = start(dir, |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;
    let room = create(addr, &alice, json!({"preset": "public_chat"})).await;
    join(addr, &bob, &room).await;
    (server, addr, alice, bob, room)
}

async fn join(addr: SocketAddr, token: &str, room: &str) {
    let r = post(
        addr,
        &format!("{V3}/rooms/{room}/join"),
        Some(token),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// One `/sync` with a query string (may be empty); asserts 200.
async fn sync(addr: SocketAddr, token: &str, query: &str) -> Value {
    let r = get(addr, &format!("{V3}/sync?{query}"), Some(token)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json["next_batch"].is_string(), "{r:?}");
    r.json
}

/// Long-polls from `since` until a response satisfies `found` (within
/// [`GUARD`]); returns it.
async fn sync_until(
    addr: SocketAddr,
    token: &str,
    since: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let mut since = since.to_owned();
    tokio::time::timeout(GUARD, async {
        loop {
            let r = sync(addr, token, &format!("since={since}&timeout={POLL_MS}")).await;
            if found(&r) {
                return r;
            }
            since = r["next_batch"].as_str().unwrap().to_owned();
        }
    })
    .await
    .expect("the long-poll is woken with what was expected")
}

/// `name` (as `token`) sets their presence `unavailable` with `status_msg`.
async fn set_presence(addr: SocketAddr, token: &str, name: &str, status_msg: &str) -> Reply {
    put(
        addr,
        &format!("{V3}/presence/@{name}:localhost/status"),
        Some(token),
        json!({"presence": "unavailable", "status_msg": status_msg}),
    )
    .await
}

fn next(r: &Value) -> String {
    r["next_batch"].as_str().unwrap().to_owned()
}

fn timeline<'a>(r: &'a Value, room: &str) -> &'a Vec<Value> {
    r["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no timeline for {room} in {r}"))
}

fn bodies(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect()
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Starts a `/sync` long-poll in the background.
fn poll_in_background(
    addr: SocketAddr,
    token: &str,
    since: &str,
    found: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> tokio::task::JoinHandle<Value> {
    let (token, since) = (token.to_owned(), since.to_owned());
    tokio::spawn(async move { sync_until(addr, &token, &since, found).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_then_incremental_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let room = create(addr, &alice, json!({"name": "Lobby"})).await;
    let first = say(addr, &alice, &room, "t1", "one").await;

    let initial = sync(addr, &alice, "").await;
    let joined = &initial["rooms"]["join"][&room];
    assert_eq!(bodies(timeline(&initial, &room)), ["one"]);
    assert_eq!(timeline(&initial, &room).last().unwrap()["event_id"], first);
    let state = joined["state"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let timeline_ids: Vec<&Value> = timeline(&initial, &room)
        .iter()
        .map(|e| &e["event_id"])
        .collect();
    assert!(
        state
            .iter()
            .all(|e| !timeline_ids.contains(&&e["event_id"])),
        "state and timeline overlap"
    );
    let all: Vec<&Value> = state.iter().chain(timeline(&initial, &room)).collect();
    assert!(all.iter().any(|e| e["type"] == "m.room.create"), "{joined}");
    assert!(
        all.iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Lobby")
    );
    assert!(joined["unread_notifications"]["notification_count"].is_u64());

    // Nothing new: an empty answer at once with timeout 0.
    let quiet = sync(addr, &alice, &format!("since={}&timeout=0", next(&initial))).await;
    assert!(quiet["rooms"]["join"].get(&room).is_none(), "{quiet}");
    // A long-poll that nothing wakes ends at its timeout, empty.
    let waited = sync(addr, &alice, &format!("since={}&timeout=300", next(&quiet))).await;
    assert!(waited["rooms"]["join"].get(&room).is_none(), "{waited}");
    assert_eq!(
        next(&waited),
        next(&quiet),
        "nothing moved: the same positions"
    );
    // full_state: the room's whole state again, though nothing is new.
    let full = sync(
        addr,
        &alice,
        &format!("since={}&timeout=300&full_state=true", next(&quiet)),
    )
    .await;
    let state = full["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let timeline_events = timeline(&full, &room).clone();
    assert!(
        state
            .iter()
            .chain(&timeline_events)
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Lobby"),
        "{full}"
    );

    say(addr, &alice, &room, "t2", "two").await;
    let inc = sync(addr, &alice, &format!("since={}&timeout=0", next(&quiet))).await;
    assert_eq!(bodies(timeline(&inc, &room)), ["two"], "only what is new");
    assert_ne!(inc["rooms"]["join"][&room]["timeline"]["limited"], true);

    for junk in ["nonsense", "s1_2", "s0_0_0_0_0"] {
        let r = get(addr, &format!("{V3}/sync?since={junk}"), Some(&alice)).await;
        assert_eq!(
            (r.status, r.errcode()),
            (400, "M_INVALID_PARAM"),
            "{junk}: {r:?}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_are_woken_by_messages_invites_typing_and_account_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, alice, bob, room) = alice_and_bob_in_a_room(tmp.path()).await;
    let since = next(&sync(addr, &alice, "").await);

    // A message from another user.
    let r = room.clone();
    let poll = poll_in_background(addr, &alice, &since, move |v| {
        v["rooms"]["join"][&r]["timeline"]["events"]
            .as_array()
            .is_some_and(|t| bodies(t).contains(&"wake up"))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = say(addr, &bob, &room, "w1", "wake up").await;
    let got = poll.await.unwrap();
    assert!(
        timeline(&got, &room)
            .iter()
            .any(|e| e["event_id"] == sent && e["sender"] == "@bob:localhost")
    );
    let since = next(&got);

    // An invite to a room Alice is not in yet.
    let other = create(addr, &bob, json!({"name": "Secret"})).await;
    let o = other.clone();
    let poll = poll_in_background(addr, &alice, &since, move |v| {
        v["rooms"]["invite"].get(&o).is_some()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = post(
        addr,
        &format!("{V3}/rooms/{other}/invite"),
        Some(&bob),
        json!({"user_id": "@alice:localhost"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = poll.await.unwrap();
    let stripped = got["rooms"]["invite"][&other]["invite_state"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    assert!(
        stripped
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret"),
        "{stripped:?}"
    );
    assert!(stripped.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == "@alice:localhost"
        && e["content"]["membership"] == "invite"));
    assert!(stripped.iter().any(|e| e["type"] == "m.room.create"));

    // Accepting it: the room comes whole, with its state, not as a delta.
    join(addr, &alice, &other).await;
    let got = sync(addr, &alice, &format!("since={}&timeout=0", next(&got))).await;
    let joined = &got["rooms"]["join"][&other];
    let everything: Vec<&Value> = joined["state"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .chain(timeline(&got, &other))
        .collect();
    assert!(
        everything.iter().any(|e| e["type"] == "m.room.create"),
        "{joined}"
    );
    assert!(
        everything.iter().any(|e| e["type"] == "m.room.name"),
        "{joined}"
    );
    assert!(got["rooms"]["invite"].get(&other).is_none(), "{got}");
    let since = next(&got);

    // A typing notice.
    let r = room.clone();
    let poll = poll_in_background(addr, &alice, &since, move |v| {
        v["rooms"]["join"][&r]["ephemeral"]["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter().any(|e| {
                    e["type"] == "m.typing" && e["content"]["user_ids"] == json!(["@bob:localhost"])
                })
            })
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = put(
        addr,
        &format!("{V3}/rooms/{room}/typing/@bob:localhost"),
        Some(&bob),
        json!({"typing": true, "timeout": 30000}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let since = next(&poll.await.unwrap());

    // Alice's own account data.
    let poll = poll_in_background(addr, &alice, &since, |v| {
        v["account_data"]["events"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["type"] == "org.example.settings" && e["content"]["theme"] == "dark")
        })
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = put(
        addr,
        &format!("{V3}/user/@alice:localhost/account_data/org.example.settings"),
        Some(&alice),
        json!({"theme": "dark"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    poll.await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_timelines_filters_and_prev_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let room = create(addr, &alice, json!({"preset": "public_chat"})).await;
    let since = next(&sync(addr, &alice, "").await);
    for i in 0..12 {
        say(addr, &alice, &room, &format!("m{i}"), &format!("msg {i}")).await;
    }
    let r = put(
        addr,
        &format!("{V3}/rooms/{room}/state/m.room.topic/"),
        Some(&alice),
        json!({"topic": "t"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Inline filter: 5 messages only.
    let filter = json!({"room": {"timeline": {"limit": 5, "types": ["m.room.message"]}}});
    let inc = sync(
        addr,
        &alice,
        &format!(
            "since={since}&timeout=0&filter={}",
            enc(&filter.to_string())
        ),
    )
    .await;
    let joined = &inc["rooms"]["join"][&room];
    assert_eq!(joined["timeline"]["limited"], true);
    assert_eq!(
        bodies(timeline(&inc, &room)),
        ["msg 7", "msg 8", "msg 9", "msg 10", "msg 11"]
    );
    // The topic fell outside the (filtered) window: it comes as state.
    assert!(
        joined["state"]["events"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .any(|e| e["type"] == "m.room.topic"),
        "{joined}"
    );

    // prev_batch pages back with /messages.
    let prev = joined["timeline"]["prev_batch"].as_str().unwrap();
    let page = get(
        addr,
        &format!("{V3}/rooms/{room}/messages?dir=b&limit=3&from={prev}"),
        Some(&alice),
    )
    .await;
    assert_eq!(page.status, 200, "{page:?}");
    let earlier: Vec<&str> = page.json["chunk"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(earlier, ["msg 6", "msg 5", "msg 4"]);

    // A stored filter, by id.
    let created = post(
        addr,
        &format!("{V3}/user/@alice:localhost/filter"),
        Some(&alice),
        json!({"room": {"timeline": {"limit": 2, "not_types": ["m.room.message"]}}}),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    let id = created.json["filter_id"].as_str().unwrap().to_owned();
    let stored = get(
        addr,
        &format!("{V3}/user/@alice:localhost/filter/{id}"),
        Some(&alice),
    )
    .await;
    assert_eq!(stored.json["room"]["timeline"]["limit"], 2, "{stored:?}");
    let (bob, _) = register(addr, "bob", "password1").await;
    let r = get(
        addr,
        &format!("{V3}/user/@alice:localhost/filter/{id}"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let inc = sync(
        addr,
        &alice,
        &format!("since={since}&timeout=0&filter={id}"),
    )
    .await;
    let events = timeline(&inc, &room);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "m.room.topic");
    // The stored filter cannot be changed through account data, so a
    // second sync with it (decoded once, then remembered) filters the same.
    let r = put(
        addr,
        &format!("{V3}/user/@alice:localhost/account_data/io.axon.filter.{id}"),
        Some(&alice),
        json!({"room": {"timeline": {"limit": 50}}}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{r:?}");
    let again = sync(
        addr,
        &alice,
        &format!("since={since}&timeout=0&filter={id}"),
    )
    .await;
    let ids =
        |events: &[Value]| -> Vec<Value> { events.iter().map(|e| e["event_id"].clone()).collect() };
    assert_eq!(ids(timeline(&again, &room)), ids(events));
    let r = get(addr, &format!("{V3}/sync?filter=nope"), Some(&alice)).await;
    assert_eq!(r.status, 400, "{r:?}");

    // Lazy-loaded members: only the senders of the timeline.
    join(addr, &bob, &room).await;
    say(addr, &alice, &room, "last", "last").await;
    let lazy = json!({"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": true}}});
    let initial = sync(addr, &bob, &format!("filter={}", enc(&lazy.to_string()))).await;
    let members: Vec<&Value> = initial["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| &e["state_key"])
        .collect();
    assert!(members.contains(&&json!("@alice:localhost")), "{members:?}");

    // Incremental syncs leave out the member events this device already
    // has, unless the filter asks for redundant members.
    let member_keys = |sync: &Value| -> Vec<Value> {
        sync["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .map(|e| e["state_key"].clone())
            .collect()
    };
    let lazy_q = enc(&lazy.to_string());
    let mut since = next(&initial);
    say(addr, &alice, &room, "again1", "again").await;
    let inc = sync(
        addr,
        &bob,
        &format!("since={since}&timeout=0&filter={lazy_q}"),
    )
    .await;
    assert_eq!(timeline(&inc, &room).len(), 1, "{inc}");
    assert!(
        member_keys(&inc).is_empty(),
        "alice's member event again: {inc}"
    );
    since = next(&inc);
    let redundant = json!({"room": {"timeline": {"limit": 1},
        "state": {"lazy_load_members": true, "include_redundant_members": true}}});
    say(addr, &alice, &room, "again2", "again").await;
    let inc = sync(
        addr,
        &bob,
        &format!(
            "since={since}&timeout=0&filter={}",
            enc(&redundant.to_string())
        ),
    )
    .await;
    assert_eq!(member_keys(&inc), vec![json!("@alice:localhost")], "{inc}");
    // A new member event (a name change) is sent again.
    since = next(&inc);
    let r = put(
        addr,
        &format!("{V3}/profile/@alice:localhost/displayname"),
        Some(&alice),
        json!({"displayname": "Alice A."}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    say(addr, &alice, &room, "again3", "again").await;
    let inc = sync(
        addr,
        &bob,
        &format!("since={since}&timeout=0&filter={lazy_q}"),
    )
    .await;
    let all: Vec<&Value> = inc["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .chain(
            inc["rooms"]["join"][&room]["state"]["events"]
                .as_array()
                .map_or(&[][..], Vec::as_slice),
        )
        .filter(|e| e["type"] == "m.room.member")
        .collect();
    assert!(
        all.iter()
            .any(|e| e["content"]["displayname"] == "Alice A."),
        "the renamed member: {inc}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_receipts_presence_and_account_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, alice, bob, room) = alice_and_bob_in_a_room(tmp.path()).await;
    let bob_since = next(&sync(addr, &bob, "").await);
    let alice_since = next(&sync(addr, &alice, "").await);

    // Receipts: Bob reads Alice's message; Alice sees it, not the private one.
    let msg = say(addr, &alice, &room, "r1", "read me").await;
    let before = sync(addr, &bob, &format!("since={bob_since}&timeout=0")).await;
    assert_eq!(
        before["rooms"]["join"][&room]["unread_notifications"]["notification_count"], 1,
        "{before}"
    );
    read_receipt(addr, &bob, &room, &msg).await;
    let seen = sync_until(addr, &alice, &alice_since, |v| {
        v["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["type"] == "m.receipt"))
    })
    .await;
    let receipt = seen["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .unwrap();
    assert!(
        receipt["content"][&msg]["m.read"]["@bob:localhost"]["ts"].is_u64(),
        "{receipt}"
    );
    let after = sync(addr, &bob, &format!("since={}&timeout=0", next(&before))).await;
    assert_eq!(
        after["rooms"]["join"][&room]["unread_notifications"]["notification_count"], 0,
        "{after}"
    );
    let r = post(
        addr,
        &format!("{V3}/rooms/{room}/read_markers"),
        Some(&alice),
        json!({"m.fully_read": msg, "m.read.private": msg}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let own = sync(addr, &alice, "").await;
    let joined = &own["rooms"]["join"][&room];
    assert!(
        joined["account_data"]["events"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .any(|e| e["type"] == "m.fully_read" && e["content"]["event_id"] == msg),
        "{joined}"
    );
    let receipts = &joined["ephemeral"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .unwrap()["content"][&msg];
    assert!(
        receipts["m.read.private"]["@alice:localhost"].is_object(),
        "{receipts}"
    );
    let bobs = sync(addr, &bob, "").await;
    let theirs = &bobs["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .unwrap()["content"][&msg];
    assert!(
        theirs.get("m.read.private").is_none(),
        "private receipts stay private: {theirs}"
    );

    // Presence: Bob sets it; Alice sees it in /sync and by GET. Carol, who
    // shares no room with Alice, sets hers too; Alice does not see it.
    let (carol, _) = register(addr, "carol", "carol-password").await;
    let r = set_presence(addr, &carol, "carol", "elsewhere").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = set_presence(addr, &bob, "bob", "lunch").await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = get(
        addr,
        &format!("{V3}/presence/@bob:localhost/status"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        (
            got.json["presence"].as_str(),
            got.json["status_msg"].as_str()
        ),
        (Some("unavailable"), Some("lunch")),
        "{got:?}"
    );
    let r = put(
        addr,
        &format!("{V3}/presence/@bob:localhost/status"),
        Some(&alice),
        json!({"presence": "online"}),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let presence = sync(
        addr,
        &alice,
        &format!("since={alice_since}&timeout=0&set_presence=offline"),
    )
    .await;
    assert!(
        presence["presence"]["events"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .any(|e| e["sender"] == "@bob:localhost"
                && e["content"]["presence"] == "unavailable"
                && e["content"]["status_msg"] == "lunch"),
        "{presence}"
    );
    assert!(
        !presence["presence"]["events"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .any(|e| e["sender"] == "@carol:localhost"),
        "presence of a user sharing no room: {presence}"
    );

    // Account data: global and per room, only the owner's.
    let r = put(
        addr,
        &format!("{V3}/user/@bob:localhost/rooms/{room}/account_data/org.example.tag"),
        Some(&bob),
        json!({"pinned": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get(
        addr,
        &format!("{V3}/user/@bob:localhost/rooms/{room}/account_data/org.example.tag"),
        Some(&bob),
    )
    .await;
    assert_eq!(r.json["pinned"], true, "{r:?}");
    let r = get(
        addr,
        &format!("{V3}/user/@bob:localhost/account_data/org.example.none"),
        Some(&bob),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = get(
        addr,
        &format!("{V3}/user/@bob:localhost/rooms/{room}/account_data/org.example.tag"),
        Some(&alice),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    // Bob leaves: his next sync has the room under `leave`, ending with it.
    let since = next(&sync(addr, &bob, "").await);
    say(addr, &alice, &room, "bye", "before you go").await;
    let r = post(
        addr,
        &format!("{V3}/rooms/{room}/leave"),
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    say(addr, &alice, &room, "gone", "after you left").await;
    // Every send was acknowledged, so one sync sees all of it.
    let left = sync(addr, &bob, &format!("since={since}&timeout=0")).await;
    let events = left["rooms"]["leave"][&room]["timeline"]["events"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    assert_eq!(bodies(events), ["before you go"]);
    let last = events.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["content"]["membership"].as_str()
        ),
        (Some("m.room.member"), Some("leave"))
    );
    assert!(left["rooms"]["join"].get(&room).is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_matrix_clients_meet_in_sync_and_typing() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, alice, bob, room) = alice_and_bob_in_a_room(tmp.path()).await;
    let since = next(&sync(addr, &alice, "").await);

    let config = ClientConfig::new(format!("ws://{addr}/_axon/v1/ws"), Auth::Token(bob));
    let native = Client::connect(config).await.unwrap();
    native.subscribe(&room).await.unwrap();
    let mut ephemeral = native.ephemeral();

    // Native send → Matrix /sync, same event id.
    let r = room.clone();
    let poll = poll_in_background(addr, &alice, &since, move |v| {
        v["rooms"]["join"][&r]["timeline"]["events"]
            .as_array()
            .is_some_and(|t| bodies(t).contains(&"from native"))
    });
    let ack = native
        .send(
            &room,
            "m.room.message",
            r#"{"msgtype":"m.text","body":"from native"}"#,
        )
        .await
        .unwrap();
    let got = poll.await.unwrap();
    let e = timeline(&got, &room)
        .iter()
        .find(|e| e["content"]["body"] == "from native")
        .unwrap();
    assert_eq!(e["event_id"], ack.event_id.as_str());
    assert_eq!(e["unsigned"]["io.axon.seq"], ack.seq);

    // Matrix typing → the native client's ephemeral stream.
    let r = put(
        addr,
        &format!("{V3}/rooms/{room}/typing/@alice:localhost"),
        Some(&alice),
        json!({"typing": true, "timeout": 10000}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let typing = tokio::time::timeout(GUARD, async {
        loop {
            match ephemeral.recv().await {
                Ok(Ephemeral::Typing { room_id, user_ids }) if room_id == room => break user_ids,
                Ok(_) => {}
                Err(e) => panic!("ephemeral stream: {e}"),
            }
        }
    })
    .await
    .expect("the typing notice reaches the native client");
    assert_eq!(typing, ["@alice:localhost"]);

    // Native typing → Matrix /sync.
    native
        .typing(&room, true, Duration::from_secs(10))
        .await
        .unwrap();
    sync_until(addr, &alice, &next(&got), |v| {
        v["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .is_some_and(|e| {
                e.iter().any(|e| {
                    e["type"] == "m.typing"
                        && e["content"]["user_ids"]
                            .as_array()
                            .is_some_and(|u| u.contains(&json!("@bob:localhost")))
                })
            })
    })
    .await;
    native.close().await;
    server.shutdown().await.unwrap();
}

/// Unread counts stay right across incremental syncs that each carry some
/// of the new events (counted from the window) and quiet ones (no count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_incremental_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, alice, bob, room) = alice_and_bob_in_a_room(tmp.path()).await;
    let count =
        |v: &Value| v["rooms"]["join"][&room]["unread_notifications"]["notification_count"].clone();
    let mut since = next(&sync(addr, &bob, "").await);
    let mut expected = 0;
    for round in 0..4 {
        // Alice's messages count for Bob, Bob's own do not.
        for i in 0..=round {
            say(addr, &alice, &room, &format!("a{round}-{i}"), "hi").await;
            expected += 1;
        }
        say(addr, &bob, &room, &format!("b{round}"), "mine").await;
        let inc = sync(addr, &bob, &format!("since={since}&timeout=0")).await;
        assert_eq!(count(&inc), expected, "round {round}: {inc}");
        since = next(&inc);
    }
    let last = say(addr, &alice, &room, "last", "read up to here").await;
    expected += 1;
    let inc = sync(addr, &bob, &format!("since={since}&timeout=0")).await;
    assert_eq!(count(&inc), expected, "{inc}");
    since = next(&inc);
    read_receipt(addr, &bob, &room, &last).await;
    say(addr, &alice, &room, "after", "new").await;
    let inc = sync(addr, &bob, &format!("since={since}&timeout=0")).await;
    assert_eq!(count(&inc), 1, "only what came after the receipt: {inc}");
    // A fresh initial sync counts the same without a window.
    let initial = sync(addr, &bob, "").await;
    assert_eq!(count(&initial), 1, "{initial}");
    server.shutdown().await.unwrap();
}
