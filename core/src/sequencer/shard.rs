//! One shard's sequencing state: its rooms' working states and stream
//! position. A [`Writer`](super::writer::Writer) drives it: stages requests
//! into the batch, prepares the batch for the store, and finishes it once
//! the write has ended.
//!
//! The writer stages the next batch while the previous one is being
//! written, so the working states run one batch ahead of what is durable.
//! What readers see is taken at [`ShardSequencer::prepare`] (the room
//! states as of that batch) and published at [`ShardSequencer::finish`];
//! a retried transaction whose first send is in the write in flight is
//! answered from that write ([`Answer::Retry`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use super::{AppendError, Appended, RoomStates};
use crate::clock::now_ms;
use crate::event::{Event, NewEvent, types};
use crate::ids::{EventId, RoomId, UserId};
use crate::room::{RoomState, authorize};
use crate::router::{Delivery, RoomRouter, RoutedEvent};
use crate::shard::ShardId;
use crate::store::{CommitBatch, StoreError, TimelineStore, TxnKey, TxnRecord};

type AppendReply = oneshot::Sender<Result<Vec<Appended>, AppendError>>;

/// A shard's part of a write, between [`ShardSequencer::prepare`] and
/// [`ShardSequencer::finish`].
pub(super) struct Prepared {
    /// What the store writes; `None` when the shard has nothing to write.
    pub(super) batch: Option<Arc<CommitBatch>>,
    answers: Vec<(AppendReply, Answer)>,
    /// Room states (not just heads) this batch changed, as it leaves them:
    /// published to readers once it is durable.
    states: Vec<Arc<RoomState>>,
}

/// Where one request's answer comes from once the batch is durable.
enum Answer {
    /// Indices into the batch's events, and which of them are retries of a
    /// transaction earlier in the same batch.
    Staged(Vec<(usize, bool)>),
    /// Known before the write: refused, or a retry of a stored transaction.
    Ready(Result<Vec<Appended>, AppendError>),
    /// A retry of a transaction in the write before this batch's: it stood
    /// if this batch is written (a failed write stops the shard, so a
    /// written batch means the one before it was written too).
    Retry(Appended),
}

/// The shard's batch in the store write now in flight: where a retried
/// transaction of the batch being staged finds its first send.
struct InFlightBatch {
    batch: Arc<CommitBatch>,
    /// Transaction → index of its event in `batch.events`.
    txn_index: HashMap<TxnKey, usize>,
}

/// One shard's sequencer; owns the working state of the shard's rooms.
pub(super) struct ShardSequencer {
    shard: ShardId,
    shard_count: u16,
    pos: u64,
    store: Arc<dyn TimelineStore>,
    router: Arc<RoomRouter>,
    shared: Arc<RoomStates>,
    /// The last committed `pos`, for readers (`Sequencer::shard_head`).
    head: Arc<AtomicU64>,
    /// Working state of rooms this shard has touched; `None` is "known not to
    /// exist" and is never cached across batches.
    rooms: HashMap<RoomId, RoomState>,
    /// This shard's part of the write in flight, if it has transactions.
    in_flight: Option<InFlightBatch>,
    failed: Option<String>,
    encoder: axon_schemas::FrameEncoder,
}

/// A shard's part of the batch being assembled.
#[derive(Default)]
pub(super) struct Staging {
    events: Vec<Event>,
    txns: Vec<(TxnKey, TxnRecord)>,
    txn_index: HashMap<TxnKey, usize>,
    answers: Vec<(AppendReply, Answer)>,
    /// Rooms whose state (not just head) changed, to republish to readers.
    state_changed: Vec<RoomId>,
}

impl Staging {
    /// Events staged so far.
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// Nothing staged and nobody to answer.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.answers.is_empty()
    }
}

impl ShardSequencer {
    pub(super) fn new(
        shard: ShardId,
        shard_count: u16,
        pos: u64,
        store: Arc<dyn TimelineStore>,
        router: Arc<RoomRouter>,
        shared: Arc<RoomStates>,
        head: Arc<AtomicU64>,
    ) -> Self {
        head.store(pos, Ordering::Release);
        Self {
            shard,
            shard_count,
            pos,
            store,
            router,
            shared,
            head,
            rooms: HashMap::new(),
            in_flight: None,
            failed: None,
            encoder: axon_schemas::FrameEncoder::new(),
        }
    }

    /// Loads a room's state into the working set (if it exists).
    async fn ensure_loaded(&mut self, room: &RoomId) -> Result<bool, StoreError> {
        if self.rooms.contains_key(room) {
            return Ok(true);
        }
        let Some(head) = self.store.room_head(room).await? else {
            return Ok(false);
        };
        let events = self.store.state_events(room).await?;
        let state = RoomState::from_state_events(room, &events, head)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.shared
            .pin()
            .insert(room.clone(), Arc::new(state.clone()));
        self.rooms.insert(room.clone(), state);
        Ok(true)
    }

    pub(super) async fn load_for_reader(
        &mut self,
        room: &RoomId,
    ) -> Result<Option<Arc<RoomState>>, AppendError> {
        if ShardId::of(room, self.shard_count) != self.shard {
            return Err(AppendError::Unavailable(
                "room routed to the wrong shard".into(),
            ));
        }
        if !self.ensure_loaded(room).await? {
            return Ok(None);
        }
        Ok(self.shared.pin().get(room).cloned())
    }

    /// Stages one request into `staging`; its answer comes once the batch
    /// has been written (or at once, with a refusal, after the write).
    pub(super) async fn accept(
        &mut self,
        staging: &mut Staging,
        events: Vec<NewEvent>,
        reply: AppendReply,
    ) {
        let answer = self.stage(staging, events).await;
        staging.answers.push((reply, answer));
    }

    /// Checks, orders and stages the events of one request.
    async fn stage(&mut self, staging: &mut Staging, events: Vec<NewEvent>) -> Answer {
        if let Some(reason) = &self.failed {
            return Answer::Ready(Err(AppendError::Unavailable(reason.clone())));
        }
        let Some(room) = events.first().map(|e| e.room_id.clone()) else {
            return Answer::Ready(Ok(Vec::new()));
        };
        let exists = match self.ensure_loaded(&room).await {
            Ok(exists) => exists,
            Err(e) => return Answer::Ready(Err(e.into())),
        };

        // Idempotency: a single retried send answers with the first result.
        if let [event] = events.as_slice()
            && let Some(txn) = &event.txn
        {
            let key = TxnKey {
                room_id: room.clone(),
                user_id: event.sender.clone(),
                txn: txn.clone(),
            };
            if let Some(&index) = staging.txn_index.get(&key) {
                return Answer::Staged(vec![(index, true)]);
            }
            if let Some(first) = self.in_flight_txn(&key) {
                return Answer::Retry(first);
            }
            match self.store.txn(&key).await {
                Ok(Some(record)) => {
                    return Answer::Ready(Ok(vec![Appended {
                        event_id: record.event_id,
                        seq: record.seq,
                        pos: record.pos,
                        origin_server_ts: 0,
                        deduplicated: true,
                    }]));
                }
                Ok(None) => {}
                Err(e) => return Answer::Ready(Err(e.into())),
            }
        }

        // Authorize every event against the state as the previous ones leave
        // it. A single event is checked and applied in place (refusal comes
        // before any change); a request of several events keeps a copy to
        // restore, so a refusal part-way leaves nothing behind.
        let mut working = if exists {
            self.rooms.remove(&room)
        } else {
            None
        };
        let backup = if events.len() > 1 {
            working.clone()
        } else {
            None
        };
        let mut staged = Vec::with_capacity(events.len());
        let first_pos = self.pos;
        for new in &events {
            if let Err(e) = authorize(working.as_ref(), new) {
                let restore = if events.len() > 1 { backup } else { working };
                if let Some(state) = restore {
                    self.rooms.insert(room, state);
                }
                return Answer::Ready(Err(e.into()));
            }
            let seq = working.as_ref().map_or(0, RoomState::head_seq) + 1;
            let pos = first_pos + staged.len() as u64 + 1;
            let event = Event {
                event_id: EventId::generate(),
                room_id: room.clone(),
                sender: new.sender.clone(),
                event_type: new.event_type.clone(),
                state_key: new.state_key.clone(),
                content: new.content.clone(),
                origin_server_ts: now_ms(),
                seq,
                pos,
            };
            let state = working.get_or_insert_with(|| {
                // Only a create event passes authorization without a room.
                debug_assert_eq!(new.event_type, types::CREATE);
                RoomState::new(room.clone(), new.sender.clone())
            });
            state.apply(&event);
            staged.push(event);
        }

        // Accepted: move it into the batch.
        self.pos += staged.len() as u64;
        if staged.iter().any(Event::is_state) && !staging.state_changed.contains(&room) {
            staging.state_changed.push(room.clone());
        }
        if let Some(state) = working {
            self.rooms.insert(room.clone(), state);
        }
        let mut indices = Vec::with_capacity(staged.len());
        for (new, event) in events.iter().zip(staged) {
            let index = staging.events.len();
            if let Some(txn) = &new.txn {
                let key = TxnKey {
                    room_id: room.clone(),
                    user_id: new.sender.clone(),
                    txn: txn.clone(),
                };
                let record = TxnRecord {
                    event_id: event.event_id.clone(),
                    seq: event.seq,
                    pos: event.pos,
                };
                staging.txn_index.insert(key.clone(), index);
                staging.txns.push((key, record));
            }
            staging.events.push(event);
            indices.push((index, false));
        }
        Answer::Staged(indices)
    }

    /// The first send of a transaction in the write in flight.
    fn in_flight_txn(&self, key: &TxnKey) -> Option<Appended> {
        let in_flight = self.in_flight.as_ref()?;
        let event = in_flight.batch.events.get(*in_flight.txn_index.get(key)?)?;
        Some(Appended {
            event_id: event.event_id.clone(),
            seq: event.seq,
            pos: event.pos,
            origin_server_ts: event.origin_server_ts,
            deduplicated: true,
        })
    }

    /// Whether a failed write has stopped this shard.
    pub(super) fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Turns a staged batch into the store's batch (`None` when nothing is
    /// to be written: only refusals and stored retries) and what
    /// [`Self::finish`] needs once the write has ended. The batch is the
    /// shard's part of the next write: its transactions answer retries
    /// until it is finished.
    pub(super) fn prepare(&mut self, staging: Staging) -> Prepared {
        let Staging {
            events,
            txns,
            txn_index,
            answers,
            state_changed,
        } = staging;
        let batch = (!events.is_empty()).then(|| {
            Arc::new(CommitBatch {
                shard: self.shard,
                events,
                txns,
            })
        });
        self.in_flight = batch
            .as_ref()
            .filter(|_| !txn_index.is_empty())
            .map(|batch| InFlightBatch {
                batch: Arc::clone(batch),
                txn_index,
            });
        let states = state_changed
            .iter()
            .filter_map(|room| self.rooms.get(room))
            .map(|state| Arc::new(state.clone()))
            .collect();
        Prepared {
            batch,
            answers,
            states,
        }
    }

    /// The write holding `prepared` has ended: on success publishes its
    /// events and answers the senders; on failure stops the shard. The
    /// working states then hold changes that were never written, which is
    /// harmless: a stopped shard takes no more writes, and readers only see
    /// states published after a successful commit.
    pub(super) fn finish(&mut self, prepared: Prepared, result: Result<(), &StoreError>) {
        self.in_flight = None;
        let Prepared {
            batch,
            answers,
            states,
        } = prepared;
        let Some(batch) = batch else {
            // Nothing of this shard's was in the write; retries of the write
            // before stand as that write went.
            return if self.failed.is_some() {
                self.refuse(answers)
            } else {
                Self::answer(answers, &[])
            };
        };
        if let Err(e) = result {
            let reason = format!("shard {} stopped after a failed write: {e}", self.shard);
            tracing::error!(shard = %self.shard, error = %e, "durable write failed; shard stops taking writes");
            self.failed = Some(reason);
            return self.refuse(answers);
        }
        // The store has dropped its reference by now; clone only if not.
        let events = Arc::try_unwrap(batch).map_or_else(|b| b.events.clone(), |b| b.events);
        if let Some(last) = events.last() {
            // Durable and readable now: readers may skip the shard up to
            // here without asking the store.
            self.head.store(last.pos, Ordering::Release);
        }
        let shared = self.shared.pin();
        for state in states {
            shared.insert(state.room_id().clone(), state);
        }
        drop(shared);
        let appended: Vec<Appended> = events
            .iter()
            .map(|e| Appended {
                event_id: e.event_id.clone(),
                seq: e.seq,
                pos: e.pos,
                origin_server_ts: e.origin_server_ts,
                deduplicated: false,
            })
            .collect();
        // Encoded first, then published a room's run at a time: each
        // subscriber is woken once per run and finds all of it.
        let routed: Vec<Delivery> = events
            .into_iter()
            .map(|event| RoutedEvent::encode(event, &mut self.encoder))
            .collect();
        let mut delivered = 0;
        for run in routed.chunk_by(|a, b| a.event.room_id == b.event.room_id) {
            delivered += self
                .router
                .publish_run(&run[0].event.room_id, run)
                .delivered;
            // A member event about a user who does not subscribe to the room
            // yet (an invite, a join from another device) must still wake
            // that user's `/sync`.
            for member in run.iter().filter(|d| d.event.event_type == types::MEMBER) {
                if let Some(user) = member
                    .event
                    .state_key
                    .as_deref()
                    .and_then(|k| UserId::parse(k).ok())
                {
                    self.router.users().signal(&user);
                }
            }
        }
        // Counted once per batch: a counter touched per delivery would be a
        // shared cache line on the fan-out path.
        metrics::counter!("axon_router_deliveries_total").increment(delivered as u64);
        Self::answer(answers, &appended);
    }

    /// A batch staged before its shard stopped: not written; whatever it
    /// would have stored is refused.
    pub(super) fn abandon(&mut self, prepared: Prepared) {
        self.in_flight = None;
        self.refuse(prepared.answers);
    }

    /// Answers a batch that was not written: its staged events and retries
    /// of the write before it are refused with the shard's failure; answers
    /// known before the write stand.
    fn refuse(&self, answers: Vec<(AppendReply, Answer)>) {
        let reason = self.failed.as_deref().unwrap_or("the write failed");
        for (reply, answer) in answers {
            let r = match answer {
                Answer::Ready(r) => r,
                Answer::Staged(_) | Answer::Retry(_) => {
                    Err(AppendError::Unavailable(reason.to_owned()))
                }
            };
            let _ = reply.send(r);
        }
    }

    fn answer(answers: Vec<(AppendReply, Answer)>, appended: &[Appended]) {
        for (reply, answer) in answers {
            let r = match answer {
                Answer::Ready(r) => r,
                Answer::Retry(first) => Ok(vec![first]),
                Answer::Staged(indices) => Ok(indices
                    .into_iter()
                    .map(|(i, dedup)| Appended {
                        deduplicated: dedup,
                        ..appended[i].clone()
                    })
                    .collect()),
            };
            let _ = reply.send(r);
        }
    }
}
