//! The writer task: group commit for the shards it serves.
//!
//! A writer takes every request waiting in its queue as one batch, stages
//! each into its room's shard ([`ShardSequencer::accept`]), and writes what
//! every shard staged in **one** store write
//! ([`TimelineStore::append_batches`]), so the shards share one commit and
//! one fsync. Only once the write has ended does each shard publish its
//! events and answer its senders ([`ShardSequencer::finish`]).
//!
//! While a write is in flight the writer goes on taking requests and
//! staging them (checking, ordering, building events) into the next batch,
//! which it hands to the store as soon as the write before has ended: the
//! store's work (memtable inserts, journal, fsync) and the writer's run side
//! by side instead of taking turns, and at most one write is in flight, so
//! writes reach the store in order. A write that fails stops its shards
//! (fail-stop), and what was staged behind it is refused, not written.
//!
//! Why one writer for many shards: a shard waits for its batch to be
//! durable before it writes the next, and the embedded store's journal
//! takes no commit while an fsync runs. With a writer per shard, two busy
//! shards took turns at the fsync, each fsync serving one of them
//! (docs/benchmarks.md); a writer that serves both makes one commit of
//! both rooms' events per cycle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::shard::{Prepared, ShardSequencer, Staging};
use super::{AppendError, Command};
use crate::ids::RoomId;
use crate::shard::ShardId;
use crate::store::{StoreError, TimelineStore};

/// The store write in flight, and what its shards finish once it has ended.
struct InFlight {
    write: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>,
    /// Each written shard's index in `shards` and its part of the write.
    prepared: Vec<(usize, Prepared)>,
    /// Events in the write.
    events: usize,
    started: Instant,
}

/// One sequencer task and the shards it serves.
pub(super) struct Writer {
    /// The shards this writer serves: shard `s` is `shards[s / writers]`.
    shards: Vec<ShardSequencer>,
    /// Each shard's part of the batch being assembled, beside `shards`.
    staging: Vec<Staging>,
    shard_count: u16,
    writers: u16,
    store: Arc<dyn TimelineStore>,
    max_batch: usize,
}

impl Writer {
    pub(super) fn new(
        shards: Vec<ShardSequencer>,
        shard_count: u16,
        writers: u16,
        store: Arc<dyn TimelineStore>,
        max_batch: usize,
    ) -> Self {
        let staging = shards.iter().map(|_| Staging::default()).collect();
        Self {
            shards,
            staging,
            shard_count,
            writers,
            store,
            max_batch,
        }
    }

    /// The index in `shards` of the shard that owns `room`. The
    /// [`Sequencer`](super::Sequencer) sends a room only to the writer of
    /// its shard, `s % writers`, which holds that shard at `s / writers`.
    fn index_of(&self, room: &RoomId) -> usize {
        usize::from(ShardId::of(room, self.shard_count).0) / usize::from(self.writers)
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut in_flight: Option<InFlight> = None;
        // Events staged for the next write.
        let mut staged = 0;
        let mut stopping = false;
        loop {
            if let Some(write) = in_flight.as_mut() {
                tokio::select! {
                    // The write first: its senders wait for it, and the next
                    // batch goes out only after it.
                    biased;
                    result = &mut write.write => {
                        if let Some(done) = in_flight.take() {
                            self.end_write(done, result);
                        }
                    }
                    cmd = rx.recv(), if !stopping && staged < self.max_batch => match cmd {
                        Some(cmd) => {
                            staged += self.take(cmd, &mut stopping).await;
                            staged += self.take_waiting(&mut rx, staged, &mut stopping).await;
                        }
                        None => stopping = true,
                    },
                }
                continue;
            }
            if !self.has_staged() {
                if stopping {
                    break;
                }
                match rx.recv().await {
                    Some(cmd) => staged += self.take(cmd, &mut stopping).await,
                    None => break,
                }
            }
            self.take_waiting(&mut rx, staged, &mut stopping).await;
            in_flight = self.start_write();
            staged = 0;
        }
        // Refuse whatever is still queued; senders see ShuttingDown.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Append { reply, .. } => {
                    let _ = reply.send(Err(AppendError::ShuttingDown));
                }
                Command::LoadRoom { reply, .. } => {
                    let _ = reply.send(Err(AppendError::ShuttingDown));
                }
                Command::Stop => {}
            }
        }
    }

    /// Handles one request; returns how many events it staged.
    async fn take(&mut self, cmd: Command, stopping: &mut bool) -> usize {
        match cmd {
            Command::Append { events, reply } => {
                let i = events.first().map_or(0, |e| self.index_of(&e.room_id));
                let staging = &mut self.staging[i];
                let before = staging.len();
                self.shards[i].accept(staging, events, reply).await;
                staging.len() - before
            }
            Command::LoadRoom { room, reply } => {
                let i = self.index_of(&room);
                let _ = reply.send(self.shards[i].load_for_reader(&room).await);
                0
            }
            Command::Stop => {
                *stopping = true;
                0
            }
        }
    }

    /// Handles the requests already waiting, until the batch holds
    /// `max_batch` events or the writer stops; returns the events staged.
    async fn take_waiting(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        staged: usize,
        stopping: &mut bool,
    ) -> usize {
        let mut taken = 0;
        while !*stopping && staged + taken < self.max_batch {
            let Ok(cmd) = rx.try_recv() else { break };
            taken += self.take(cmd, stopping).await;
        }
        taken
    }

    /// Whether any shard holds a staged request (events or an answer).
    fn has_staged(&self) -> bool {
        self.staging.iter().any(|s| !s.is_empty())
    }

    /// Hands what every shard staged to the store as one write; `None` when
    /// there is nothing to write (the requests are answered at once).
    fn start_write(&mut self) -> Option<InFlight> {
        let mut prepared = Vec::new();
        for (i, staging) in self.staging.iter_mut().enumerate() {
            if staging.is_empty() {
                continue;
            }
            let shard = &mut self.shards[i];
            let p = shard.prepare(std::mem::take(staging));
            if shard.has_failed() {
                // Staged while the write before it was failing: not written.
                shard.abandon(p);
            } else {
                prepared.push((i, p));
            }
        }
        let batches: Vec<_> = prepared
            .iter()
            .filter_map(|(_, p)| p.batch.clone())
            .collect();
        if batches.is_empty() {
            for (i, p) in prepared {
                self.shards[i].finish(p, Ok(()));
            }
            return None;
        }
        let events = batches.iter().map(|b| b.events.len()).sum();
        let store = Arc::clone(&self.store);
        Some(InFlight {
            write: Box::pin(async move { store.append_batches(batches).await }),
            prepared,
            events,
            started: Instant::now(),
        })
    }

    /// The write has ended: lets each of its shards publish and answer (or
    /// stop, if it failed).
    fn end_write(&mut self, done: InFlight, result: Result<(), StoreError>) {
        metrics::histogram!("axon_sequencer_commit_seconds")
            .record(done.started.elapsed().as_secs_f64());
        metrics::histogram!("axon_sequencer_batch_events").record(done.events as f64);
        match &result {
            Ok(()) => {
                metrics::counter!("axon_sequencer_events_total").increment(done.events as u64)
            }
            Err(_) => metrics::counter!("axon_sequencer_write_failures_total").increment(1),
        }
        for (i, p) in done.prepared {
            self.shards[i].finish(p, result.as_ref().map(|_| ()));
        }
    }
}
