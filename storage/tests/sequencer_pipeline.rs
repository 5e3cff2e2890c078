//! The sequencer stages the next batch while a write is in flight: what a
//! sender and a reader see while a write has not ended, and what happens to
//! the batch behind a write that fails. The store here is the embedded one
//! behind a gate that holds each write until the test lets it go.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axon_core::room::Membership;
use axon_core::store::{
    CommitBatch, Direction, ShardRead, StoreError, TimelineStore, TxnKey, TxnRecord,
};
use axon_core::{
    AppendError, DeviceId, Event, EventId, NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer,
    SequencerConfig, ShardId, TxnId, UserId,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use tokio::sync::{Semaphore, watch};

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

fn msg(room: &RoomId, sender: &UserId, body: &str, txn: Option<&str>) -> NewEvent {
    NewEvent {
        txn: txn.map(|t| TxnId {
            device_id: DeviceId::parse("DEV").unwrap(),
            txn_id: t.into(),
        }),
        ..NewEvent::message(room, sender, format!(r#"{{"body":"{body}"}}"#))
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
    let first = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "hello", Some("t1")))
        .await
        .unwrap();
    f.store.entered(1).await;
    // Staged behind the write in flight: the retry and a new send.
    let retry = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "hello", Some("t1")))
        .await
        .unwrap();
    let next = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "next", Some("t2")))
        .await
        .unwrap();
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
    let doomed = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "doomed", Some("t1")))
        .await
        .unwrap();
    f.store.entered(1).await;
    let behind = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "behind", None))
        .await
        .unwrap();
    let retry = f
        .sequencer
        .submit(msg(&f.room, &f.alice, "doomed", Some("t1")))
        .await
        .unwrap();
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
