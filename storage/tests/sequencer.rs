//! The sequencer on the embedded store: ordering, idempotency, atomic
//! multi-event appends, authorization, recovery after a restart, and what
//! senders and readers see while a write is in flight (a gated store).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axon_core::room::{AuthError, Membership};
use axon_core::sequencer::PendingAppend;
use axon_core::store::{
    CommitBatch, Direction, ShardRead, StoreError, TimelineStore, TxnKey, TxnRecord,
};
use axon_core::{
    AppendError, DeviceId, Event, EventId, NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer,
    SequencerConfig, ServerName, ShardId, TxnId, UserId,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

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

// The writer stages the next batch while a write is in flight: what a
// sender and a reader see while a write has not ended, and what happens
// to the batch behind a write that fails. The store is the embedded one
// behind a gate that holds each write until the test lets it go.

/// The embedded store, with every write held at a gate while `hold` is set
/// until the test adds a permit, and failed instead of written when told.
struct GatedStore {
    inner: EmbeddedStore,
    hold: AtomicBool,
    permits: Semaphore,
    fail_next: AtomicBool,
    /// Writes that reached the gate so far.
    entered: watch::Sender<usize>,
}

impl GatedStore {
    fn open(dir: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            inner: EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap(),
            hold: AtomicBool::new(false),
            permits: Semaphore::new(0),
            fail_next: AtomicBool::new(false),
            entered: watch::Sender::new(0),
        })
    }

    /// Waits until `n` writes have reached the gate.
    async fn entered(&self, n: usize) {
        self.entered
            .subscribe()
            .wait_for(|&e| e >= n)
            .await
            .unwrap();
    }

    /// Lets one held write go on.
    fn release(&self) {
        self.permits.add_permits(1);
    }
}

#[async_trait]
impl TimelineStore for GatedStore {
    async fn append_batches(&self, batches: Vec<Arc<CommitBatch>>) -> Result<(), StoreError> {
        self.entered.send_modify(|e| *e += 1);
        if self.hold.load(Ordering::SeqCst) {
            self.permits.acquire().await.unwrap().forget();
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("injected write failure".into()));
        }
        self.inner.append_batches(batches).await
    }
    async fn events(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        dir: Direction,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.events(room, from, to, dir, limit).await
    }
    async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.inner.event(id).await
    }
    async fn room_head(&self, room: &RoomId) -> Result<Option<u64>, StoreError> {
        self.inner.room_head(room).await
    }
    async fn shard_head(&self, shard: ShardId) -> Result<u64, StoreError> {
        self.inner.shard_head(shard).await
    }
    async fn shard_events(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.shard_events(shard, after, limit).await
    }
    async fn shard_events_of(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
        rooms: Arc<std::collections::HashSet<RoomId>>,
    ) -> Result<ShardRead, StoreError> {
        self.inner.shard_events_of(shard, after, limit, rooms).await
    }
    async fn redaction_of(&self, target: &EventId) -> Result<Option<Event>, StoreError> {
        self.inner.redaction_of(target).await
    }
    async fn state_events(&self, room: &RoomId) -> Result<Vec<Event>, StoreError> {
        self.inner.state_events(room).await
    }
    async fn state_event(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Event>, StoreError> {
        self.inner.state_event(room, event_type, state_key).await
    }
    async fn rooms_of_user(&self, user: &UserId) -> Result<Vec<(RoomId, Membership)>, StoreError> {
        self.inner.rooms_of_user(user).await
    }
    async fn txn(&self, key: &TxnKey) -> Result<Option<TxnRecord>, StoreError> {
        self.inner.txn(key).await
    }
    async fn event_txn(&self, event: &EventId) -> Result<Option<TxnId>, StoreError> {
        self.inner.event_txn(event).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<GatedStore>,
    sequencer: Sequencer,
    alice: UserId,
    room: RoomId,
}

/// One shard and one writer; a room made by alice, then every write held.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = GatedStore::open(dir.path());
    let config = SequencerConfig {
        shards: 1,
        ..SequencerConfig::default()
    };
    let sequencer = Sequencer::start(store.clone(), Arc::new(RoomRouter::new()), config)
        .await
        .unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let room = RoomId::parse("!r:x").unwrap();
    sequencer
        .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
        .await
        .unwrap();
    store.hold.store(true, Ordering::SeqCst);
    let written = *store.entered.borrow();
    store.entered.send_replace(0);
    assert!(written > 0);
    Fixture {
        _dir: dir,
        store,
        sequencer,
        alice,
        room,
    }
}

impl Fixture {
    /// Hands alice's message to the sequencer without waiting for it.
    async fn send(&self, body: &str, txn: Option<&str>) -> PendingAppend {
        self.sequencer
            .submit(msg(&self.room, &self.alice, body, txn))
            .await
            .unwrap()
    }

    /// Returns once the writer has taken every request sent before: a room
    /// that does not exist is looked up through the same queue.
    async fn staged(&self) {
        let nowhere = RoomId::parse("!nowhere:x").unwrap();
        assert!(self.sequencer.room_state(&nowhere).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_send_still_being_written_is_answered_from_that_write() {
    let f = fixture().await;
    let first = f.send("hello", Some("t1")).await;
    f.store.entered(1).await;
    // Staged behind the write in flight: the retry and a new send.
    let retry = f.send("hello", Some("t1")).await;
    let next = f.send("next", Some("t2")).await;
    f.staged().await;
    f.store.release();
    let first = first.await.unwrap();
    assert!(!first.deduplicated);
    f.store.entered(2).await;
    f.store.release();
    let (retry, next) = (retry.await.unwrap(), next.await.unwrap());
    assert!(retry.deduplicated);
    assert_eq!(
        (&retry.event_id, retry.seq, retry.pos),
        (&first.event_id, first.seq, first.pos)
    );
    assert!(!next.deduplicated);
    assert_eq!(next.seq, first.seq + 1);
    // Stored once: the room holds the creation events, hello and next.
    assert_eq!(f.store.room_head(&f.room).await.unwrap(), Some(next.seq));
    let stored = f
        .store
        .events(&f.room, first.seq, next.seq, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].event_id, first.event_id);
    f.store.hold.store(false, Ordering::SeqCst);
    f.sequencer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_each_batchs_state_only_once_it_is_written() {
    let f = fixture().await;
    let bob = UserId::parse("@bob:x").unwrap();
    let carol = UserId::parse("@carol:x").unwrap();
    let invite = |who: &UserId| NewEvent::membership(&f.room, &f.alice, who, Membership::Invite);
    let state = || async { f.sequencer.room_state(&f.room).await.unwrap().unwrap() };
    let bob_invited = f.sequencer.submit(invite(&bob)).await.unwrap();
    f.store.entered(1).await;
    let carol_invited = f.sequencer.submit(invite(&carol)).await.unwrap();
    f.staged().await;
    // Both staged, neither written.
    assert_eq!(state().await.membership(&bob), None);
    f.store.release();
    bob_invited.await.unwrap();
    f.store.entered(2).await;
    // The first write ended and the second is held: bob is invited, carol
    // (staged in the working state already) is not, to readers.
    let now = state().await;
    assert_eq!(now.membership(&bob), Some(Membership::Invite));
    assert_eq!(now.membership(&carol), None);
    f.store.release();
    carol_invited.await.unwrap();
    assert_eq!(state().await.membership(&carol), Some(Membership::Invite));
    f.store.hold.store(false, Ordering::SeqCst);
    f.sequencer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_refuses_what_was_staged_behind_it() {
    let f = fixture().await;
    let head = f.store.room_head(&f.room).await.unwrap();
    let doomed = f.send("doomed", Some("t1")).await;
    f.store.entered(1).await;
    let behind = f.send("behind", None).await;
    let retry = f.send("doomed", Some("t1")).await;
    f.staged().await;
    f.store.fail_next.store(true, Ordering::SeqCst);
    f.store.release();
    for pending in [doomed, behind, retry] {
        assert!(matches!(pending.await, Err(AppendError::Unavailable(_))));
    }
    // What was staged behind the failed write never reached the store, and
    // the stopped shard refuses what comes next.
    assert_eq!(*f.store.entered.borrow(), 1);
    assert_eq!(f.store.room_head(&f.room).await.unwrap(), head);
    assert!(matches!(
        f.sequencer
            .append(msg(&f.room, &f.alice, "later", None))
            .await,
        Err(AppendError::Unavailable(_))
    ));
    f.store.hold.store(false, Ordering::SeqCst);
    f.sequencer.shutdown().await;
}
