//! Conformance of [`TimelineStore`](axon_core::store::TimelineStore).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axon_core::event::{TxnId, types};
use axon_core::ids::{DeviceId, EventId};
use axon_core::shard::ShardId;
use axon_core::store::{
    AccountDataRecord, AccountDataStore, AccountStore, CommitBatch, Direction, Receipt,
    ReceiptStore, TimelineStore, TokenKind, TokenRecord, TxnKey, TxnRecord, UserRecord,
};
use axon_core::{Membership, Store};
use bytes::Bytes;

use super::{StoreFactory, append, batch, member, message, ok, open, room, state, user};

fn seqs(events: &[axon_core::Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Appends `n` messages to `room` of shard 0 in batches of 10, starting at
/// seq 1 and pos `pos0 + 1`.
async fn fill<S: Store>(
    store: &S,
    r: &axon_core::RoomId,
    n: u64,
    pos0: u64,
) -> Vec<axon_core::Event> {
    let all: Vec<_> = (1..=n).map(|s| message(r, s, pos0 + s)).collect();
    for chunk in all.chunks(10) {
        append(store, batch(0, chunk.to_vec())).await;
    }
    all
}

/// Range reads: both directions, bounds, limits, other rooms untouched.
pub async fn append_then_read_ranges<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b) = (room(1), room(2));
    let written = fill(&store, &a, 30, 0).await;
    append(&store, batch(0, vec![message(&b, 1, 31)])).await;

    let all = ok(
        "events",
        store.events(&a, 1, u64::MAX, Direction::Forward, 100).await,
    );
    assert_eq!(
        all, written,
        "a forward read of the whole room returns every event as written"
    );
    let back = ok(
        "events",
        store.events(&a, 1, 30, Direction::Backward, 100).await,
    );
    assert_eq!(
        seqs(&back),
        (1..=30).rev().collect::<Vec<_>>(),
        "backward reads descend"
    );

    let page = ok(
        "events",
        store.events(&a, 5, 20, Direction::Forward, 4).await,
    );
    assert_eq!(
        seqs(&page),
        vec![5, 6, 7, 8],
        "forward starts at `from` and stops at `limit`"
    );
    let page = ok(
        "events",
        store.events(&a, 5, 20, Direction::Backward, 4).await,
    );
    assert_eq!(seqs(&page), vec![20, 19, 18, 17], "backward starts at `to`");
    let page = ok(
        "events",
        store.events(&a, 28, 1000, Direction::Forward, 50).await,
    );
    assert_eq!(
        seqs(&page),
        vec![28, 29, 30],
        "a range past the head ends at the head"
    );
    let one = ok(
        "events",
        store.events(&a, 7, 7, Direction::Backward, 10).await,
    );
    assert_eq!(seqs(&one), vec![7], "from == to is one event");

    assert!(
        ok(
            "events",
            store.events(&a, 9, 8, Direction::Forward, 10).await
        )
        .is_empty(),
        "from > to is empty"
    );
    assert!(
        ok(
            "events",
            store.events(&a, 1, 30, Direction::Forward, 0).await
        )
        .is_empty(),
        "limit 0 is empty"
    );
    assert!(
        ok(
            "events",
            store.events(&a, 31, 40, Direction::Forward, 10).await
        )
        .is_empty()
    );
    assert!(
        ok(
            "events",
            store.events(&room(9), 1, 10, Direction::Forward, 10).await
        )
        .is_empty(),
        "unknown room"
    );
    let other = ok(
        "events",
        store.events(&b, 0, u64::MAX, Direction::Backward, 10).await,
    );
    assert_eq!(seqs(&other), vec![1], "rooms do not bleed into each other");
}

/// `room_head` and `shard_head` follow appends; unknown is `None` / 0.
pub async fn heads_follow_appends<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b) = (room(1), room(2));
    assert_eq!(ok("room_head", store.room_head(&a).await), None);
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 0);
    append(
        &store,
        batch(
            0,
            vec![message(&a, 1, 1), message(&b, 1, 2), message(&a, 2, 3)],
        ),
    )
    .await;
    assert_eq!(ok("room_head", store.room_head(&a).await), Some(2));
    assert_eq!(ok("room_head", store.room_head(&b).await), Some(1));
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 3);
    assert_eq!(
        ok("shard_head", store.shard_head(ShardId(1)).await),
        0,
        "shards are independent"
    );
    append(&store, batch(1, vec![message(&room(3), 1, 1)])).await;
    append(&store, batch(0, vec![message(&a, 3, 4)])).await;
    assert_eq!(ok("room_head", store.room_head(&a).await), Some(3));
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 4);
    assert_eq!(ok("shard_head", store.shard_head(ShardId(1)).await), 1);
}

/// `append_batches` writes several shards' batches as one: all of them
/// readable afterwards, a shard's two batches in order; one refused batch
/// keeps every other batch of the write out too.
pub async fn several_shards_commit_together<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b, c) = (room(1), room(2), room(3));
    ok(
        "append_batches",
        store
            .append_batches(vec![
                batch(0, vec![message(&a, 1, 1), message(&a, 2, 2)]),
                batch(1, vec![message(&b, 1, 1)]),
                batch(0, vec![message(&c, 1, 3), message(&a, 3, 4)]),
            ])
            .await,
    );
    assert_eq!(ok("room_head", store.room_head(&a).await), Some(3));
    assert_eq!(ok("room_head", store.room_head(&b).await), Some(1));
    assert_eq!(ok("room_head", store.room_head(&c).await), Some(1));
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 4);
    assert_eq!(ok("shard_head", store.shard_head(ShardId(1)).await), 1);
    let stream = ok(
        "shard_events",
        store.shard_events(ShardId(0), 0, usize::MAX).await,
    );
    assert_eq!(
        stream.iter().map(|e| e.pos).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    // Shard 1's batch does not follow its room's head: the whole write is
    // refused, shard 0's good batch with it.
    let refused = store
        .append_batches(vec![
            batch(0, vec![message(&a, 4, 5)]),
            batch(1, vec![message(&b, 3, 2)]),
        ])
        .await;
    assert!(
        matches!(refused, Err(axon_core::StoreError::Conflict(_))),
        "a batch that breaks dense seq must be refused, got {refused:?}"
    );
    assert_eq!(ok("room_head", store.room_head(&a).await), Some(3));
    assert_eq!(ok("room_head", store.room_head(&b).await), Some(1));
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 4);
    assert_eq!(
        ok(
            "events",
            store
                .events(&a, 1, u64::MAX, Direction::Forward, usize::MAX)
                .await
        )
        .len(),
        3,
        "nothing of the refused write is readable"
    );
}

/// `shard_events` pages the shard's stream in `pos` order, rooms mixed.
pub async fn shard_stream_pages_in_pos_order<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b) = (room(1), room(2));
    let mut written = Vec::new();
    for i in 0..5u64 {
        let events = vec![
            message(&a, 2 * i + 1, 3 * i + 1),
            message(&b, i + 1, 3 * i + 2),
            message(&a, 2 * i + 2, 3 * i + 3),
        ];
        written.extend(events.clone());
        append(&store, batch(3, events)).await;
    }
    append(&store, batch(4, vec![message(&room(7), 1, 1)])).await;

    let all = ok("shard_events", store.shard_events(ShardId(3), 0, 100).await);
    assert_eq!(
        all, written,
        "the whole stream, in pos order, with every field"
    );
    let page = ok("shard_events", store.shard_events(ShardId(3), 4, 3).await);
    assert_eq!(
        page.iter().map(|e| e.pos).collect::<Vec<_>>(),
        vec![5, 6, 7],
        "after is exclusive"
    );
    assert!(
        ok("shard_events", store.shard_events(ShardId(3), 15, 10).await).is_empty(),
        "nothing after the head"
    );
    assert!(
        ok(
            "shard_events",
            store.shard_events(ShardId(3), u64::MAX, 10).await
        )
        .is_empty()
    );
    assert!(
        ok("shard_events", store.shard_events(ShardId(3), 0, 0).await).is_empty(),
        "limit 0"
    );
    let other = ok("shard_events", store.shard_events(ShardId(4), 0, 10).await);
    assert_eq!(other.len(), 1, "a shard's stream holds only its own events");
    assert!(ok("shard_events", store.shard_events(ShardId(5), 0, 10).await).is_empty());

    // The same stream, loading only room b's events.
    let only_b = std::sync::Arc::new(std::collections::HashSet::from([b.clone()]));
    let read = ok(
        "shard_events_of",
        store
            .shard_events_of(ShardId(3), 0, 100, std::sync::Arc::clone(&only_b))
            .await,
    );
    assert_eq!(read.scanned, 15, "every entry is looked at");
    assert_eq!(read.last_pos, Some(15));
    assert_eq!(
        read.events,
        written
            .iter()
            .filter(|e| e.room_id == b)
            .cloned()
            .collect::<Vec<_>>(),
        "only b's events, whole, in pos order"
    );
    let page = ok(
        "shard_events_of",
        store
            .shard_events_of(ShardId(3), 4, 3, std::sync::Arc::clone(&only_b))
            .await,
    );
    assert_eq!((page.scanned, page.last_pos), (3, Some(7)));
    assert_eq!(
        page.events.iter().map(|e| e.pos).collect::<Vec<_>>(),
        vec![5],
        "a page looks at `limit` entries and keeps b's"
    );
    let none = ok(
        "shard_events_of",
        store.shard_events_of(ShardId(3), 15, 10, only_b).await,
    );
    assert_eq!(none, axon_core::store::ShardRead::default());
}

/// `event` finds any stored event by id; unknown ids are `None`.
pub async fn events_by_id<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let written = fill(&store, &room(1), 12, 0).await;
    for e in &written {
        assert_eq!(
            ok("event", store.event(&e.event_id).await).as_ref(),
            Some(e)
        );
    }
    assert_eq!(ok("event", store.event(&EventId::generate()).await), None);
}

/// The state index holds the latest event per (type, state key), only
/// state events, and the empty state key is a key like any other.
pub async fn state_index_keeps_latest<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let r = room(1);
    let create = state(
        &r,
        1,
        1,
        types::CREATE,
        "",
        r#"{"creator":"@user0:conformance.test"}"#,
    );
    let name1 = state(&r, 2, 2, types::NAME, "", r#"{"name":"one"}"#);
    let custom = state(&r, 3, 3, "org.example.thing", "k", r#"{"v":1}"#);
    append(
        &store,
        batch(0, vec![create.clone(), name1.clone(), custom.clone()]),
    )
    .await;
    let name2 = state(&r, 4, 4, types::NAME, "", r#"{"name":"two"}"#);
    let msg = message(&r, 5, 5);
    let custom_other_key = state(&r, 6, 6, "org.example.thing", "k2", r#"{"v":2}"#);
    append(&store, batch(0, vec![name2.clone(), msg])).await;
    append(&store, batch(0, vec![custom_other_key.clone()])).await;

    let mut current = ok("state_events", store.state_events(&r).await);
    current.sort_by_key(|e| e.seq);
    assert_eq!(
        current,
        vec![create.clone(), custom, name2.clone(), custom_other_key],
        "one per (type, key), latest wins, no messages"
    );
    assert_eq!(
        ok("state_event", store.state_event(&r, types::NAME, "").await),
        Some(name2)
    );
    assert_eq!(
        ok(
            "state_event",
            store.state_event(&r, types::CREATE, "").await
        ),
        Some(create)
    );
    assert_eq!(
        ok("state_event", store.state_event(&r, types::NAME, "x").await),
        None
    );
    assert_eq!(
        ok(
            "state_event",
            store.state_event(&r, types::MESSAGE, "").await
        ),
        None
    );
    assert_eq!(
        ok(
            "state_event",
            store.state_event(&room(2), types::CREATE, "").await
        ),
        None
    );
    assert!(ok("state_events", store.state_events(&room(2)).await).is_empty());
}

/// The membership index follows `m.room.member` events:
/// join → leave → ban, several rooms, malformed content ignored.
pub async fn membership_index_follows_member_events<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b) = (room(1), room(2));
    let (alice, bob) = (user(1), user(2));
    let memberships = |u| {
        let store = &store;
        async move {
            let mut v = ok("rooms_of_user", store.rooms_of_user(&u).await);
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        }
    };
    assert!(memberships(alice.clone()).await.is_empty());
    append(
        &store,
        batch(
            0,
            vec![
                member(&a, 1, 1, &alice, Membership::Join),
                member(&a, 2, 2, &bob, Membership::Invite),
            ],
        ),
    )
    .await;
    assert_eq!(
        memberships(alice.clone()).await,
        vec![(a.clone(), Membership::Join)]
    );
    assert_eq!(
        memberships(bob.clone()).await,
        vec![(a.clone(), Membership::Invite)]
    );

    append(
        &store,
        batch(
            0,
            vec![
                member(&b, 1, 3, &alice, Membership::Join),
                member(&a, 3, 4, &alice, Membership::Leave),
            ],
        ),
    )
    .await;
    assert_eq!(
        memberships(alice.clone()).await,
        vec![
            (a.clone(), Membership::Leave),
            (b.clone(), Membership::Join)
        ]
    );
    append(
        &store,
        batch(
            0,
            vec![
                member(&a, 4, 5, &alice, Membership::Ban),
                member(&a, 5, 6, &bob, Membership::Join),
            ],
        ),
    )
    .await;
    assert_eq!(
        memberships(alice.clone()).await,
        vec![(a.clone(), Membership::Ban), (b.clone(), Membership::Join)]
    );
    assert_eq!(
        memberships(bob.clone()).await,
        vec![(a.clone(), Membership::Join)]
    );

    // Content without a valid membership changes state but not the index.
    let bad = state(
        &b,
        2,
        7,
        types::MEMBER,
        alice.as_str(),
        r#"{"membership":"dancing"}"#,
    );
    append(&store, batch(0, vec![bad])).await;
    assert_eq!(
        memberships(alice.clone()).await,
        vec![(a.clone(), Membership::Ban), (b.clone(), Membership::Join)]
    );
    assert!(memberships(user(3)).await.is_empty());
}

/// Transaction records are written with their batch and found by key.
pub async fn txn_records_are_stored_with_the_batch<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let r = room(1);
    let e = message(&r, 1, 1);
    let key = TxnKey {
        room_id: r.clone(),
        user_id: user(0),
        txn: TxnId {
            device_id: DeviceId::parse("DEVICE").expect("valid device id"),
            txn_id: "t1".into(),
        },
    };
    let record = TxnRecord {
        event_id: e.event_id.clone(),
        seq: 1,
        pos: 1,
    };
    let b = Arc::new(CommitBatch {
        shard: ShardId(0),
        events: vec![e],
        txns: vec![(key.clone(), record.clone())],
    });
    append(&store, b).await;
    assert_eq!(ok("txn", store.txn(&key).await), Some(record.clone()));
    assert_eq!(
        ok("event_txn", store.event_txn(&record.event_id).await),
        Some(key.txn.clone()),
        "the event names the transaction that sent it"
    );
    assert_eq!(
        ok("event_txn", store.event_txn(&EventId::generate()).await),
        None
    );
    let other_txn = TxnKey {
        txn: TxnId {
            txn_id: "t2".into(),
            ..key.txn.clone()
        },
        ..key.clone()
    };
    assert_eq!(ok("txn", store.txn(&other_txn).await), None);
    let other_room = TxnKey {
        room_id: room(2),
        ..key.clone()
    };
    assert_eq!(
        ok("txn", store.txn(&other_room).await),
        None,
        "txn ids are scoped to the room"
    );
    let other_user = TxnKey {
        user_id: user(9),
        ..key
    };
    assert_eq!(ok("txn", store.txn(&other_user).await), None);
}

/// A reader running while batches commit sees each batch whole or not at all.
pub async fn batches_are_visible_all_or_nothing<F: StoreFactory>(f: &F) {
    const BATCH: u64 = 16;
    const BATCHES: u64 = 40;
    let store = Arc::new(open(f).await);
    let r = room(1);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, r, done) = (Arc::clone(&store), r.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let seen = ok(
                    "events",
                    store
                        .events(&r, 1, u64::MAX, Direction::Forward, usize::MAX)
                        .await,
                );
                assert_eq!(seen.len() as u64 % BATCH, 0, "a partial batch was visible");
                let stream = ok(
                    "shard_events",
                    store.shard_events(ShardId(0), 0, usize::MAX).await,
                );
                assert_eq!(
                    stream.len() as u64 % BATCH,
                    0,
                    "a partial batch was visible in the shard stream"
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    for i in 0..BATCHES {
        let events = (1..=BATCH)
            .map(|k| message(&r, i * BATCH + k, i * BATCH + k))
            .collect();
        append(&*store, batch(0, events)).await;
    }
    done.store(true, Ordering::Release);
    if let Err(e) = reader.await {
        std::panic::resume_unwind(e.into_panic());
    }
    assert_eq!(
        ok("room_head", store.room_head(&r).await),
        Some(BATCH * BATCHES)
    );
}

/// Shards append at the same time, as their sequencers do; every event is
/// stored, every head right.
pub async fn concurrent_shards_append_safely<F: StoreFactory>(f: &F) {
    const SHARDS: u16 = 4;
    const BATCHES: u64 = 25;
    let store = Arc::new(open(f).await);
    let mut tasks = Vec::new();
    for shard in 0..SHARDS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Two rooms per shard, interleaved in each batch.
            let (a, b) = (
                room(100 + u32::from(shard) * 2),
                room(101 + u32::from(shard) * 2),
            );
            for i in 0..BATCHES {
                let events = vec![
                    message(&a, 2 * i + 1, 4 * i + 1),
                    message(&b, 2 * i + 1, 4 * i + 2),
                    message(&a, 2 * i + 2, 4 * i + 3),
                    message(&b, 2 * i + 2, 4 * i + 4),
                ];
                append(&*store, batch(shard, events)).await;
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    for shard in 0..SHARDS {
        assert_eq!(
            ok("shard_head", store.shard_head(ShardId(shard)).await),
            4 * BATCHES
        );
        let stream = ok(
            "shard_events",
            store.shard_events(ShardId(shard), 0, usize::MAX).await,
        );
        assert_eq!(stream.len() as u64, 4 * BATCHES);
        assert!(
            stream.windows(2).all(|w| w[0].pos + 1 == w[1].pos),
            "dense, ascending pos"
        );
        let a = room(100 + u32::from(shard) * 2);
        let events = ok(
            "events",
            store
                .events(&a, 1, u64::MAX, Direction::Forward, usize::MAX)
                .await,
        );
        assert_eq!(seqs(&events), (1..=2 * BATCHES).collect::<Vec<_>>());
    }
}

/// Everything written survives closing and reopening the store.
pub async fn reopen_keeps_everything<F: StoreFactory>(f: &F) {
    let r = room(1);
    let alice = user(1);
    let written;
    let token = TokenRecord {
        hash: axon_core::accounts::TokenHash([3; 32]),
        kind: TokenKind::Access,
        user_id: alice.clone(),
        device_id: DeviceId::parse("PHONE").expect("valid device id"),
        created_ts: 1,
        expires_ts: None,
    };
    let profile = UserRecord {
        user_id: alice.clone(),
        password_hash: None,
        display_name: Some("Alice".into()),
        avatar_url: None,
        admin: false,
        deactivated: false,
        created_ts: 1,
    };
    let receipt = Receipt {
        room_id: r.clone(),
        user_id: alice.clone(),
        receipt_type: "m.read".into(),
        thread_id: None,
        event_id: EventId::generate(),
        ts: 2,
    };
    let data = AccountDataRecord {
        room_id: None,
        data_type: "m.direct".into(),
        content: Bytes::from_static(b"{}"),
    };
    {
        let store = open(f).await;
        let mut events = vec![
            state(&r, 1, 1, types::CREATE, "", "{}"),
            member(&r, 2, 2, &alice, Membership::Join),
        ];
        events.extend((3..=20).map(|s| message(&r, s, s)));
        written = events.clone();
        append(&store, batch(0, events)).await;
        ok("create_user", store.create_user(&profile).await);
        ok("put_token", store.put_token(&token).await);
        ok("put_receipt", store.put_receipt(&receipt).await);
        ok(
            "put_account_data",
            store.put_account_data(&alice, &data).await,
        );
        ok("flush", store.flush().await);
    }
    let store = open(f).await;
    let events = ok(
        "events",
        store.events(&r, 1, u64::MAX, Direction::Forward, 100).await,
    );
    assert_eq!(events, written, "the timeline survives a reopen");
    assert_eq!(ok("room_head", store.room_head(&r).await), Some(20));
    assert_eq!(ok("shard_head", store.shard_head(ShardId(0)).await), 20);
    assert_eq!(ok("state_events", store.state_events(&r).await).len(), 2);
    assert_eq!(
        ok("rooms_of_user", store.rooms_of_user(&alice).await),
        vec![(r.clone(), Membership::Join)]
    );
    assert_eq!(
        ok("event", store.event(&written[7].event_id).await).as_ref(),
        Some(&written[7])
    );
    assert_eq!(ok("user", store.user(&alice).await), Some(profile));
    assert_eq!(ok("token", store.token(&token.hash).await), Some(token));
    assert_eq!(ok("receipts", store.receipts(&r).await), vec![receipt]);
    assert_eq!(
        ok(
            "account_data",
            store.account_data(&alice, None, "m.direct").await
        ),
        Some(data.content)
    );
    // And the store keeps taking appends where it left off.
    append(&store, batch(0, vec![message(&r, 21, 21)])).await;
    let ids: BTreeSet<u64> = seqs(&ok(
        "events",
        store.events(&r, 1, u64::MAX, Direction::Forward, 100).await,
    ))
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 21);
}
