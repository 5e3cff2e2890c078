//! The conformance suite: what every implementation of core's storage
//! traits must do, one async function per behaviour, each taking a
//! [`StoreFactory`] for a fresh, empty store.
//!
//! A store runs the whole suite as one `#[test]` per behaviour with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! axon_storage::conformance_tests!(|| MyFactory::new_empty());
//! ```
//!
//! - [`timeline`] — appends, range reads, heads, the shard stream, the state
//!   and membership indexes, transaction records, atomicity, concurrency.
//! - [`accounts`] — users, devices, tokens, receipts, account data.
//! - [`directory`] — aliases, the public room list, the redaction index.
//! - reopen persistence sits in [`timeline::reopen_keeps_everything`].
//!
//! Behaviours assert with `assert!`/`panic!`: a failure names what broke.

pub mod accounts;
pub mod directory;
pub mod timeline;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use axon_core::event::{Event, types};
use axon_core::ids::{EventId, RoomId, UserId};
use axon_core::shard::ShardId;
use axon_core::store::CommitBatch;
use axon_core::{Membership, Store, StoreError};
use bytes::Bytes;

/// Opens the store under test. One factory is one store location: a second
/// `open` after the first store is dropped must see everything written.
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// The store implementation.
    type Store: Store;
    /// Opens (or reopens) the store.
    async fn open(&self) -> Result<Self::Store, StoreError>;
}

/// Runs one behaviour on a fresh multi-threaded tokio runtime (what
/// [`conformance_tests!`](crate::conformance_tests) expands to).
pub fn run<Fut: Future<Output = ()>>(behaviour: Fut) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance test starts")
        .block_on(behaviour);
}

/// One `#[test]` per behaviour of the suite, each with a fresh factory from
/// `$new_factory` (an expression that evaluates to a `Fn() -> impl StoreFactory`).
#[macro_export]
macro_rules! conformance_tests {
    ($new_factory:expr) => {
        $crate::conformance_tests!(@each $new_factory;
            timeline::append_then_read_ranges,
            timeline::heads_follow_appends,
            timeline::several_shards_commit_together,
            timeline::shard_stream_pages_in_pos_order,
            timeline::events_by_id,
            timeline::state_index_keeps_latest,
            timeline::membership_index_follows_member_events,
            timeline::txn_records_are_stored_with_the_batch,
            timeline::batches_are_visible_all_or_nothing,
            timeline::concurrent_shards_append_safely,
            timeline::reopen_keeps_everything,
            accounts::user_create_conflict_and_update_missing,
            accounts::users_page_in_id_order,
            accounts::devices_and_token_cascades,
            accounts::receipts_replace_per_key,
            accounts::account_data_global_and_per_room,
            directory::aliases_create_conflict_list_delete,
            directory::published_rooms_page_in_id_order,
            directory::redactions_are_indexed_by_target,
        );
    };
    (@each $new_factory:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let factory = ($new_factory)();
                $crate::conformance::run(async move {
                    $crate::conformance::$module::$name(&factory).await
                });
            }
        )*
    };
}

/// Opens the factory's store, failing the test if it cannot.
pub async fn open<F: StoreFactory>(factory: &F) -> F::Store {
    match factory.open().await {
        Ok(store) => store,
        Err(e) => panic!("the store under test does not open: {e}"),
    }
}

/// Test room number `n`.
pub fn room(n: u32) -> RoomId {
    RoomId::parse(&format!("!room{n}:conformance.test")).expect("valid room id")
}

/// Test user number `n`.
pub fn user(n: u32) -> UserId {
    UserId::parse(&format!("@user{n}:conformance.test")).expect("valid user id")
}

/// A message event at `seq` in `room` and `pos` in its shard's stream.
pub fn message(room: &RoomId, seq: u64, pos: u64) -> Event {
    Event {
        event_id: EventId::generate(),
        room_id: room.clone(),
        sender: user(0),
        event_type: types::MESSAGE.into(),
        state_key: None,
        content: Bytes::from(format!(r#"{{"msgtype":"m.text","body":"message {seq}"}}"#)),
        origin_server_ts: 1_700_000_000_000 + seq,
        seq,
        pos,
    }
}

/// A state event.
pub fn state(
    room: &RoomId,
    seq: u64,
    pos: u64,
    event_type: &str,
    state_key: &str,
    content: &str,
) -> Event {
    Event {
        event_type: event_type.into(),
        state_key: Some(state_key.into()),
        content: Bytes::from(content.to_owned()),
        ..message(room, seq, pos)
    }
}

/// An `m.room.member` event setting `member`'s membership.
pub fn member(room: &RoomId, seq: u64, pos: u64, member: &UserId, m: Membership) -> Event {
    let content = String::from_utf8(m.content().to_vec()).expect("membership content is UTF-8");
    state(room, seq, pos, types::MEMBER, member.as_str(), &content)
}

/// A batch of `shard` without transaction records.
pub fn batch(shard: u16, events: Vec<Event>) -> Arc<CommitBatch> {
    Arc::new(CommitBatch {
        shard: ShardId(shard),
        events,
        txns: Vec::new(),
    })
}

/// Appends, failing the test on an error.
pub async fn append<S: Store>(store: &S, batch: Arc<CommitBatch>) {
    if let Err(e) = store.append(batch).await {
        panic!("append failed: {e}");
    }
}

/// Unwraps a store result, failing the test with `what` on an error.
pub fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}
