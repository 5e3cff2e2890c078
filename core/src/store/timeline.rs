//! [`TimelineStore`]: sequenced events, room state and transaction ids.

use async_trait::async_trait;

use super::StoreError;
use crate::event::{Event, TxnId};
use crate::ids::{EventId, RoomId, UserId};
use crate::room::Membership;
use crate::shard::ShardId;

/// One durable write of a shard's sequencer: events of possibly many rooms of
/// that shard, in `pos` order, with the transaction ids they answer.
#[derive(Clone, Debug, Default)]
pub struct CommitBatch {
    /// The shard whose sequencer produced the batch.
    pub shard: ShardId,
    /// Sequenced events, ascending `pos`; per room ascending dense `seq`.
    pub events: Vec<Event>,
    /// Idempotency records written atomically with the events.
    pub txns: Vec<(TxnKey, TxnRecord)>,
}

/// What [`TimelineStore::shard_events_of`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardRead {
    /// The `pos` of the last stream entry looked at (`None`: none after
    /// `after`).
    pub last_pos: Option<u64>,
    /// Stream entries looked at.
    pub scanned: usize,
    /// The kept events, ascending `pos`.
    pub events: Vec<Event>,
}

/// Idempotency key: sends are de-duplicated per room, user, device and
/// transaction id, as Matrix clients expect (a transaction id is scoped to
/// the request path, which names the room).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxnKey {
    /// The room the send went to.
    pub room_id: RoomId,
    /// Who sent it.
    pub user_id: UserId,
    /// Device and client transaction id.
    pub txn: TxnId,
}

/// What the first send of a transaction produced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxnRecord {
    /// The event the transaction created.
    pub event_id: EventId,
    /// Its `seq`.
    pub seq: u64,
    /// Its `pos`.
    pub pos: u64,
}

/// Which way a range read walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Ascending `seq`.
    Forward,
    /// Descending `seq`.
    Backward,
}

/// Durable storage of timelines and room state.
///
/// Reads return only what is durable: a read never sees part of a batch, nor
/// a batch whose `append` has not returned `Ok`. Otherwise a client could be
/// shown `seq` N, the process could die before the fsync, and after recovery
/// another event would take `seq` N — which the client would skip as seen.
#[async_trait]
pub trait TimelineStore: Send + Sync + 'static {
    /// Writes a batch atomically and durably: when this returns `Ok`, every
    /// event and transaction record of the batch survives a crash (with the
    /// default durability, after an fsync); on `Err`, none of it is visible.
    /// Current state and memberships are updated in the same write.
    async fn append(&self, batch: std::sync::Arc<CommitBatch>) -> Result<(), StoreError> {
        self.append_batches(vec![batch]).await
    }

    /// Writes the batches of several shards as one atomic, durable write (a
    /// sequencer that serves several shards commits them together, so they
    /// share one fsync): all of them on `Ok`, none of them visible on `Err`.
    /// Batches of one shard follow each other in the order given.
    async fn append_batches(
        &self,
        batches: Vec<std::sync::Arc<CommitBatch>>,
    ) -> Result<(), StoreError>;

    /// Events of `room` with `seq` in `from..=to` walked in `dir`, at most
    /// `limit` of them (`Backward` starts at `to`, `Forward` at `from`).
    async fn events(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        dir: Direction,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// One event by id.
    async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError>;

    /// The `seq` of the room's latest event; `None` if the room does not exist.
    async fn room_head(&self, room: &RoomId) -> Result<Option<u64>, StoreError>;

    /// The latest `pos` written for `shard`, 0 if none.
    async fn shard_head(&self, shard: ShardId) -> Result<u64, StoreError>;

    /// Events of `shard` with `pos` greater than `after`, ascending, at most `limit`.
    async fn shard_events(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// Like [`TimelineStore::shard_events`], but loads only the events of
    /// `rooms`: up to `limit` stream entries after `after` are looked at,
    /// and [`ShardRead::last_pos`] says how far that went, kept or not.
    /// Cheaper than `shard_events` when most of the shard's traffic is in
    /// other rooms (a `/sync` of one user).
    async fn shard_events_of(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
        rooms: std::sync::Arc<std::collections::HashSet<RoomId>>,
    ) -> Result<ShardRead, StoreError>;

    /// The latest `m.room.redaction` event whose `content.redacts` names
    /// `target` (stores index these in the same write as the events). The
    /// store does not check that it is allowed to take effect; core does.
    async fn redaction_of(&self, target: &EventId) -> Result<Option<Event>, StoreError>;

    /// The current state events of `room` (one per type and state key).
    async fn state_events(&self, room: &RoomId) -> Result<Vec<Event>, StoreError>;

    /// The current state event for `(event_type, state_key)` in `room`.
    async fn state_event(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Event>, StoreError>;

    /// Every room `user` has a membership in, with that membership.
    async fn rooms_of_user(&self, user: &UserId) -> Result<Vec<(RoomId, Membership)>, StoreError>;

    /// The result of an earlier send with this transaction key.
    async fn txn(&self, key: &TxnKey) -> Result<Option<TxnRecord>, StoreError>;

    /// The transaction (device and client transaction id) whose send
    /// created `event`, if it was sent with one (written with the batch's
    /// transaction records).
    async fn event_txn(&self, event: &EventId) -> Result<Option<TxnId>, StoreError>;

    /// Makes everything written so far durable (used at shutdown and by
    /// stores configured to not fsync every batch).
    async fn flush(&self) -> Result<(), StoreError>;
}
