//! Matrix rooms over real HTTP: createRoom with presets, membership and its
//! rules, the alias directory and the public room list, state, sends,
//! redactions, `/messages` and `/context`, profile propagation, and one
//! timeline shared with the native faces.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axon_client::{Auth, Client, ClientConfig};
use common::matrix::{V3, create, delete, get, post, put, register, say, send, start};
use serde_json::{Value, json};

/// The current state event of `(type, key)` in `state` (a `/state` answer).
fn state_of<'a>(state: &'a Value, event_type: &str, key: &str) -> &'a Value {
    state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == event_type && e["state_key"] == key)
        .unwrap_or_else(|| panic!("no {event_type}/{key} in {state}"))
}

async fn membership(addr: SocketAddr, token: &str, room: &str, user: &str) -> Value {
    let r = get(
        addr,
        &format!("{V3}/rooms/{room}/state/m.room.member/{user}"),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["membership"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_presets_options_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;

    let room = create(
        addr,
        &alice,
        json!({
            "preset": "public_chat",
            "visibility": "public",
            "name": "Lobby",
            "topic": "hello",
            "room_alias_name": "lobby",
            "initial_state": [{"type": "org.example.flag", "content": {"on": true}}],
            "power_level_content_override": {"events_default": 10},
        }),
    )
    .await;
    assert!(
        room.starts_with('!') && room.ends_with(":localhost"),
        "{room}"
    );
    let state = get(addr, &format!("{V3}/rooms/{room}/state"), Some(&alice)).await;
    assert_eq!(state.status, 200, "{state:?}");
    let state = state.json;
    let create_event = state_of(&state, "m.room.create", "");
    assert_eq!(create_event["content"]["room_version"], "11");
    assert_eq!(create_event["sender"], "@alice:localhost");
    assert_eq!(create_event["room_id"], room.as_str());
    assert!(create_event["event_id"].as_str().unwrap().starts_with('$'));
    assert!(create_event["unsigned"]["age"].is_u64());
    assert_eq!(
        state_of(&state, "m.room.join_rules", "")["content"]["join_rule"],
        "public"
    );
    assert_eq!(
        state_of(&state, "m.room.history_visibility", "")["content"]["history_visibility"],
        "shared"
    );
    assert_eq!(
        state_of(&state, "m.room.guest_access", "")["content"]["guest_access"],
        "forbidden"
    );
    assert_eq!(
        state_of(&state, "m.room.name", "")["content"]["name"],
        "Lobby"
    );
    assert_eq!(
        state_of(&state, "m.room.topic", "")["content"]["topic"],
        "hello"
    );
    assert_eq!(
        state_of(&state, "m.room.canonical_alias", "")["content"]["alias"],
        "#lobby:localhost"
    );
    assert_eq!(
        state_of(&state, "org.example.flag", "")["content"]["on"],
        true
    );
    let pl = &state_of(&state, "m.room.power_levels", "")["content"];
    assert_eq!(pl["users"]["@alice:localhost"], 100);
    assert_eq!(pl["events_default"], 10, "the override is applied");
    assert_eq!(pl["events"]["m.room.power_levels"], 100);

    // One state event, by empty state key with and without the slash.
    for path in ["state/m.room.name", "state/m.room.name/"] {
        let r = get(addr, &format!("{V3}/rooms/{room}/{path}"), Some(&alice)).await;
        assert_eq!(
            (r.status, &r.json),
            (200, &json!({"name": "Lobby"})),
            "{path}"
        );
    }
    let full = get(
        addr,
        &format!("{V3}/rooms/{room}/state/m.room.name/?format=event"),
        Some(&alice),
    )
    .await;
    assert_eq!(full.json["state_key"], "", "{full:?}");
    assert_eq!(full.json["content"]["name"], "Lobby");
    let missing = get(
        addr,
        &format!("{V3}/rooms/{room}/state/m.room.avatar"),
        Some(&alice),
    )
    .await;
    assert_eq!((missing.status, missing.errcode()), (404, "M_NOT_FOUND"));

    // The alias resolves, and is taken now.
    let alias = get(
        addr,
        &format!("{V3}/directory/room/%23lobby:localhost"),
        None,
    )
    .await;
    assert_eq!(alias.json["room_id"], room.as_str(), "{alias:?}");
    let taken = post(
        addr,
        &format!("{V3}/createRoom"),
        Some(&bob),
        json!({"room_alias_name": "lobby"}),
    )
    .await;
    assert_eq!((taken.status, taken.errcode()), (400, "M_ROOM_IN_USE"));
    let bad_alias = post(
        addr,
        &format!("{V3}/createRoom"),
        Some(&bob),
        json!({"room_alias_name": "has space"}),
    )
    .await;
    assert_eq!(
        (bad_alias.status, bad_alias.errcode()),
        (400, "M_INVALID_PARAM")
    );

    // Room versions.
    let old = post(
        addr,
        &format!("{V3}/createRoom"),
        Some(&bob),
        json!({"room_version": "1"}),
    )
    .await;
    assert_eq!(
        (old.status, old.errcode()),
        (400, "M_UNSUPPORTED_ROOM_VERSION")
    );
    let v10 = create(addr, &bob, json!({"room_version": "10"})).await;
    let v10_create = get(
        addr,
        &format!("{V3}/rooms/{v10}/state/m.room.create/"),
        Some(&bob),
    )
    .await;
    assert_eq!(v10_create.json["room_version"], "10");
    let caps = get(addr, &format!("{V3}/capabilities"), Some(&bob)).await;
    assert_eq!(
        caps.json["capabilities"]["m.room_versions"]["default"],
        "11"
    );

    // Private and trusted private chats, with a direct invite.
    let dm = create(
        addr,
        &alice,
        json!({"preset": "trusted_private_chat", "invite": ["@bob:localhost"], "is_direct": true}),
    )
    .await;
    let dm_state = get(addr, &format!("{V3}/rooms/{dm}/state"), Some(&alice))
        .await
        .json;
    assert_eq!(
        state_of(&dm_state, "m.room.join_rules", "")["content"]["join_rule"],
        "invite"
    );
    assert_eq!(
        state_of(&dm_state, "m.room.guest_access", "")["content"]["guest_access"],
        "can_join"
    );
    let invite = &state_of(&dm_state, "m.room.member", "@bob:localhost")["content"];
    assert_eq!(invite["membership"], "invite");
    assert_eq!(invite["is_direct"], true);
    assert_eq!(
        state_of(&dm_state, "m.room.power_levels", "")["content"]["users"]["@bob:localhost"],
        100
    );
    let private = create(addr, &alice, json!({})).await;
    let private_state = get(addr, &format!("{V3}/rooms/{private}/state"), Some(&alice))
        .await
        .json;
    assert_eq!(
        state_of(&private_state, "m.room.join_rules", "")["content"]["join_rule"],
        "invite",
        "no preset and private visibility: private_chat"
    );

    let joined = get(addr, &format!("{V3}/joined_rooms"), Some(&alice)).await;
    let joined: Vec<&str> = joined.json["joined_rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for r in [&room, &dm, &private] {
        assert!(joined.contains(&r.as_str()), "{joined:?}");
    }
    assert!(!joined.contains(&v10.as_str()));

    // Bad requests and tokens.
    let not_json = send(
        addr,
        "POST",
        &format!("{V3}/createRoom"),
        Some(&alice),
        Some(b"{nope"),
    )
    .await;
    assert_eq!((not_json.status, not_json.errcode()), (400, "M_NOT_JSON"));
    let shape = post(
        addr,
        &format!("{V3}/createRoom"),
        Some(&alice),
        json!({"invite": "@bob:localhost"}),
    )
    .await;
    assert_eq!((shape.status, shape.errcode()), (400, "M_BAD_JSON"));
    let no_token = post(addr, &format!("{V3}/createRoom"), None, json!({})).await;
    assert_eq!(
        (no_token.status, no_token.errcode()),
        (401, "M_MISSING_TOKEN")
    );
    let bad_token = post(addr, &format!("{V3}/createRoom"), Some("nope"), json!({})).await;
    assert_eq!(
        (bad_token.status, bad_token.errcode()),
        (401, "M_UNKNOWN_TOKEN")
    );
    let r0 = get(addr, "/_matrix/client/r0/joined_rooms", Some(&alice)).await;
    assert_eq!(r0.status, 200, "the r0 path too");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_follows_join_rules_power_levels_and_bans() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;
    let (carol, _) = register(addr, "carol", "password1").await;
    let room = create(addr, &alice, json!({"preset": "private_chat"})).await;
    let path = |what: &str| format!("{V3}/rooms/{room}/{what}");

    // Invite-only: no invite, no entry.
    let r = post(addr, &path("join"), Some(&bob), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "{r:?}");
    let r = post(
        addr,
        &format!("{V3}/rooms/!nope:localhost/join"),
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = post(
        addr,
        &path("invite"),
        Some(&bob),
        json!({"user_id": "@carol:localhost"}),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "non-members do not invite"
    );
    let r = post(
        addr,
        &path("invite"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        membership(addr, &alice, &room, "@bob:localhost").await,
        "invite"
    );
    let r = post(
        addr,
        &format!("{V3}/join/{room}"),
        Some(&bob),
        json!({"reason": "hi"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["room_id"].as_str()),
        (200, Some(room.as_str()))
    );

    let members = get(addr, &path("joined_members"), Some(&bob)).await;
    assert_eq!(members.status, 200, "{members:?}");
    let joined = members.json["joined"].as_object().unwrap();
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(joined.contains_key("@alice:localhost") && joined.contains_key("@bob:localhost"));
    let outsider = get(addr, &path("joined_members"), Some(&carol)).await;
    assert_eq!((outsider.status, outsider.errcode()), (403, "M_FORBIDDEN"));

    // Power: bob (0) cannot kick or ban alice (100); alice can kick bob.
    let r = post(
        addr,
        &path("kick"),
        Some(&bob),
        json!({"user_id": "@alice:localhost"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = post(
        addr,
        &path("ban"),
        Some(&bob),
        json!({"user_id": "@alice:localhost"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = post(
        addr,
        &path("kick"),
        Some(&alice),
        json!({"user_id": "@bob:localhost", "reason": "out"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        membership(addr, &alice, &room, "@bob:localhost").await,
        "leave"
    );
    let r = get(addr, &path("messages?dir=b"), Some(&bob)).await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "kicked: no reading"
    );

    // A ban keeps bob out, even with an invite, until unbanned.
    let r = post(
        addr,
        &path("ban"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(addr, &path("join"), Some(&bob), json!({})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = post(
        addr,
        &path("invite"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = post(
        addr,
        &path("kick"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "a kick does not unban"
    );
    let r = post(
        addr,
        &path("unban"),
        Some(&alice),
        json!({"user_id": "@carol:localhost"}),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "carol is not banned"
    );
    let r = post(
        addr,
        &path("unban"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(addr, &path("join"), Some(&bob), json!({})).await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "unbanned is not invited"
    );
    post(
        addr,
        &path("invite"),
        Some(&alice),
        json!({"user_id": "@bob:localhost"}),
    )
    .await;
    let r = post(addr, &path("join"), Some(&bob), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Leave and forget.
    let r = post(addr, &path("forget"), Some(&bob), json!({})).await;
    assert_eq!(r.status, 400, "forget needs a leave first: {r:?}");
    let r = post(addr, &path("leave"), Some(&bob), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rooms = get(addr, &format!("{V3}/joined_rooms"), Some(&bob)).await;
    assert_eq!(rooms.json["joined_rooms"], json!([]));
    let r = post(addr, &path("forget"), Some(&bob), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Member lists with filters.
    let all = get(addr, &path("members"), Some(&alice)).await;
    assert_eq!(all.json["chunk"].as_array().unwrap().len(), 2, "{all:?}");
    let left = get(addr, &path("members?membership=leave"), Some(&alice)).await;
    let left = left.json["chunk"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["state_key"], "@bob:localhost");
    let not_left = get(addr, &path("members?not_membership=leave"), Some(&alice)).await;
    assert_eq!(not_left.json["chunk"][0]["state_key"], "@alice:localhost");

    // As of a point in the past: at t2 only alice had joined.
    let early = get(addr, &path("members?at=t2"), Some(&alice)).await;
    let early = early.json["chunk"].as_array().unwrap().clone();
    assert_eq!(early.len(), 1, "{early:?}");
    assert_eq!(early[0]["state_key"], "@alice:localhost");
    let r = get(addr, &path("members?at=junk"), Some(&alice)).await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));

    // Knocking, once the join rule allows it.
    let r = post(addr, &format!("{V3}/knock/{room}"), Some(&carol), json!({})).await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "not a knock room"
    );
    let r = put(
        addr,
        &path("state/m.room.join_rules/"),
        Some(&alice),
        json!({"join_rule": "knock"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        addr,
        &format!("{V3}/knock/{room}"),
        Some(&carol),
        json!({"reason": "let me in"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["room_id"].as_str()),
        (200, Some(room.as_str()))
    );
    let knocks = get(addr, &path("members?membership=knock"), Some(&alice)).await;
    assert_eq!(knocks.json["chunk"][0]["state_key"], "@carol:localhost");
    assert_eq!(knocks.json["chunk"][0]["content"]["reason"], "let me in");

    // Public rooms are joined by alias.
    let public = create(
        addr,
        &alice,
        json!({"preset": "public_chat", "room_alias_name": "town"}),
    )
    .await;
    let r = post(
        addr,
        &format!("{V3}/join/%23town:localhost"),
        Some(&carol),
        json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["room_id"].as_str()),
        (200, Some(public.as_str()))
    );
    let r = post(
        addr,
        &format!("{V3}/join/%23nowhere:localhost"),
        Some(&carol),
        json!({}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_the_public_room_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;
    let room = create(
        addr,
        &alice,
        json!({"preset": "public_chat", "name": "Gardening"}),
    )
    .await;
    let alias_path = format!("{V3}/directory/room/%23garden:localhost");

    let r = put(addr, &alias_path, Some(&bob), json!({"room_id": room})).await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "bob is not in the room"
    );
    let r = put(addr, &alias_path, Some(&alice), json!({"room_id": room})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = put(addr, &alias_path, Some(&alice), json!({"room_id": room})).await;
    assert_eq!((r.status, r.errcode()), (409, "M_ROOM_IN_USE"));
    let r = put(
        addr,
        &format!("{V3}/directory/room/%23garden:elsewhere.org"),
        Some(&alice),
        json!({"room_id": room}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = put(
        addr,
        &format!("{V3}/directory/room/garden"),
        Some(&alice),
        json!({"room_id": room}),
    )
    .await;
    assert_eq!(r.status, 400, "not an alias at all: {r:?}");
    let r = put(
        addr,
        &format!("{V3}/directory/room/%23ghost:localhost"),
        Some(&alice),
        json!({"room_id": "!nope:localhost"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    let r = get(addr, &alias_path, None).await;
    assert_eq!(r.json["room_id"], room.as_str(), "{r:?}");
    assert_eq!(r.json["servers"], json!(["localhost"]));
    let r = get(addr, &format!("{V3}/rooms/{room}/aliases"), Some(&alice)).await;
    assert_eq!(r.json["aliases"], json!(["#garden:localhost"]), "{r:?}");
    let r = get(addr, &format!("{V3}/rooms/{room}/aliases"), Some(&bob)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));

    // Bob joins at power 0: he may not delete alice's alias; she may.
    post(
        addr,
        &format!("{V3}/rooms/{room}/join"),
        Some(&bob),
        json!({}),
    )
    .await;
    let r = delete(addr, &alias_path, Some(&bob)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = delete(addr, &alias_path, Some(&alice)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get(addr, &alias_path, None).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = delete(addr, &alias_path, Some(&alice)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));

    // Visibility in the directory.
    let list = format!("{V3}/directory/list/room/{room}");
    assert_eq!(get(addr, &list, None).await.json["visibility"], "private");
    let r = put(addr, &list, Some(&bob), json!({"visibility": "public"})).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let r = put(addr, &list, Some(&alice), json!({"visibility": "public"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(addr, &list, None).await.json["visibility"], "public");
    let r = get(
        addr,
        &format!("{V3}/directory/list/room/!nope:localhost"),
        None,
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let other = create(
        addr,
        &bob,
        json!({"visibility": "public", "name": "Chess", "topic": "openings"}),
    )
    .await;

    let r = get(addr, &format!("{V3}/publicRooms"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["total_room_count_estimate"], 2);
    let chunk = r.json["chunk"].as_array().unwrap();
    let garden = chunk
        .iter()
        .find(|c| c["room_id"] == room.as_str())
        .unwrap();
    assert_eq!(garden["name"], "Gardening");
    assert_eq!(garden["num_joined_members"], 2);
    // ruma leaves out the default join rule, `public`.
    assert!(matches!(
        garden.get("join_rule"),
        None | Some(Value::String(_))
    ));
    assert_ne!(garden["join_rule"], "invite");
    assert_eq!(garden["world_readable"], false);

    // Paging, one room at a time.
    let first = get(addr, &format!("{V3}/publicRooms?limit=1"), None).await;
    assert_eq!(first.json["chunk"].as_array().unwrap().len(), 1);
    let since = first.json["next_batch"].as_str().unwrap().to_owned();
    let second = get(
        addr,
        &format!("{V3}/publicRooms?limit=1&since={since}"),
        None,
    )
    .await;
    assert_eq!(
        second.json["chunk"].as_array().unwrap().len(),
        1,
        "{second:?}"
    );
    assert_ne!(
        second.json["chunk"][0]["room_id"],
        first.json["chunk"][0]["room_id"]
    );
    assert!(second.json.get("next_batch").is_none(), "{second:?}");
    let bad = get(addr, &format!("{V3}/publicRooms?since=junk"), None).await;
    assert_eq!((bad.status, bad.errcode()), (400, "M_INVALID_PARAM"));

    // Searching (POST needs a token).
    let search = |term: &str| json!({"filter": {"generic_search_term": term}});
    let r = post(
        addr,
        &format!("{V3}/publicRooms"),
        Some(&alice),
        search("OPENING"),
    )
    .await;
    let chunk = r.json["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 1, "{r:?}");
    assert_eq!(chunk[0]["room_id"], other.as_str());
    let r = post(
        addr,
        &format!("{V3}/publicRooms"),
        Some(&alice),
        search("nothing"),
    )
    .await;
    assert_eq!(r.json["chunk"], json!([]));
    let r = post(addr, &format!("{V3}/publicRooms"), None, search("x")).await;
    assert_eq!((r.status, r.errcode()), (401, "M_MISSING_TOKEN"));

    // Taken out again.
    put(addr, &list, Some(&alice), json!({"visibility": "private"})).await;
    let r = get(addr, &format!("{V3}/publicRooms"), None).await;
    assert_eq!(r.json["chunk"].as_array().unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_read_paginate_and_redact() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;
    let (carol, _) = register(addr, "carol", "password1").await;
    let room = create(addr, &alice, json!({"preset": "public_chat"})).await;
    let path = |what: &str| format!("{V3}/rooms/{room}/{what}");
    post(addr, &path("join"), Some(&bob), json!({})).await;

    // Idempotent per (device, transaction id).
    let first = say(addr, &alice, &room, "txn1", "one").await;
    assert_eq!(say(addr, &alice, &room, "txn1", "one again").await, first);
    let bob_msg = say(addr, &bob, &room, "txn1", "two").await;
    assert_ne!(bob_msg, first, "transaction ids are per device");
    let third = say(addr, &alice, &room, "txn2", "three").await;

    // Who may send.
    let r = put(
        addr,
        &path("send/m.room.message/t"),
        Some(&carol),
        json!({"body": "x"}),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "carol is not in the room"
    );
    let r = put(
        addr,
        &format!("{V3}/rooms/!nope:localhost/send/m.room.message/t"),
        Some(&alice),
        json!({"body": "x"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = send(
        addr,
        "PUT",
        &path("send/m.room.message/t3"),
        Some(&alice),
        Some(b"{nope"),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (400, "M_NOT_JSON"));
    let r = put(
        addr,
        &path("send/m.room.message/t4"),
        Some(&alice),
        json!([1]),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (400, "M_BAD_JSON"));
    let r = put(
        addr,
        &path("state/m.room.name/"),
        Some(&bob),
        json!({"name": "mine"}),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "state needs power 50"
    );
    let r = put(
        addr,
        &path("state/m.room.name/"),
        Some(&alice),
        json!({"name": "ours"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json["event_id"].as_str().unwrap().starts_with('$'));

    // Single events.
    let e = get(addr, &path(&format!("event/{first}")), Some(&bob)).await;
    assert_eq!(e.status, 200, "{e:?}");
    assert_eq!(e.json["content"]["body"], "one");
    assert_eq!(e.json["sender"], "@alice:localhost");
    assert_eq!(e.json["type"], "m.room.message");
    assert!(e.json.get("state_key").is_none());
    assert!(
        e.json["unsigned"].get("transaction_id").is_none(),
        "only the sending device sees its transaction id"
    );
    let own = get(addr, &path(&format!("event/{first}")), Some(&alice)).await;
    assert_eq!(own.json["unsigned"]["transaction_id"], "txn1", "{own:?}");
    let r = get(addr, &path("event/$nope"), Some(&bob)).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let r = get(addr, &path(&format!("event/{first}")), Some(&carol)).await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let elsewhere = create(addr, &alice, json!({})).await;
    let r = get(
        addr,
        &format!("{V3}/rooms/{elsewhere}/event/{first}"),
        Some(&alice),
    )
    .await;
    assert_eq!(
        (r.status, r.errcode()),
        (404, "M_NOT_FOUND"),
        "not of that room"
    );

    // Pages backward and forward.
    let page = get(addr, &path("messages?dir=b&limit=2"), Some(&bob)).await;
    assert_eq!(page.status, 200, "{page:?}");
    let chunk = page.json["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 2);
    assert_eq!(chunk[0]["type"], "m.room.name", "newest first");
    assert_eq!(chunk[1]["event_id"], third.as_str());
    let end = page.json["end"].as_str().unwrap().to_owned();
    let next = get(
        addr,
        &path(&format!("messages?dir=b&limit=2&from={end}")),
        Some(&bob),
    )
    .await;
    assert_eq!(next.json["chunk"][0]["event_id"], bob_msg.as_str());
    assert_eq!(next.json["chunk"][1]["event_id"], first.as_str());
    let everything = get(addr, &path("messages?dir=f&limit=100"), Some(&bob)).await;
    let all = everything.json["chunk"].as_array().unwrap();
    assert_eq!(all[0]["type"], "m.room.create", "forward from the start");
    assert!(
        everything.json.get("end").is_none(),
        "the whole timeline: {everything:?}"
    );
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["unsigned"]["io.axon.seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let to = get(
        addr,
        &path(&format!("messages?dir=b&from={end}&to=t2")),
        Some(&bob),
    )
    .await;
    let bounded = to.json["chunk"].as_array().unwrap();
    assert!(
        bounded
            .iter()
            .all(|e| e["unsigned"]["io.axon.seq"].as_u64().unwrap() > 2)
    );
    let bad = get(addr, &path("messages?dir=b&from=junk"), Some(&bob)).await;
    assert_eq!((bad.status, bad.errcode()), (400, "M_INVALID_PARAM"));

    // Filters: types, senders, and the senders' member events.
    let filter = json!({"types": ["m.room.message"], "not_senders": ["@bob:localhost"], "lazy_load_members": true});
    let filtered = get(
        addr,
        &path(&format!(
            "messages?dir=b&limit=10&filter={}",
            urlencode(&filter.to_string())
        )),
        Some(&bob),
    )
    .await;
    assert_eq!(filtered.status, 200, "{filtered:?}");
    let ids: Vec<&str> = filtered.json["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids, [third.as_str(), first.as_str()]);
    let members = filtered.json["state"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["state_key"], "@alice:localhost");

    // Context.
    let ctx = get(
        addr,
        &path(&format!("context/{bob_msg}?limit=2")),
        Some(&bob),
    )
    .await;
    assert_eq!(ctx.status, 200, "{ctx:?}");
    assert_eq!(ctx.json["event"]["event_id"], bob_msg.as_str());
    assert_eq!(ctx.json["events_before"][0]["event_id"], first.as_str());
    assert_eq!(ctx.json["events_after"][0]["event_id"], third.as_str());
    assert!(ctx.json["start"].is_string() && ctx.json["end"].is_string());
    assert!(!ctx.json["state"].as_array().unwrap().is_empty());

    // Redactions: your own, or others' with the redact level (50).
    let r = put(
        addr,
        &path(&format!("redact/{first}/r1")),
        Some(&bob),
        json!({"reason": "no"}),
    )
    .await;
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "bob is at 0");
    let r = put(
        addr,
        &path(&format!("redact/{bob_msg}/r2")),
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = put(
        addr,
        &path(&format!("redact/{first}/r3")),
        Some(&alice),
        json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let redaction = r.json["event_id"].as_str().unwrap().to_owned();
    let retry = put(
        addr,
        &path(&format!("redact/{first}/r3")),
        Some(&alice),
        json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(retry.json["event_id"], redaction.as_str(), "idempotent too");
    let r = put(addr, &path("redact/$nope/r4"), Some(&alice), json!({})).await;
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let e = get(addr, &path(&format!("event/{first}")), Some(&bob)).await;
    assert_eq!(e.json["content"], json!({}), "{e:?}");
    assert_eq!(
        e.json["unsigned"]["redacted_because"]["event_id"],
        redaction.as_str()
    );
    let r = get(addr, &path(&format!("event/{redaction}")), Some(&bob)).await;
    assert_eq!(r.json["type"], "m.room.redaction");
    assert_eq!(r.json["content"]["redacts"], first.as_str());
    assert_eq!(r.json["content"]["reason"], "spam");
    assert_eq!(r.json["redacts"], first.as_str());
    let e = get(addr, &path(&format!("event/{third}")), Some(&bob)).await;
    assert_eq!(e.json["content"]["body"], "three", "others stay");
    let r = put(
        addr,
        &path("send/m.room.redaction/t9"),
        Some(&bob),
        json!({"redacts": third}),
    )
    .await;
    assert_eq!(r.status, 400, "redactions go through /redact: {r:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_reaches_every_joined_room() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let rooms = [
        create(addr, &alice, json!({})).await,
        create(addr, &alice, json!({})).await,
    ];
    let r = put(
        addr,
        &format!("{V3}/profile/@alice:localhost/displayname"),
        Some(&alice),
        json!({"displayname": "Alice A."}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = put(
        addr,
        &format!("{V3}/profile/@alice:localhost/avatar_url"),
        Some(&alice),
        json!({"avatar_url": "mxc://localhost/abc"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    for room in &rooms {
        let member = get(
            addr,
            &format!("{V3}/rooms/{room}/state/m.room.member/@alice:localhost"),
            Some(&alice),
        )
        .await;
        assert_eq!(
            member.json,
            json!({"membership": "join", "displayname": "Alice A.", "avatar_url": "mxc://localhost/abc"})
        );
        let joined = get(
            addr,
            &format!("{V3}/rooms/{room}/joined_members"),
            Some(&alice),
        )
        .await;
        assert_eq!(
            joined.json["joined"]["@alice:localhost"]["display_name"],
            "Alice A."
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_and_native_clients_share_one_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (alice, _) = register(addr, "alice", "password1").await;
    let (bob, _) = register(addr, "bob", "password1").await;
    let room = create(addr, &alice, json!({"preset": "public_chat"})).await;
    post(
        addr,
        &format!("{V3}/rooms/{room}/join"),
        Some(&bob),
        json!({}),
    )
    .await;

    // Bob on the native WebSocket face, with his Matrix token.
    let config = ClientConfig::new(format!("ws://{addr}/_axon/v1/ws"), Auth::Token(bob));
    let native = Client::connect(config).await.unwrap();
    let head = native.subscribe(&room).await.unwrap().head;

    // Matrix → native: the same event id and seq.
    let sent = say(addr, &alice, &room, "m1", "from matrix").await;
    let seen = loop {
        let e = tokio::time::timeout(Duration::from_secs(10), native.next_event())
            .await
            .expect("the event reaches the native client")
            .expect("the stream stays open");
        if e.seq > head {
            break e;
        }
    };
    assert_eq!(seen.event_id, sent);
    assert_eq!(seen.sender, "@alice:localhost");
    let over_matrix = get(
        addr,
        &format!("{V3}/rooms/{room}/event/{sent}"),
        Some(&alice),
    )
    .await;
    assert_eq!(over_matrix.json["unsigned"]["io.axon.seq"], seen.seq);
    assert_eq!(seen.seq, head + 1);

    // Native → Matrix.
    let ack = native
        .send(
            &room,
            "m.room.message",
            r#"{"msgtype":"m.text","body":"from native"}"#,
        )
        .await
        .unwrap();
    let page = get(
        addr,
        &format!("{V3}/rooms/{room}/messages?dir=b&limit=1"),
        Some(&alice),
    )
    .await;
    let latest = &page.json["chunk"][0];
    assert_eq!(latest["event_id"], ack.event_id.as_str());
    assert_eq!(latest["unsigned"]["io.axon.seq"], ack.seq);
    assert_eq!(latest["content"]["body"], "from native");
    assert_eq!(ack.seq, seen.seq + 1);
    native.close().await;
    server.shutdown().await.unwrap();
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
