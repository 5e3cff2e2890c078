//! The Matrix client-server API over real HTTP: the real server on loopback
//! port 0 with the embedded store in a temporary directory, and requests
//! written by hand so that every status, errcode and header is what a
//! client would see.

mod common;

use std::time::Duration;

use axon_server::config::RegistrationSetting;
use common::matrix::{V3, get, login, post, put, register, send, start};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_cors_and_unknown_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;

    let versions = get(addr, "/_matrix/client/versions", None).await;
    assert_eq!(versions.status, 200);
    let listed: Vec<&str> = versions.json["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        listed.contains(&"v1.11") && listed.contains(&"r0.6.1"),
        "{listed:?}"
    );
    assert_eq!(versions.header("access-control-allow-origin"), Some("*"));
    assert_eq!(versions.header("content-type"), Some("application/json"));
    let stale = get(addr, "/_matrix/client/versions", Some("no-such-token")).await;
    assert_eq!(stale.status, 200, "/versions ignores a bad token");

    let well_known = get(addr, "/.well-known/matrix/client", None).await;
    assert_eq!(well_known.status, 404);
    assert_eq!(well_known.errcode(), "M_NOT_FOUND");

    let preflight = send(addr, "OPTIONS", &format!("{V3}/login"), None, None).await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight.header("access-control-allow-methods").unwrap();
    for m in ["get", "post", "put", "delete", "options"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = preflight.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));

    let unknown = get(addr, &format!("{V3}/no/such/endpoint"), None).await;
    assert_eq!((unknown.status, unknown.errcode()), (404, "M_UNRECOGNIZED"));
    assert_eq!(unknown.header("access-control-allow-origin"), Some("*"));
    let wrong_method = send(addr, "DELETE", &format!("{V3}/login"), None, None).await;
    assert_eq!(
        (wrong_method.status, wrong_method.errcode()),
        (405, "M_UNRECOGNIZED")
    );

    let caps = get(addr, &format!("{V3}/capabilities"), None).await;
    assert_eq!((caps.status, caps.errcode()), (401, "M_MISSING_TOKEN"));
    let caps = get(addr, &format!("{V3}/capabilities"), Some("axat_bogus")).await;
    assert_eq!((caps.status, caps.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert_eq!(caps.json["soft_logout"], false);
    let (token, _) = register(addr, "carol", "password1").await;
    let caps = get(addr, &format!("{V3}/capabilities"), Some(&token)).await;
    assert_eq!(caps.status, 200, "{caps:?}");
    // ruma leaves out capabilities at their default (m.change_password on).
    let caps = &caps.json["capabilities"];
    assert_ne!(caps["m.change_password"]["enabled"], false, "{caps}");
    assert_eq!(caps["m.3pid_changes"]["enabled"], false, "{caps}");
    // The r0 paths of the same endpoints.
    let r0 = get(addr, "/_matrix/client/r0/account/whoami", Some(&token)).await;
    assert_eq!(r0.json["user_id"], "@carol:localhost", "{r0:?}");
    server.shutdown().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| {
        c.matrix.public_base_url = "https://matrix.example.org".into();
    })
    .await;
    let well_known = get(server.addrs().http, "/.well-known/matrix/client", None).await;
    assert_eq!(well_known.status, 200);
    assert_eq!(
        well_known.json["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_whoami_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let reg = format!("{V3}/register");

    // UIA: without `auth` the answer is the flows.
    let flows = post(
        addr,
        &reg,
        None,
        json!({"username": "alice", "password": "password1"}),
    )
    .await;
    assert_eq!(flows.status, 401, "{flows:?}");
    assert_eq!(flows.json["flows"][0]["stages"][0], "m.login.dummy");
    let session = flows.json["session"].as_str().unwrap().to_owned();
    let done = post(
        addr,
        &reg,
        None,
        json!({"username": "alice", "password": "password1", "device_id": "ALICEPHONE",
               "auth": {"type": "m.login.dummy", "session": session}}),
    )
    .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json["device_id"], "ALICEPHONE");
    assert!(done.json.get("refresh_token").is_none());
    let token = done.json["access_token"].as_str().unwrap().to_owned();

    let who = get(addr, &format!("{V3}/account/whoami"), Some(&token)).await;
    assert_eq!(who.json["user_id"], "@alice:localhost");
    assert_eq!(who.json["device_id"], "ALICEPHONE");
    let who = get(
        addr,
        &format!("{V3}/account/whoami?access_token={token}"),
        None,
    )
    .await;
    assert_eq!(who.status, 200, "the deprecated query parameter: {who:?}");
    // The same token authenticates the native faces: one Accounts for all.
    let identity = server.core().accounts.authenticate(&token).await.unwrap();
    assert_eq!(identity.user_id.as_str(), "@alice:localhost");

    // Registration errors.
    let dummy = json!({"type": "m.login.dummy"});
    let taken = post(
        addr,
        &reg,
        None,
        json!({"username": "Alice", "password": "password1", "auth": dummy}),
    )
    .await;
    assert_eq!((taken.status, taken.errcode()), (400, "M_USER_IN_USE"));
    let invalid = post(
        addr,
        &reg,
        None,
        json!({"username": "al ice", "password": "password1", "auth": dummy}),
    )
    .await;
    assert_eq!(
        (invalid.status, invalid.errcode()),
        (400, "M_INVALID_USERNAME")
    );
    let weak = post(
        addr,
        &reg,
        None,
        json!({"username": "bob", "password": "short", "auth": dummy}),
    )
    .await;
    assert_eq!((weak.status, weak.errcode()), (400, "M_WEAK_PASSWORD"));
    let guest = post(
        addr,
        &format!("{reg}?kind=guest"),
        None,
        json!({"auth": dummy}),
    )
    .await;
    assert_eq!(
        (guest.status, guest.errcode()),
        (403, "M_GUEST_ACCESS_FORBIDDEN")
    );
    let free = get(addr, &format!("{V3}/register/available?username=bob"), None).await;
    assert_eq!((free.status, &free.json["available"]), (200, &json!(true)));
    let used = get(
        addr,
        &format!("{V3}/register/available?username=alice"),
        None,
    )
    .await;
    assert_eq!((used.status, used.errcode()), (400, "M_USER_IN_USE"));
    let bad = get(
        addr,
        &format!("{V3}/register/available?username=%C3%A9"),
        None,
    )
    .await;
    assert_eq!((bad.status, bad.errcode()), (400, "M_INVALID_USERNAME"));
    let missing = get(addr, &format!("{V3}/register/available"), None).await;
    assert_eq!(
        (missing.status, missing.errcode()),
        (400, "M_INVALID_PARAM")
    );

    // Login: flows, identifier, legacy `user`, wrong password.
    let types = get(addr, &format!("{V3}/login"), None).await;
    assert_eq!(types.json["flows"][0]["type"], "m.login.password");
    let second = login(addr, "alice", "password1").await;
    assert_eq!(second.status, 200, "{second:?}");
    let second_token = second.json["access_token"].as_str().unwrap().to_owned();
    let legacy = post(
        addr,
        &format!("{V3}/login"),
        None,
        json!({"type": "m.login.password", "user": "@alice:localhost", "password": "password1"}),
    )
    .await;
    assert_eq!(legacy.status, 200, "{legacy:?}");
    let third_token = legacy.json["access_token"].as_str().unwrap().to_owned();
    let wrong = login(addr, "alice", "password2").await;
    assert_eq!((wrong.status, wrong.errcode()), (403, "M_FORBIDDEN"));
    let nobody = login(addr, "nobody", "password1").await;
    assert_eq!((nobody.status, nobody.errcode()), (403, "M_FORBIDDEN"));
    let foreign = login(addr, "@alice:elsewhere.org", "password1").await;
    assert_eq!((foreign.status, foreign.errcode()), (403, "M_FORBIDDEN"));

    // Bodies: not JSON, wrong shape, no type, too large.
    let not_json = send(
        addr,
        "POST",
        &format!("{V3}/login"),
        None,
        Some(b"{user: alice"),
    )
    .await;
    assert_eq!((not_json.status, not_json.errcode()), (400, "M_NOT_JSON"));
    let shape = post(
        addr,
        &format!("{V3}/login"),
        None,
        json!(["m.login.password"]),
    )
    .await;
    assert_eq!((shape.status, shape.errcode()), (400, "M_BAD_JSON"));
    let untyped = post(addr, &format!("{V3}/login"), None, json!({"password": "x"})).await;
    assert_eq!((untyped.status, untyped.errcode()), (400, "M_BAD_JSON"));
    let huge =
        json!({"type": "m.login.password", "user": "alice", "password": "x".repeat(2 << 20)});
    let huge = post(addr, &format!("{V3}/login"), None, huge).await;
    assert_eq!((huge.status, huge.errcode()), (413, "M_TOO_LARGE"));

    // Logout ends one device; logout/all ends every one.
    let out = post(addr, &format!("{V3}/logout"), Some(&token), json!({})).await;
    assert_eq!(out.status, 200, "{out:?}");
    let gone = get(addr, &format!("{V3}/account/whoami"), Some(&token)).await;
    assert_eq!((gone.status, gone.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert_eq!(gone.json["soft_logout"], false);
    assert!(server.core().accounts.authenticate(&token).await.is_err());
    let still = get(addr, &format!("{V3}/account/whoami"), Some(&second_token)).await;
    assert_eq!(still.status, 200);
    let all = post(
        addr,
        &format!("{V3}/logout/all"),
        Some(&second_token),
        json!({}),
    )
    .await;
    assert_eq!(all.status, 200, "{all:?}");
    for t in [&second_token, &third_token] {
        let gone = get(addr, &format!("{V3}/account/whoami"), Some(t)).await;
        assert_eq!((gone.status, gone.errcode()), (401, "M_UNKNOWN_TOKEN"));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_expire_into_soft_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| c.matrix.refreshable_token_lifetime_secs = 1).await;
    let addr = server.addrs().http;
    register(addr, "dave", "password1").await;

    let r = post(
        addr,
        &format!("{V3}/login"),
        None,
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "dave"},
               "password": "password1", "refresh_token": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let expires = r.json["expires_in_ms"].as_u64().unwrap();
    assert!(expires > 0 && expires <= 1000, "{expires}");
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(addr, &format!("{V3}/account/whoami"), Some(&access))
            .await
            .status,
        200
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = get(addr, &format!("{V3}/account/whoami"), Some(&access)).await;
    assert_eq!(
        (expired.status, expired.errcode()),
        (401, "M_UNKNOWN_TOKEN")
    );
    assert_eq!(expired.json["soft_logout"], true, "{expired:?}");

    let renewed = post(
        addr,
        &format!("{V3}/refresh"),
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let new_access = renewed.json["access_token"].as_str().unwrap();
    assert!(renewed.json["refresh_token"].is_string());
    assert!(renewed.json["expires_in_ms"].as_u64().is_some());
    let who = get(addr, &format!("{V3}/account/whoami"), Some(new_access)).await;
    assert_eq!(who.json["user_id"], "@dave:localhost", "{who:?}");
    let reused = post(
        addr,
        &format!("{V3}/refresh"),
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!((reused.status, reused.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert_eq!(reused.json["soft_logout"], false);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_and_deactivation_need_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (token, _) = register(addr, "erin", "password1").await;
    let other = login(addr, "erin", "password1").await;
    let other_token = other.json["access_token"].as_str().unwrap().to_owned();
    let path = format!("{V3}/account/password");

    let flows = post(
        addr,
        &path,
        Some(&token),
        json!({"new_password": "password2"}),
    )
    .await;
    assert_eq!(flows.status, 401, "{flows:?}");
    assert_eq!(flows.json["flows"][0]["stages"][0], "m.login.password");
    let auth = |password: &str| {
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "erin"},
               "password": password, "session": flows.json["session"]})
    };
    let wrong = post(
        addr,
        &path,
        Some(&token),
        json!({"new_password": "password2", "auth": auth("nope")}),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.errcode()),
        (401, "M_FORBIDDEN"),
        "{wrong:?}"
    );
    assert!(wrong.json["flows"].is_array());
    let weak = post(
        addr,
        &path,
        Some(&token),
        json!({"new_password": "pw", "auth": auth("password1")}),
    )
    .await;
    assert_eq!((weak.status, weak.errcode()), (400, "M_WEAK_PASSWORD"));
    let changed = post(
        addr,
        &path,
        Some(&token),
        json!({"new_password": "password2", "auth": auth("password1")}),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(
        get(addr, &format!("{V3}/account/whoami"), Some(&token))
            .await
            .status,
        200
    );
    let logged_out = get(addr, &format!("{V3}/account/whoami"), Some(&other_token)).await;
    assert_eq!(
        logged_out.errcode(),
        "M_UNKNOWN_TOKEN",
        "other devices are logged out"
    );
    assert_eq!(login(addr, "erin", "password1").await.status, 403);
    assert_eq!(login(addr, "erin", "password2").await.status, 200);

    let path = format!("{V3}/account/deactivate");
    let flows = post(addr, &path, Some(&token), json!({})).await;
    assert_eq!(flows.status, 401);
    let done = post(
        addr,
        &path,
        Some(&token),
        json!({"auth": auth("password2")}),
    )
    .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json["id_server_unbind_result"], "no-support");
    let gone = get(addr, &format!("{V3}/account/whoami"), Some(&token)).await;
    assert_eq!(gone.errcode(), "M_UNKNOWN_TOKEN");
    let relogin = login(addr, "erin", "password2").await;
    assert_eq!(
        (relogin.status, relogin.errcode()),
        (403, "M_USER_DEACTIVATED")
    );
    let reuse = post(
        addr,
        &format!("{V3}/register"),
        None,
        json!({"username": "erin", "password": "password1", "auth": {"type": "m.login.dummy"}}),
    )
    .await;
    assert_eq!(reuse.errcode(), "M_USER_IN_USE", "ids are never reused");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_public_and_changed_by_their_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.addrs().http;
    let (frank, _) = register(addr, "frank", "password1").await;
    let (grace, _) = register(addr, "grace", "password1").await;
    let base = format!("{V3}/profile/%40frank%3Alocalhost");

    let profile = get(addr, &base, None).await;
    assert_eq!(profile.json, json!({"displayname": "frank"}), "{profile:?}");
    let set = put(
        addr,
        &format!("{base}/displayname"),
        Some(&frank),
        json!({"displayname": "Frank F."}),
    )
    .await;
    assert_eq!(set.status, 200, "{set:?}");
    let name = get(addr, &format!("{base}/displayname"), None).await;
    assert_eq!(name.json["displayname"], "Frank F.");
    let avatar = put(
        addr,
        &format!("{base}/avatar_url"),
        Some(&frank),
        json!({"avatar_url": "mxc://localhost/abc"}),
    )
    .await;
    assert_eq!(avatar.status, 200, "{avatar:?}");
    let url = get(addr, &format!("{base}/avatar_url"), None).await;
    assert_eq!(url.json["avatar_url"], "mxc://localhost/abc");
    let r0 = get(addr, "/_matrix/client/r0/profile/@frank:localhost", None).await;
    assert_eq!(
        r0.json,
        json!({"displayname": "Frank F.", "avatar_url": "mxc://localhost/abc"})
    );

    let not_mine = put(
        addr,
        &format!("{base}/displayname"),
        Some(&grace),
        json!({"displayname": "x"}),
    )
    .await;
    assert_eq!((not_mine.status, not_mine.errcode()), (403, "M_FORBIDDEN"));
    let anonymous = put(
        addr,
        &format!("{base}/displayname"),
        None,
        json!({"displayname": "x"}),
    )
    .await;
    assert_eq!(
        (anonymous.status, anonymous.errcode()),
        (401, "M_MISSING_TOKEN")
    );
    let long = put(
        addr,
        &format!("{base}/displayname"),
        Some(&frank),
        json!({"displayname": "x".repeat(300)}),
    )
    .await;
    assert_eq!((long.status, long.errcode()), (400, "M_INVALID_PARAM"));
    let nobody = get(addr, &format!("{V3}/profile/@nobody:localhost"), None).await;
    assert_eq!((nobody.status, nobody.errcode()), (404, "M_NOT_FOUND"));
    let bad_id = get(addr, &format!("{V3}/profile/not-a-user-id"), None).await;
    assert_eq!(bad_id.status, 400, "{bad_id:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| {
        c.matrix.registration = RegistrationSetting::Disabled
    })
    .await;
    let addr = server.addrs().http;
    let off = post(
        addr,
        &format!("{V3}/register"),
        None,
        json!({"username": "henry", "password": "password1", "auth": {"type": "m.login.dummy"}}),
    )
    .await;
    assert_eq!((off.status, off.errcode()), (403, "M_FORBIDDEN"));
    server.shutdown().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| {
        c.matrix.registration = RegistrationSetting::Token;
        c.matrix.registration_token = "letmein".into();
    })
    .await;
    let addr = server.addrs().http;
    let reg = format!("{V3}/register");
    let flows = post(
        addr,
        &reg,
        None,
        json!({"username": "henry", "password": "password1"}),
    )
    .await;
    assert_eq!(flows.status, 401);
    assert_eq!(
        flows.json["flows"][0]["stages"][0],
        "m.login.registration_token"
    );
    let dummy = post(
        addr,
        &reg,
        None,
        json!({"username": "henry", "password": "password1", "auth": {"type": "m.login.dummy"}}),
    )
    .await;
    assert_eq!(
        dummy.status, 401,
        "the dummy stage is not offered: {dummy:?}"
    );
    let wrong = post(
        addr,
        &reg,
        None,
        json!({"username": "henry", "password": "password1",
        "auth": {"type": "m.login.registration_token", "token": "guess"}}),
    )
    .await;
    assert_eq!((wrong.status, wrong.errcode()), (401, "M_FORBIDDEN"));
    let right = post(addr, &reg, None, json!({"username": "henry", "password": "password1",
        "auth": {"type": "m.login.registration_token", "token": "letmein", "session": flows.json["session"]}})).await;
    assert_eq!(right.status, 200, "{right:?}");
    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let valid = get(addr, &format!("{validity}?token=letmein"), None).await;
    assert_eq!(valid.json["valid"], true);
    let invalid = get(addr, &format!("{validity}?token=guess"), None).await;
    assert_eq!(invalid.json["valid"], false);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_limit_exceeded_with_a_retry_time() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| {
        c.matrix.ip_requests_per_second = 1;
        c.matrix.ip_burst = 2;
        c.matrix.user_requests_per_second = 1;
        c.matrix.user_burst = 3;
    })
    .await;
    let addr = server.addrs().http;
    let path = format!("{V3}/register/available?username=ivan");
    assert_eq!(get(addr, &path, None).await.status, 200);
    assert_eq!(get(addr, &path, None).await.status, 200);
    let limited = get(addr, &path, None).await;
    assert_eq!(
        (limited.status, limited.errcode()),
        (429, "M_LIMIT_EXCEEDED")
    );
    let wait = limited.json["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 1000, "{wait}");
    assert!(limited.header("retry-after").is_some(), "{limited:?}");
    // Endpoints the spec does not rate-limit stay open.
    assert_eq!(
        get(addr, "/_matrix/client/versions", None).await.status,
        200
    );

    // Authenticated requests count per user, not per IP.
    let token = server
        .core()
        .accounts
        .create_user("ivan", None, false)
        .await
        .map(|u| u.user_id)
        .unwrap();
    let session = server
        .core()
        .accounts
        .open_session(&token, None, None)
        .await
        .unwrap();
    let token = session.access_token.expose().to_owned();
    let whoami = format!("{V3}/account/whoami");
    for _ in 0..3 {
        assert_eq!(get(addr, &whoami, Some(&token)).await.status, 200);
    }
    let limited = get(addr, &whoami, Some(&token)).await;
    assert_eq!(
        (limited.status, limited.errcode()),
        (429, "M_LIMIT_EXCEEDED")
    );
    server.shutdown().await.unwrap();
}
