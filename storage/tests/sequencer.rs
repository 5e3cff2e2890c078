//! The sequencer on the embedded store: ordering, idempotency, atomic
//! multi-event appends, authorization, and recovery after a restart.

use std::sync::Arc;

use axon_core::room::AuthError;
use axon_core::store::{Direction, TimelineStore};
use axon_core::{
    AppendError, DeviceId, NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer, SequencerConfig,
    ServerName, ShardId, TxnId, UserId,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use bytes::Bytes;

fn msg(room: &RoomId, sender: &UserId, body: &str, txn: Option<&str>) -> NewEvent {
    NewEvent {
        room_id: room.clone(),
        sender: sender.clone(),
        event_type: "m.room.message".into(),
        state_key: None,
        content: Bytes::from(format!(r#"{{"body":"{body}"}}"#)),
        txn: txn.map(|t| TxnId {
            device_id: DeviceId::parse("DEV").unwrap(),
            txn_id: t.into(),
        }),
    }
}

async fn start(dir: &std::path::Path, shards: u16) -> (Arc<EmbeddedStore>, Sequencer) {
    start_with_writers(dir, shards, 1).await
}

async fn start_with_writers(
    dir: &std::path::Path,
    shards: u16,
    writers: u16,
) -> (Arc<EmbeddedStore>, Sequencer) {
    let store = Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap());
    let config = SequencerConfig {
        shards,
        writers,
        ..SequencerConfig::default()
    };
    let seq = Sequencer::start(store.clone(), Arc::new(RoomRouter::new()), config)
        .await
        .unwrap();
    (store, seq)
}

/// One writer serving all three shards (the default), two writers (one
/// serving two shards, one serving one) and a writer per shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_seqs_and_increasing_positions() {
    for writers in [1, 2, 3] {
        concurrent_appends(writers).await;
    }
}

async fn concurrent_appends(writers: u16) {
    let dir = tempfile::tempdir().unwrap();
    let (store, sequencer) = start_with_writers(dir.path(), 3, writers).await;
    let server = ServerName::parse("x").unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let rooms: Vec<RoomId> = (0..8).map(|_| RoomId::random(&server)).collect();
    for r in &rooms {
        sequencer
            .append_all(RoomCreation::new(r.clone(), alice.clone()).events())
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (sequencer, rooms, alice) = (sequencer.clone(), rooms.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let room = &rooms[(t + i) % rooms.len()];
                sequencer
                    .append(msg(room, &alice, &format!("{t}-{i}"), None))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for r in &rooms {
        let head = store.room_head(r).await.unwrap().unwrap();
        let events = store
            .events(r, 1, head, Direction::Forward, 10_000)
            .await
            .unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
        total += head;
    }
    assert_eq!(total, 8 * 4 + 64 * 20);
    for shard in 0..3 {
        let events = store
            .shard_events(ShardId(shard), 0, 100_000)
            .await
            .unwrap();
        let pos: Vec<u64> = events.iter().map(|e| e.pos).collect();
        assert_eq!(
            pos,
            (1..=pos.len() as u64).collect::<Vec<_>>(),
            "shard {shard}, {writers} writers"
        );
        assert!(
            events
                .iter()
                .all(|e| ShardId::of(&e.room_id, 3) == ShardId(shard))
        );
    }
    sequencer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_transaction_is_stored_once_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let room = RoomId::parse("!r:x").unwrap();
    let first = {
        let (_store, sequencer) = start(dir.path(), 2).await;
        sequencer
            .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
            .await
            .unwrap();
        // Concurrent retries land in one batch or in consecutive ones.
        let sends: Vec<_> = (0..8)
            .map(|_| {
                let (sequencer, room, alice) = (sequencer.clone(), room.clone(), alice.clone());
                tokio::spawn(async move {
                    sequencer
                        .append(msg(&room, &alice, "hello", Some("t1")))
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for s in sends {
            results.push(s.await.unwrap());
        }
        let first = results[0].clone().unwrap();
        for r in &results {
            assert_eq!(r.as_ref().unwrap().event_id, first.event_id);
        }
        assert_eq!(
            results
                .iter()
                .filter(|r| !r.as_ref().unwrap().deduplicated)
                .count(),
            1
        );
        sequencer.shutdown().await;
        first
    };
    let (store, sequencer) = start(dir.path(), 2).await;
    let again = sequencer
        .append(msg(&room, &alice, "hello", Some("t1")))
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(
        (again.event_id, again.seq),
        (first.event_id.clone(), first.seq)
    );
    // The same transaction id from another room or user is a new send.
    let other = sequencer
        .append(msg(&room, &alice, "hello", Some("t2")))
        .await
        .unwrap();
    assert_eq!(other.seq, first.seq + 1);
    assert_eq!(store.room_head(&room).await.unwrap(), Some(first.seq + 1));
    sequencer.shutdown().await;
}

#[tokio::test]
async fn refused_events_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, sequencer) = start(dir.path(), 1).await;
    let alice = UserId::parse("@alice:x").unwrap();
    let eve = UserId::parse("@eve:x").unwrap();
    let room = RoomId::parse("!r:x").unwrap();
    sequencer
        .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
        .await
        .unwrap();
    assert_eq!(
        sequencer.append(msg(&room, &eve, "hi", None)).await,
        Err(AppendError::Forbidden(AuthError::NotJoined(eve.clone())))
    );
    // One refused event refuses the whole request.
    let batch = vec![msg(&room, &alice, "ok", None), msg(&room, &eve, "no", None)];
    assert!(sequencer.append_all(batch).await.is_err());
    let mut bad = msg(&room, &alice, "x", None);
    bad.content = Bytes::from_static(b"not json");
    assert!(matches!(
        sequencer.append(bad).await,
        Err(AppendError::Invalid(_))
    ));
    let missing = RoomId::parse("!missing:x").unwrap();
    assert_eq!(
        sequencer.append(msg(&missing, &alice, "x", None)).await,
        Err(AppendError::Forbidden(AuthError::RoomNotFound))
    );
    assert_eq!(store.room_head(&room).await.unwrap(), Some(4));
    let ok = sequencer
        .append(msg(&room, &alice, "ok", None))
        .await
        .unwrap();
    assert_eq!(ok.seq, 5);
    let state = sequencer.room_state(&room).await.unwrap().unwrap();
    assert!(state.is_joined(&alice));
    assert!(!state.is_joined(&eve));
    assert!(sequencer.room_state(&missing).await.unwrap().is_none());
    sequencer.shutdown().await;
    assert_eq!(
        sequencer.append(msg(&room, &alice, "late", None)).await,
        Err(AppendError::ShuttingDown)
    );
}

/// Restarted with another number of writers (two, then one): the shards
/// carry on from what is stored.
#[tokio::test]
async fn a_restarted_sequencer_continues_each_room_and_shard() {
    let dir = tempfile::tempdir().unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let room = RoomId::parse("!r:x").unwrap();
    {
        let (_store, sequencer) = start_with_writers(dir.path(), 2, 2).await;
        sequencer
            .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
            .await
            .unwrap();
        for i in 0..10 {
            sequencer
                .append(msg(&room, &alice, &i.to_string(), None))
                .await
                .unwrap();
        }
        sequencer.shutdown().await;
    }
    let (store, sequencer) = start(dir.path(), 2).await;
    let next = sequencer
        .append(msg(&room, &alice, "after", None))
        .await
        .unwrap();
    assert_eq!(next.seq, 15);
    assert_eq!(next.pos, 15);
    let shard = ShardId::of(&room, 2);
    assert_eq!(store.shard_head(shard).await.unwrap(), 15);
    sequencer.shutdown().await;
}

#[tokio::test]
async fn a_member_event_wakes_the_user_it_is_about() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
    let router = Arc::new(RoomRouter::new());
    let sequencer = Sequencer::start(store, router.clone(), SequencerConfig::default())
        .await
        .unwrap();
    let server = ServerName::parse("x").unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let bob = UserId::parse("@bob:x").unwrap();
    let room = RoomId::random(&server);
    sequencer
        .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
        .await
        .unwrap();
    let bob_wakes = router.users().watch(&bob);
    sequencer
        .append(msg(&room, &alice, "not about bob", None))
        .await
        .unwrap();
    assert!(
        !bob_wakes.has_changed().unwrap(),
        "a message is not about bob"
    );
    sequencer
        .append(NewEvent {
            room_id: room.clone(),
            sender: alice.clone(),
            event_type: "m.room.member".into(),
            state_key: Some(bob.to_string()),
            content: axon_core::Membership::Invite.content(),
            txn: None,
        })
        .await
        .unwrap();
    // Signalled after the publish, before the sender's answer.
    assert!(bob_wakes.has_changed().unwrap(), "bob's invite wakes bob");
    sequencer.shutdown().await;
}
