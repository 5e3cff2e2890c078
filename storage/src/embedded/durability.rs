//! When writes reach the disk: [`Durability`], the shared fsync
//! ([`GroupSync`]) and the background flusher of the buffered mode.
//!
//! Every write commits to fjall's journal without an fsync and takes a
//! ticket; a durable write then waits until an fsync that *started after*
//! its commit has finished. One writer at a time runs the fsync for every
//! ticket issued so far; the others wait for it. So when S shard sequencers
//! commit at once they share one fsync instead of queueing S of them behind
//! fjall's journal lock (which is what `PersistMode::SyncAll` on each batch
//! would do).
//!
//! fjall holds its journal lock during the fsync, so no commit can enter the
//! journal while one runs. The writers that queued up behind it commit one
//! after another as soon as it ends; a leader that fsynced at once would
//! cover only itself and lock them out again (a convoy). So a leader first
//! waits, briefly and boundedly, until no commit is in flight
//! ([`GroupSync::start_commit`] .. [`CommitTicket::finish`]), and then
//! fsyncs for all of them.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axon_core::StoreError;
use fjall::{Database, PersistMode, Snapshot};
use parking_lot::{Condvar, Mutex};

/// When an acknowledged write is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write is fsynced before it returns (DESIGN invariant 2): an
    /// acknowledged event survives a power cut. Concurrent writers share fsyncs.
    #[default]
    Fsync,
    /// Writes reach the OS before they return (so they survive the process
    /// being killed) and are fsynced every `flush_interval`; a power cut may
    /// lose up to that much.
    Buffered {
        /// How often the background flusher fsyncs.
        flush_interval: Duration,
    },
}

/// Longest a leader waits for in-flight commits before it fsyncs anyway:
/// many times a commit's cost (microseconds), a fraction of an fsync's.
const MAX_GATHER: Duration = Duration::from_micros(500);

#[derive(Default)]
struct SyncState {
    /// Commits started and not yet finished.
    committing: u32,
    /// Tickets issued: commits that have returned.
    written: u64,
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// A writer is running the fsync now.
    syncing: bool,
    /// The first fsync failure; after it nothing is known to be durable.
    failed: Option<String>,
}

/// Shares fsyncs between concurrent writers, and keeps the read view of
/// what the last fsync made durable.
pub(super) struct GroupSync {
    state: Mutex<SyncState>,
    /// A snapshot taken just before the latest successful fsync: everything
    /// in it is on disk.
    durable: ArcSwap<Snapshot>,
    /// Signalled when an fsync ends.
    done: Condvar,
    /// Signalled when a commit finishes.
    committed: Condvar,
}

/// A commit in flight; [`Self::finish`] once it has returned.
pub(super) struct CommitTicket<'a> {
    sync: &'a GroupSync,
    finished: bool,
}

impl CommitTicket<'_> {
    /// Records that the commit has returned; its ticket for
    /// [`GroupSync::sync_through`].
    pub(super) fn finish(mut self) -> u64 {
        self.finished = true;
        let mut st = self.sync.state.lock();
        st.committing -= 1;
        st.written += 1;
        self.sync.committed.notify_all();
        st.written
    }
}

impl Drop for CommitTicket<'_> {
    fn drop(&mut self) {
        // A commit that failed or was refused is no longer in flight.
        if !self.finished {
            self.sync.state.lock().committing -= 1;
            self.sync.committed.notify_all();
        }
    }
}

impl GroupSync {
    /// Starts with everything in `db` durable (it was just opened: what
    /// recovery found is on disk).
    pub(super) fn new(db: &Database) -> Self {
        Self {
            state: Mutex::default(),
            durable: ArcSwap::from_pointee(db.snapshot()),
            done: Condvar::new(),
            committed: Condvar::new(),
        }
    }

    /// A view of everything the latest fsync made durable.
    pub(super) fn durable_view(&self) -> Arc<Snapshot> {
        self.durable.load_full()
    }

    /// Announces a commit about to start, so a leader waits for it.
    pub(super) fn start_commit(&self) -> CommitTicket<'_> {
        self.state.lock().committing += 1;
        CommitTicket {
            sync: self,
            finished: false,
        }
    }

    /// Returns once every commit up to `ticket` is on disk.
    pub(super) fn sync_through(&self, db: &Database, ticket: u64) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        loop {
            if let Some(reason) = &st.failed {
                return Err(StoreError::Backend(reason.clone()));
            }
            if st.synced >= ticket {
                return Ok(());
            }
            if st.syncing {
                self.done.wait(&mut st);
                continue;
            }
            // Lead: gather the commits in flight, then fsync. Everything
            // with a ticket by then has been written to the journal, so this
            // fsync covers it.
            st.syncing = true;
            let deadline = Instant::now() + MAX_GATHER;
            while st.committing > 0 && !self.committed.wait_until(&mut st, deadline).timed_out() {}
            let target = st.written;
            // The snapshot is taken before the fsync, so the fsync covers all of it.
            let result = parking_lot::MutexGuard::unlocked(&mut st, || {
                let view = db.snapshot();
                let started = Instant::now();
                let r = db.persist(PersistMode::SyncAll).map(|()| view);
                metrics::histogram!("axon_store_fsync_seconds")
                    .record(started.elapsed().as_secs_f64());
                r
            });
            st.syncing = false;
            match result {
                Ok(view) => {
                    // Published before `synced` moves, so a writer that
                    // returns can read what it wrote.
                    self.durable.store(Arc::new(view));
                    metrics::histogram!("axon_store_fsync_commits")
                        .record(target.saturating_sub(st.synced) as f64);
                    st.synced = st.synced.max(target);
                }
                // fsync failure is fail-stop: the page cache may have dropped
                // the dirty pages, so a retry proving "success" means nothing.
                Err(e) => st.failed = Some(format!("fsync failed: {e}")),
            }
            self.done.notify_all();
        }
    }

    /// Returns once everything committed so far is on disk.
    pub(super) fn sync_all(&self, db: &Database) -> Result<(), StoreError> {
        let ticket = self.state.lock().written;
        self.sync_through(db, ticket)
    }
}

/// The buffered mode's background thread: fsyncs every interval until dropped.
pub(super) struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(super) fn start(
        db: Database,
        sync: Arc<GroupSync>,
        interval: Duration,
    ) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("axon-store-flush".into())
            .spawn(move || {
                // Disconnected (the store is dropped) ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if let Err(e) = sync.sync_all(&db) {
                        tracing::error!(error = %e, "background flush failed; writes are no longer made durable");
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("starting the flush thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Wake the thread and wait, so the database is released when the
        // store is dropped (a reopen of the directory must not find it locked).
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
