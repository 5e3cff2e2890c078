//! [`TimelineStore`] for the embedded store: atomic batch appends that keep
//! every index in the same write, and the reads the sequencer and the faces
//! need.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use axon_core::StoreError;
use axon_core::event::{Event, TxnId};
use axon_core::ids::{EventId, RoomId, UserId};
use axon_core::room::Membership;
use axon_core::shard::ShardId;
use axon_core::store::{CommitBatch, Direction, ShardRead, TimelineStore, TxnKey, TxnRecord};

use fjall::{Readable, Snapshot};

use super::{EmbeddedStore, Inner, codec, keys, kv, read};

/// Tag bytes of the `heads` keyspace.
const HEAD_ROOM: u8 = b'r';
const HEAD_SHARD: u8 = b's';

fn key_of(event: &Event) -> Vec<u8> {
    keys::event(&event.room_id, event.seq)
}

fn room_head_key(room: &RoomId) -> Vec<u8> {
    keys::KeyBuf::new()
        .byte(HEAD_ROOM)
        .id(room.as_str())
        .build()
}

fn shard_head_key(shard: ShardId) -> Vec<u8> {
    keys::KeyBuf::new().byte(HEAD_SHARD).u16(shard.0).build()
}

impl Inner {
    /// The room's head in `v` (the store's `room_head` asks memory first,
    /// [`recent::RoomHeads`](super::recent::RoomHeads)).
    fn room_head(&self, v: &Snapshot, room: &RoomId) -> Result<Option<u64>, StoreError> {
        read(v, &self.ks.heads, room_head_key(room))?
            .map(|v| keys::be_u64(&v))
            .transpose()
    }

    fn shard_head(&self, v: &Snapshot, shard: ShardId) -> Result<u64, StoreError> {
        Ok(read(v, &self.ks.heads, shard_head_key(shard))?
            .map(|v| keys::be_u64(&v))
            .transpose()?
            .unwrap_or(0))
    }

    /// The event stored under an `events` key that an index points to.
    fn event_at(&self, v: &Snapshot, key: &[u8]) -> Result<Event, StoreError> {
        let bytes = read(v, &self.ks.events, key)?
            .ok_or_else(|| StoreError::Corrupt("an index points to a missing event".into()))?;
        codec::decode("event", &bytes)
    }

    /// Writes `batches` (of one or several shards) in one write batch, so
    /// they share one commit and one fsync.
    fn append(&self, batches: &[Arc<CommitBatch>]) -> Result<(), StoreError> {
        if batches
            .iter()
            .all(|b| b.events.is_empty() && b.txns.is_empty())
        {
            return Ok(());
        }
        let mut room_heads = Vec::new();
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.append_lock.lock();
            let latest = self.latest();
            let ks = &self.ks;
            let mut wb = self.db.batch();
            let mut heads: HashMap<&RoomId, u64> = HashMap::new();
            let mut shard_heads: HashMap<ShardId, u64> = HashMap::new();
            for batch in batches {
                let shard_pos = match shard_heads.get(&batch.shard) {
                    Some(&p) => p,
                    None => self.shard_head(&latest, batch.shard)?,
                };
                let shard_pos =
                    self.stage_events(&latest, &mut wb, &mut heads, batch, shard_pos)?;
                if !batch.events.is_empty() {
                    shard_heads.insert(batch.shard, shard_pos);
                }
                for (key, record) in &batch.txns {
                    wb.insert(&ks.txns, keys::txn(key), codec::encode(record)?);
                    wb.insert(
                        &ks.event_txns,
                        record.event_id.as_str(),
                        codec::encode(&key.txn)?,
                    );
                }
            }
            for (room, seq) in heads {
                wb.insert(&ks.heads, room_head_key(room), seq.to_be_bytes().to_vec());
                room_heads.push((room.clone(), seq));
            }
            for (shard, pos) in shard_heads {
                wb.insert(&ks.heads, shard_head_key(shard), pos.to_be_bytes().to_vec());
            }
            self.commit(commit, wb)?
        };
        self.make_durable(ticket)?;
        // Readable now: memory may answer for it.
        self.room_heads.advance(room_heads);
        for batch in batches {
            self.recent.push(batch.shard, &batch.events);
            let changed: Vec<UserId> = batch
                .events
                .iter()
                .filter_map(|e| e.membership_change().map(|(user, _)| user))
                .collect();
            if !changed.is_empty() {
                self.memberships.changed(&changed);
            }
        }
        Ok(())
    }

    /// Checks one batch's events against the heads before it (`heads` holds
    /// the rooms earlier batches of this write moved) and adds them and their
    /// indexes to `wb`; returns the shard's new `pos`.
    fn stage_events<'b>(
        &self,
        latest: &Snapshot,
        wb: &mut fjall::OwnedWriteBatch,
        heads: &mut HashMap<&'b RoomId, u64>,
        batch: &'b CommitBatch,
        mut shard_pos: u64,
    ) -> Result<u64, StoreError> {
        let ks = &self.ks;
        for event in &batch.events {
            let room = &event.room_id;
            let head = match heads.get(room) {
                Some(&h) => h,
                None => self.room_head(latest, room)?.unwrap_or(0),
            };
            // Refuse what would break dense seq or the shard order, before
            // anything is written: a second writer for a shard is a bug that
            // must not corrupt the timeline.
            if event.seq != head + 1 {
                return Err(StoreError::Conflict(format!(
                    "room {room}: seq {} does not follow head {head}",
                    event.seq
                )));
            }
            if event.pos <= shard_pos {
                return Err(StoreError::Conflict(format!(
                    "shard {}: pos {} does not follow {shard_pos}",
                    batch.shard, event.pos
                )));
            }
            heads.insert(room, event.seq);
            shard_pos = event.pos;

            let key = keys::event(room, event.seq);
            wb.insert(&ks.events, key.clone(), codec::encode(event)?);
            wb.insert(&ks.event_ids, event.event_id.as_str(), key.clone());
            wb.insert(
                &ks.shard_stream,
                keys::shard_pos(batch.shard, event.pos),
                key,
            );
            if let Some(state_key) = &event.state_key {
                let state = keys::state(room, &event.event_type, state_key);
                wb.insert(&ks.state, state, event.seq.to_be_bytes().to_vec());
            }
            if let Some(target) = event.redacts() {
                wb.insert(&ks.redactions, target.as_str(), key_of(event));
            }
            if let Some((user, membership)) = event.membership_change() {
                wb.insert(
                    &ks.memberships,
                    keys::membership(&user, room),
                    codec::encode(&membership)?,
                );
            }
        }
        Ok(shard_pos)
    }

    fn events(
        &self,
        v: &Snapshot,
        room: &RoomId,
        from: u64,
        to: u64,
        dir: Direction,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let range = v.range(
            &self.ks.events,
            keys::event(room, from)..=keys::event(room, to),
        );
        let decode = |g| kv(g).and_then(|(_, v)| codec::decode("event", &v));
        match dir {
            Direction::Forward => range.take(limit).map(decode).collect(),
            Direction::Backward => range.rev().take(limit).map(decode).collect(),
        }
    }

    fn shard_events(
        &self,
        v: &Snapshot,
        shard: ShardId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let range = keys::shard_pos(shard, first)..=keys::shard_pos(shard, u64::MAX);
        v.range(&self.ks.shard_stream, range)
            .take(limit)
            .map(|g| kv(g).and_then(|(_, key)| self.event_at(v, &key)))
            .collect()
    }

    fn shard_events_of(
        &self,
        v: &Snapshot,
        shard: ShardId,
        after: u64,
        limit: usize,
        rooms: &HashSet<RoomId>,
    ) -> Result<ShardRead, StoreError> {
        let mut out = ShardRead::default();
        let Some(first) = after.checked_add(1) else {
            return Ok(out);
        };
        let range = keys::shard_pos(shard, first)..=keys::shard_pos(shard, u64::MAX);
        for g in v.range(&self.ks.shard_stream, range).take(limit) {
            let (stream_key, event_key) = kv(g)?;
            // `shard pos` → `room\0 seq`: the room is read from the index,
            // and only a kept room's event is loaded.
            let pos = stream_key
                .get(2..)
                .ok_or_else(|| StoreError::Corrupt("short shard stream key".into()))
                .and_then(keys::be_u64)?;
            out.last_pos = Some(pos);
            out.scanned += 1;
            let (room, _) = keys::split_id(&event_key)?;
            if rooms.contains(room) {
                out.events.push(self.event_at(v, &event_key)?);
            }
        }
        Ok(out)
    }

    fn state_events(&self, v: &Snapshot, room: &RoomId) -> Result<Vec<Event>, StoreError> {
        v.prefix(&self.ks.state, keys::room(room))
            .map(|g| {
                let (_, seq) = kv(g)?;
                self.event_at(v, &keys::event(room, keys::be_u64(&seq)?))
            })
            .collect()
    }

    fn rooms_of_user(
        &self,
        v: &Snapshot,
        user: &UserId,
    ) -> Result<Vec<(RoomId, Membership)>, StoreError> {
        let prefix = keys::user(user);
        v.prefix(&self.ks.memberships, &prefix)
            .map(|g| {
                let (k, v) = kv(g)?;
                let (room, _) = keys::split_id(&k[prefix.len()..])?;
                let room = RoomId::parse(room)
                    .map_err(|e| StoreError::Corrupt(format!("membership key: {e}")))?;
                Ok((room, codec::decode("membership", &v)?))
            })
            .collect()
    }
}

#[async_trait]
impl TimelineStore for EmbeddedStore {
    async fn append_batches(&self, batches: Vec<Arc<CommitBatch>>) -> Result<(), StoreError> {
        self.blocking(move |inner| inner.append(&batches)).await
    }

    async fn events(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        dir: Direction,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let room = room.clone();
        self.inline(move |inner| inner.events(&inner.view(), &room, from, to, dir, limit))
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        let inner = &self.inner;
        let v = inner.view();
        match read(&v, &inner.ks.event_ids, id.as_str())? {
            Some(key) => inner.event_at(&v, &key).map(Some),
            None => Ok(None),
        }
    }

    async fn room_head(&self, room: &RoomId) -> Result<Option<u64>, StoreError> {
        match self.inner.room_heads.get(room) {
            Some(head) => Ok(Some(head)),
            None => self.inner.room_head(&self.inner.view(), room),
        }
    }

    async fn shard_head(&self, shard: ShardId) -> Result<u64, StoreError> {
        self.inner.shard_head(&self.inner.view(), shard)
    }

    async fn shard_events(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.inline(move |inner| inner.shard_events(&inner.view(), shard, after, limit))
    }

    async fn shard_events_of(
        &self,
        shard: ShardId,
        after: u64,
        limit: usize,
        rooms: Arc<HashSet<RoomId>>,
    ) -> Result<ShardRead, StoreError> {
        if let Some(read) = self
            .inner
            .recent
            .shard_events_of(shard, after, limit, &rooms)
        {
            return Ok(read);
        }
        self.inline(move |inner| inner.shard_events_of(&inner.view(), shard, after, limit, &rooms))
    }

    async fn redaction_of(&self, target: &EventId) -> Result<Option<Event>, StoreError> {
        let inner = &self.inner;
        let v = inner.view();
        match read(&v, &inner.ks.redactions, target.as_str())? {
            Some(key) => inner.event_at(&v, &key).map(Some),
            None => Ok(None),
        }
    }

    async fn state_events(&self, room: &RoomId) -> Result<Vec<Event>, StoreError> {
        let room = room.clone();
        self.inline(move |inner| inner.state_events(&inner.view(), &room))
    }

    async fn state_event(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Event>, StoreError> {
        let inner = &self.inner;
        let v = inner.view();
        match read(
            &v,
            &inner.ks.state,
            keys::state(room, event_type, state_key),
        )? {
            Some(seq) => inner
                .event_at(&v, &keys::event(room, keys::be_u64(&seq)?))
                .map(Some),
            None => Ok(None),
        }
    }

    async fn rooms_of_user(&self, user: &UserId) -> Result<Vec<(RoomId, Membership)>, StoreError> {
        let memberships = &self.inner.memberships;
        if let Some(rooms) = memberships.get(user) {
            return Ok(rooms.as_ref().clone());
        }
        // The generation is taken before the view, see `recent::ReadThrough`.
        let generation = memberships.generation();
        let rooms = self.inline(|inner| inner.rooms_of_user(&inner.view(), user))?;
        memberships.keep(user, generation, rooms.clone());
        Ok(rooms)
    }

    async fn txn(&self, key: &TxnKey) -> Result<Option<TxnRecord>, StoreError> {
        let inner = &self.inner;
        read(&inner.view(), &inner.ks.txns, keys::txn(key))?
            .map(|v| codec::decode("txn record", &v))
            .transpose()
    }

    async fn event_txn(&self, event: &EventId) -> Result<Option<TxnId>, StoreError> {
        let inner = &self.inner;
        read(&inner.view(), &inner.ks.event_txns, event.as_str())?
            .map(|v| codec::decode("event txn", &v))
            .transpose()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.sync.sync_all(&inner.db)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::conformance::{batch, message, room};
    use crate::{Durability, EmbeddedOptions};

    fn open(dir: &std::path::Path, durability: Durability) -> EmbeddedStore {
        EmbeddedStore::open(
            dir,
            EmbeddedOptions {
                durability,
                ..Default::default()
            },
        )
        .expect("store opens")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path(), Durability::Fsync);
        let (a, b) = (room(1), room(2));
        store
            .append(batch(0, vec![message(&a, 1, 1)]))
            .await
            .expect("first append");

        // The second event of room b skips seq 2: the whole batch is refused.
        let bad = batch(
            0,
            vec![message(&a, 2, 2), message(&b, 1, 3), message(&b, 3, 4)],
        );
        assert!(matches!(
            store.append(bad.clone()).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.room_head(&a).await.expect("read"), Some(1));
        assert_eq!(store.room_head(&b).await.expect("read"), None);
        assert_eq!(store.shard_head(ShardId(0)).await.expect("read"), 1);
        assert!(
            store
                .event(&bad.events[0].event_id)
                .await
                .expect("read")
                .is_none()
        );
        assert!(
            store
                .shard_events(ShardId(0), 1, 10)
                .await
                .expect("read")
                .is_empty()
        );

        // A duplicate seq and a pos that goes backwards are refused too.
        assert!(
            store
                .append(batch(0, vec![message(&a, 1, 5)]))
                .await
                .is_err()
        );
        assert!(
            store
                .append(batch(0, vec![message(&a, 2, 1)]))
                .await
                .is_err()
        );
        store
            .append(batch(0, vec![message(&a, 2, 7)]))
            .await
            .expect("pos may skip, seq may not");
        assert_eq!(store.shard_head(ShardId(0)).await.expect("read"), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_writes_are_visible_and_survive_a_reopen_after_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = room(1);
        {
            let store = open(
                dir.path(),
                Durability::Buffered {
                    flush_interval: Duration::from_millis(20),
                },
            );
            store
                .append(batch(0, vec![message(&r, 1, 1), message(&r, 2, 2)]))
                .await
                .expect("append");
            assert_eq!(
                store.room_head(&r).await.expect("read"),
                Some(2),
                "visible before any fsync"
            );
            store.flush().await.expect("flush");
            store.close().await.expect("close");
        }
        let store = open(dir.path(), Durability::Fsync);
        assert_eq!(store.room_head(&r).await.expect("read"), Some(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_open_of_a_live_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = open(dir.path(), Durability::Fsync);
        assert!(matches!(
            EmbeddedStore::open(dir.path(), EmbeddedOptions::default()),
            Err(StoreError::Backend(_))
        ));
    }
}
