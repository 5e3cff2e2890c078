//! The sequencer: authorizes, orders and durably commits appends, then
//! publishes them (DESIGN invariants 1, 2 and 4).
//!
//! - [`Sequencer`] — the handle the faces use: `append`, `append_all`,
//!   `room_state`. It routes each request to the writer of its room's shard.
//! - [`writer`] — the writer task: takes every request waiting in its queue
//!   as one batch (group commit) and writes what all its shards staged in one
//!   durable store write; only then do the shards publish to the router and
//!   answer the senders. While a write is in flight the writer checks and
//!   stages new requests into the next batch, which goes to the store as
//!   soon as the write before it has ended, so the batch size grows with load
//!   and fsyncs are shared by many events. One writer serves all shards by
//!   default ([`SequencerConfig::writers`]).
//! - [`shard`] — one shard's sequencing: checks each event against the
//!   room's state ([`authorize`](crate::room::authorize)), assigns dense
//!   `seq` per room and `pos` per shard. Each shard has exactly one writer.
//!
//! A store write that fails stops its shards (fail-stop): after a failed
//! fsync the state of the file is unknown, so they refuse further writes
//! until the process restarts and recovers from what is durable.

mod shard;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::event::{EventError, NewEvent};
use crate::ids::{EventId, RoomId};
use crate::room::{AuthError, RoomState};
use crate::router::RoomRouter;
use crate::shard::ShardId;
use crate::store::{StoreError, TimelineStore};

/// Sequencer settings.
#[derive(Clone, Debug)]
pub struct SequencerConfig {
    /// Number of shards S (fixed for the life of a data directory).
    pub shards: u16,
    /// Number of writer tasks; writer `w` serves the shards `s` with
    /// `s % writers == w` and commits all of them in one store write, so
    /// they share the fsync. Clamped to `1..=shards`.
    pub writers: u16,
    /// Most events in one group commit.
    pub max_batch_events: usize,
    /// Requests that may wait per writer before senders wait for room.
    pub queue_depth: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        Self {
            shards: 16,
            writers: 1,
            max_batch_events: 4096,
            queue_depth: 65_536,
        }
    }
}

/// The result of one appended event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The event's id.
    pub event_id: EventId,
    /// Its dense position in the room.
    pub seq: u64,
    /// Its position in the shard stream.
    pub pos: u64,
    /// When it was sequenced, in milliseconds since the Unix epoch.
    pub origin_server_ts: u64,
    /// `true` when this is the answer to an earlier send with the same
    /// transaction id, and nothing new was stored.
    pub deduplicated: bool,
}

/// Why an append was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The event is malformed.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// The room's rules refuse it.
    #[error(transparent)]
    Forbidden(#[from] AuthError),
    /// `append_all` was given events of more than one room, or none.
    #[error("append_all needs one or more events of a single room")]
    MixedRooms,
    /// The store failed; the shard has stopped taking writes.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The sequencer is shutting down.
    #[error("the sequencer is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

enum Command {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
    },
    LoadRoom {
        room: RoomId,
        reply: oneshot::Sender<Result<Option<Arc<RoomState>>, AppendError>>,
    },
    /// Finish the batch in hand, refuse what is queued behind it, and end.
    Stop,
}

/// An event handed to its shard ([`Sequencer::submit`]); resolves once it
/// is durable, or refused.
#[derive(Debug)]
pub struct PendingAppend(oneshot::Receiver<Result<Vec<Appended>, AppendError>>);

impl Future for PendingAppend {
    type Output = Result<Appended, AppendError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(mut appended)) => appended.pop().ok_or(AppendError::MixedRooms),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AppendError::ShuttingDown),
        })
    }
}

/// Room states as last committed, shared with readers: updated by the
/// shards after each commit that changes state, read without locks.
type RoomStates = papaya::HashMap<RoomId, Arc<RoomState>>;

/// The handle to every shard's sequencer.
#[derive(Clone)]
pub struct Sequencer {
    /// Each writer's queue; shard `s` is served by `writers[s % writers.len()]`.
    writers: Arc<[mpsc::Sender<Command>]>,
    shard_count: u16,
    states: Arc<RoomStates>,
    /// Per shard, the last committed `pos`.
    heads: Arc<[Arc<AtomicU64>]>,
    tasks: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Sequencer {
    /// Starts the writer tasks, recovering each shard's stream position
    /// from `store`.
    pub async fn start(
        store: Arc<dyn TimelineStore>,
        router: Arc<RoomRouter>,
        config: SequencerConfig,
    ) -> Result<Self, StoreError> {
        let shard_count = config.shards.max(1);
        let writer_count = config.writers.clamp(1, shard_count);
        let states = Arc::new(RoomStates::new());
        let mut heads = Vec::with_capacity(shard_count as usize);
        let mut served: Vec<Vec<shard::ShardSequencer>> =
            (0..writer_count).map(|_| Vec::new()).collect();
        for i in 0..shard_count {
            let shard = ShardId(i);
            let pos = store.shard_head(shard).await?;
            let head = Arc::new(AtomicU64::new(pos));
            heads.push(Arc::clone(&head));
            served[usize::from(i % writer_count)].push(shard::ShardSequencer::new(
                shard,
                shard_count,
                pos,
                Arc::clone(&store),
                Arc::clone(&router),
                Arc::clone(&states),
                head,
            ));
        }
        let mut senders = Vec::with_capacity(served.len());
        let mut tasks = Vec::with_capacity(served.len());
        for shards in served {
            let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
            let writer = writer::Writer::new(
                shards,
                shard_count,
                writer_count,
                Arc::clone(&store),
                config.max_batch_events.max(1),
            );
            tasks.push(tokio::spawn(writer.run(rx)));
            senders.push(tx);
        }
        Ok(Self {
            writers: senders.into(),
            shard_count,
            states,
            heads: heads.into(),
            tasks: Arc::new(parking_lot::Mutex::new(tasks)),
        })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// The last `pos` `shard` committed (0 before its first event, or for
    /// a shard out of range). Events up to it are durable and readable; a
    /// reader that has seen up to it may skip the shard without a store
    /// read.
    pub fn shard_head(&self, shard: ShardId) -> u64 {
        self.heads
            .get(usize::from(shard.0))
            .map_or(0, |h| h.load(Ordering::Acquire))
    }

    /// The queue of the writer that serves `room`'s shard.
    fn writer_of(&self, room: &RoomId) -> &mpsc::Sender<Command> {
        let shard = usize::from(ShardId::of(room, self.shard_count).0);
        &self.writers[shard % self.writers.len()]
    }

    /// Appends one event; returns once it is durable (or was a retry of a
    /// transaction already stored).
    pub async fn append(&self, event: NewEvent) -> Result<Appended, AppendError> {
        self.submit(event).await?.await
    }

    /// Hands one event to its shard and returns without waiting for the
    /// write: the [`PendingAppend`] resolves once it is durable. Events
    /// submitted one after another (by one connection, say) are sequenced
    /// in that order; a caller can keep many in flight, which is how one
    /// connection's sends share group commits instead of waiting for one
    /// fsync each. Waits only while the writer's queue is full.
    pub async fn submit(&self, event: NewEvent) -> Result<PendingAppend, AppendError> {
        event.validate()?;
        let (reply, rx) = oneshot::channel();
        self.writer_of(&event.room_id)
            .send(Command::Append {
                events: vec![event],
                reply,
            })
            .await
            .map_err(|_| AppendError::ShuttingDown)?;
        Ok(PendingAppend(rx))
    }

    /// Appends events of one room atomically and in order: all are stored or
    /// none (used to create a room with its initial state).
    pub async fn append_all(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, AppendError> {
        let room = match events.first() {
            Some(e) if events.iter().all(|x| x.room_id == e.room_id) => e.room_id.clone(),
            _ => return Err(AppendError::MixedRooms),
        };
        for e in &events {
            e.validate()?;
        }
        let (reply, rx) = oneshot::channel();
        self.writer_of(&room)
            .send(Command::Append { events, reply })
            .await
            .map_err(|_| AppendError::ShuttingDown)?;
        rx.await.map_err(|_| AppendError::ShuttingDown)?
    }

    /// The room's state as last committed; `None` if the room does not exist.
    pub async fn room_state(&self, room: &RoomId) -> Result<Option<Arc<RoomState>>, AppendError> {
        if let Some(state) = self.states.pin().get(room) {
            return Ok(Some(Arc::clone(state)));
        }
        let (reply, rx) = oneshot::channel();
        self.writer_of(room)
            .send(Command::LoadRoom {
                room: room.clone(),
                reply,
            })
            .await
            .map_err(|_| AppendError::ShuttingDown)?;
        rx.await.map_err(|_| AppendError::ShuttingDown)?
    }

    /// Stops taking requests, lets every writer finish the batch it holds,
    /// and waits for the writer tasks to end. Other clones of the handle see
    /// `ShuttingDown` afterwards.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for writer in self.writers.iter() {
            let _ = writer.send(Command::Stop).await;
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
