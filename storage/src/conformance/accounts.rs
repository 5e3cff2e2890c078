//! Conformance of [`AccountStore`](axon_core::store::AccountStore),
//! [`ReceiptStore`](axon_core::store::ReceiptStore) and
//! [`AccountDataStore`](axon_core::store::AccountDataStore).

use axon_core::StoreError;
use axon_core::accounts::TokenHash;
use axon_core::ids::{DeviceId, EventId, UserId};
use axon_core::store::{
    AccountDataRecord, AccountDataStore, AccountStore, DeviceRecord, Receipt, ReceiptStore,
    TokenKind, TokenRecord, UserRecord,
};
use bytes::Bytes;

use super::{StoreFactory, ok, open, room, user};

fn profile(u: &UserId) -> UserRecord {
    UserRecord {
        user_id: u.clone(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        display_name: None,
        avatar_url: None,
        admin: false,
        deactivated: false,
        created_ts: 1_700_000_000_000,
    }
}

fn device(u: &UserId, d: &str) -> DeviceRecord {
    DeviceRecord {
        user_id: u.clone(),
        device_id: DeviceId::parse(d).expect("valid device id"),
        display_name: Some(format!("{d} of {u}")),
        created_ts: 1,
    }
}

fn token(u: &UserId, d: &str, n: u8) -> TokenRecord {
    TokenRecord {
        hash: TokenHash([n; 32]),
        kind: if n.is_multiple_of(2) {
            TokenKind::Access
        } else {
            TokenKind::Refresh
        },
        user_id: u.clone(),
        device_id: DeviceId::parse(d).expect("valid device id"),
        created_ts: 1,
        expires_ts: Some(1_000 + u64::from(n)),
    }
}

/// Creating a taken id is `Conflict` and changes nothing; updating a missing
/// user is `NotFound`; missing users are `None`.
pub async fn user_create_conflict_and_update_missing<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let alice = user(1);
    assert_eq!(ok("user", store.user(&alice).await), None);
    ok("create_user", store.create_user(&profile(&alice)).await);
    assert_eq!(ok("user", store.user(&alice).await), Some(profile(&alice)));

    let again = UserRecord {
        display_name: Some("impostor".into()),
        ..profile(&alice)
    };
    match store.create_user(&again).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("creating a taken user id must be Conflict, got {other:?}"),
    }
    assert_eq!(
        ok("user", store.user(&alice).await),
        Some(profile(&alice)),
        "a conflict changes nothing"
    );

    let updated = UserRecord {
        display_name: Some("Alice".into()),
        deactivated: true,
        ..profile(&alice)
    };
    ok("update_user", store.update_user(&updated).await);
    assert_eq!(ok("user", store.user(&alice).await), Some(updated));

    match store.update_user(&profile(&user(2))).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("updating a missing user must be NotFound, got {other:?}"),
    }
    assert_eq!(
        ok("user", store.user(&user(2)).await),
        None,
        "a failed update creates nothing"
    );
}

/// `users` pages in id order from after the given id.
pub async fn users_page_in_id_order<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    // Created out of order; ids chosen so byte order differs from creation order.
    let ids: Vec<UserId> = [
        "@zed:x", "@amy:x", "@bob:x", "@am:x", "@bob:y", "@Carl:x", "@amy2:x",
    ]
    .iter()
    .map(|s| UserId::parse(s).expect("valid user id"))
    .collect();
    for u in &ids {
        ok("create_user", store.create_user(&profile(u)).await);
    }
    let mut sorted = ids.clone();
    sorted.sort();

    let mut paged = Vec::new();
    let mut after: Option<UserId> = None;
    loop {
        let page = ok("users", store.users(after.as_ref(), 3).await);
        assert!(page.len() <= 3, "a page holds at most `limit` users");
        let Some(last) = page.last() else { break };
        after = Some(last.user_id.clone());
        paged.extend(page.into_iter().map(|u| u.user_id));
    }
    assert_eq!(paged, sorted, "pages walk every user once, in id order");
    assert!(
        ok("users", store.users(None, 0).await).is_empty(),
        "limit 0"
    );
    let from_missing = ok(
        "users",
        store
            .users(Some(&UserId::parse("@b:x").expect("valid")), 2)
            .await,
    );
    let expected: Vec<_> = sorted
        .iter()
        .filter(|u| u.as_str() > "@b:x")
        .take(2)
        .cloned()
        .collect();
    assert_eq!(
        from_missing
            .into_iter()
            .map(|u| u.user_id)
            .collect::<Vec<_>>(),
        expected,
        "`after` need not exist"
    );
}

/// Devices are per user; deleting a device deletes its tokens and only
/// them; `delete_user_tokens` deletes every token of one user.
pub async fn devices_and_token_cascades<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (alice, bob) = (user(1), user(2));
    let phone = DeviceId::parse("PHONE").expect("valid device id");
    for d in [
        device(&alice, "PHONE"),
        device(&alice, "LAPTOP"),
        device(&bob, "PHONE"),
    ] {
        ok("put_device", store.put_device(&d).await);
    }
    assert_eq!(
        ok("device", store.device(&alice, &phone).await),
        Some(device(&alice, "PHONE"))
    );
    assert_eq!(ok("device", store.device(&user(3), &phone).await), None);
    let renamed = DeviceRecord {
        display_name: Some("new name".into()),
        ..device(&alice, "PHONE")
    };
    ok("put_device", store.put_device(&renamed).await);
    let mut mine = ok("devices", store.devices(&alice).await);
    mine.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    assert_eq!(
        mine,
        vec![device(&alice, "LAPTOP"), renamed],
        "put_device replaces"
    );
    assert_eq!(
        ok("devices", store.devices(&bob).await),
        vec![device(&bob, "PHONE")]
    );

    let tokens = [
        token(&alice, "PHONE", 1),
        token(&alice, "PHONE", 2),
        token(&alice, "LAPTOP", 3),
        token(&bob, "PHONE", 4),
    ];
    for t in &tokens {
        ok("put_token", store.put_token(t).await);
    }
    for t in &tokens {
        assert_eq!(ok("token", store.token(&t.hash).await).as_ref(), Some(t));
    }
    assert_eq!(ok("token", store.token(&TokenHash([99; 32])).await), None);

    ok("delete_device", store.delete_device(&alice, &phone).await);
    assert_eq!(ok("device", store.device(&alice, &phone).await), None);
    assert_eq!(
        ok("token", store.token(&tokens[0].hash).await),
        None,
        "a deleted device's tokens go with it"
    );
    assert_eq!(ok("token", store.token(&tokens[1].hash).await), None);
    assert!(
        ok("token", store.token(&tokens[2].hash).await).is_some(),
        "other devices keep theirs"
    );
    assert!(
        ok("token", store.token(&tokens[3].hash).await).is_some(),
        "another user's device of the same name keeps its tokens"
    );
    assert_eq!(
        ok("device", store.device(&bob, &phone).await),
        Some(device(&bob, "PHONE"))
    );

    ok("delete_token", store.delete_token(&tokens[3].hash).await);
    assert_eq!(ok("token", store.token(&tokens[3].hash).await), None);
    ok("delete_token", store.delete_token(&tokens[3].hash).await);

    let more = [
        token(&alice, "LAPTOP", 5),
        token(&alice, "TABLET", 6),
        token(&bob, "PHONE", 7),
    ];
    for t in &more {
        ok("put_token", store.put_token(t).await);
    }
    ok("delete_user_tokens", store.delete_user_tokens(&alice).await);
    for t in [&tokens[2], &more[0], &more[1]] {
        assert_eq!(
            ok("token", store.token(&t.hash).await),
            None,
            "every token of the user is gone"
        );
    }
    assert!(
        ok("token", store.token(&more[2].hash).await).is_some(),
        "other users keep theirs"
    );
    assert_eq!(
        ok("devices", store.devices(&alice).await).len(),
        1,
        "deleting tokens keeps devices"
    );
}

/// Receipts are replaced per (room, user, type, thread) and listed per room.
pub async fn receipts_replace_per_key<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b) = (room(1), room(2));
    let receipt = |u: u32, t: &str, thread: Option<&str>, ts: u64| Receipt {
        room_id: a.clone(),
        user_id: user(u),
        receipt_type: t.into(),
        thread_id: thread.map(Into::into),
        event_id: EventId::generate(),
        ts,
    };
    assert!(ok("receipts", store.receipts(&a).await).is_empty());
    let first = receipt(1, "m.read", None, 1);
    ok("put_receipt", store.put_receipt(&first).await);
    let kept = [
        receipt(1, "m.read.private", None, 2),
        receipt(1, "m.read", Some("$thread"), 3),
        receipt(2, "m.read", None, 4),
    ];
    for r in &kept {
        ok("put_receipt", store.put_receipt(r).await);
    }
    let newer = receipt(1, "m.read", None, 5);
    ok("put_receipt", store.put_receipt(&newer).await);
    let elsewhere = Receipt {
        room_id: b.clone(),
        ..receipt(1, "m.read", None, 6)
    };
    ok("put_receipt", store.put_receipt(&elsewhere).await);

    let mut got = ok("receipts", store.receipts(&a).await);
    got.sort_by_key(|r| r.ts);
    let mut want = kept.to_vec();
    want.push(newer);
    assert_eq!(
        got, want,
        "one receipt per key, the latest; other rooms apart"
    );
    assert_eq!(ok("receipts", store.receipts(&b).await), vec![elsewhere]);
}

/// Account data: global and per room are separate; a put replaces.
pub async fn account_data_global_and_per_room<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (alice, bob) = (user(1), user(2));
    let (a, b) = (room(1), room(2));
    let record = |r: Option<&axon_core::RoomId>, t: &str, c: &'static str| AccountDataRecord {
        room_id: r.cloned(),
        data_type: t.into(),
        content: Bytes::from_static(c.as_bytes()),
    };
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, None, "m.direct").await
        ),
        None
    );
    let global = record(None, "m.tag", r#"{"g":1}"#);
    let in_a = record(Some(&a), "m.tag", r#"{"a":1}"#);
    let in_b = record(Some(&b), "m.tag", r#"{"b":1}"#);
    for r in [&global, &in_a, &in_b] {
        ok("put_account_data", store.put_account_data(&alice, r).await);
    }
    ok(
        "put_account_data",
        store
            .put_account_data(&bob, &record(None, "m.tag", r#"{"bob":1}"#))
            .await,
    );
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, None, "m.tag").await
        ),
        Some(global.content.clone())
    );
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, Some(&a), "m.tag").await
        ),
        Some(in_a.content.clone())
    );
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, Some(&room(3)), "m.tag").await
        ),
        None
    );

    let replaced = record(Some(&a), "m.tag", r#"{"a":2}"#);
    ok(
        "put_account_data",
        store.put_account_data(&alice, &replaced).await,
    );
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, Some(&a), "m.tag").await
        ),
        Some(replaced.content.clone())
    );
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, None, "m.tag").await
        ),
        Some(global.content.clone()),
        "global untouched"
    );

    let mut all = ok("all_account_data", store.all_account_data(&alice).await);
    all.sort_by(|x, y| x.room_id.cmp(&y.room_id));
    assert_eq!(
        all,
        vec![global, replaced, in_b],
        "every piece of the user's data, no one else's"
    );
    assert!(ok("all_account_data", store.all_account_data(&user(3)).await).is_empty());
}
