//! The writer task: group commit for the shards it serves.
//!
//! A writer takes every request waiting in its queue as one batch, stages
//! each into its room's shard ([`ShardSequencer::accept`]), and writes what
//! every shard staged in **one** store write
//! ([`TimelineStore::append_batches`]), so the shards share one commit and
//! one fsync. Only once the write has ended does each shard publish its
//! events and answer its senders ([`ShardSequencer::finish`]). While a write
//! is in flight new requests queue up and form the next batch.
//!
//! Why one writer for many shards: a shard waits for its batch to be
//! durable before it closes the next, and the embedded store's journal
//! takes no commit while an fsync runs. With a writer per shard, two busy
//! shards took turns at the fsync, each fsync serving one of them
//! (docs/benchmarks.md); a writer that serves both makes one commit of
//! both rooms' events per cycle.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::shard::{Prepared, ShardSequencer, Staging};
use super::{AppendError, Command};
use crate::ids::RoomId;
use crate::shard::ShardId;
use crate::store::TimelineStore;

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
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.recv().await else { break };
            let mut staged = 0;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { events, reply } => {
                        let i = events.first().map_or(0, |e| self.index_of(&e.room_id));
                        let staging = &mut self.staging[i];
                        let before = staging.len();
                        self.shards[i].accept(staging, events, reply).await;
                        staged += staging.len() - before;
                    }
                    Command::LoadRoom { room, reply } => {
                        let i = self.index_of(&room);
                        let _ = reply.send(self.shards[i].load_for_reader(&room).await);
                    }
                    Command::Stop => stopping = true,
                }
                if stopping || staged >= self.max_batch {
                    break;
                }
                next = rx.try_recv().ok();
            }
            self.commit(staged).await;
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

    /// Writes every shard's staged batch in one store write, then lets each
    /// shard publish and answer (or stop, if the write failed).
    async fn commit(&mut self, staged: usize) {
        let prepared: Vec<(usize, Prepared)> = self
            .staging
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| (i, self.shards[i].prepare(std::mem::take(s))))
            .collect();
        let batches: Vec<_> = prepared
            .iter()
            .filter_map(|(_, p)| p.batch.clone())
            .collect();
        let result = if batches.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let r = self.store.append_batches(batches).await;
            metrics::histogram!("axon_sequencer_commit_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("axon_sequencer_batch_events").record(staged as f64);
            match &r {
                Ok(()) => {
                    metrics::counter!("axon_sequencer_events_total").increment(staged as u64);
                }
                Err(_) => metrics::counter!("axon_sequencer_write_failures_total").increment(1),
            }
            r
        };
        for (i, p) in prepared {
            self.shards[i].finish(p, result.as_ref().map(|_| ()));
        }
    }
}
