//! [`EmbeddedStore`]: every storage trait of `axon-core` in one fjall
//! database in one directory.
//!
//! - `keys` — key encoding (order-preserving, one range per room/user/shard).
//! - `codec` — value encoding (format byte + postcard; bad bytes are `Corrupt`).
//! - `durability` — [`Durability`], the fsync shared by concurrent writers,
//!   the buffered mode's flusher.
//! - `timeline`, `accounts`, `receipts`, `account_data`, `directory` — one
//!   trait each.
//! - `recent` — what the hottest reads ask for, kept in memory as appends
//!   make it readable (a shard's latest events, users' rooms, tokens).
//!
//! # Layout on disk
//!
//! One keyspace per kind of record (`docs/storage.md` has the full table):
//! `events` (room, seq) → event; `event_ids` id → events key; `shard_stream`
//! (shard, pos) → events key; `heads` room → seq and shard → pos; `state`
//! (room, type, state key) → seq; `memberships` (user, room) → membership;
//! `txns`; `users`; `devices`; `tokens`; `device_tokens`; `receipts`;
//! `account_data`; `redactions` redacted event id → events key of the
//! redaction; `event_txns` event id → the device and transaction id that
//! sent it; `aliases` alias → record; `room_aliases` (room, alias);
//! `published` room; `meta` (layout version). An append writes all of its
//! records in one fjall write batch, which the journal makes atomic.
//!
//! Durable writes run on tokio's blocking pool; reads run inline (they are
//! served from memtables, the block cache or `recent`; a hop to the pool
//! cost more than the reads, see `EmbeddedStore::inline`).

mod account_data;
mod accounts;
mod codec;
mod directory;
mod durability;
mod keys;
mod receipts;
mod recent;
mod timeline;

use std::path::Path;
use std::sync::Arc;

use axon_core::StoreError;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, Readable, Snapshot};
use parking_lot::Mutex;

pub use durability::Durability;
use durability::{Flusher, GroupSync};

/// The version of the key layout and record formats in `meta`.
const LAYOUT_VERSION: u8 = 1;
const LAYOUT_KEY: &[u8] = b"layout_version";

/// Settings of an [`EmbeddedStore`].
#[derive(Clone, Debug, Default)]
pub struct EmbeddedOptions {
    /// When writes are fsynced; the default fsyncs every write.
    pub durability: Durability,
    /// Block cache size in bytes; `None` keeps fjall's default.
    pub cache_bytes: Option<u64>,
}

/// The embedded durable store: one fjall database in one directory.
///
/// Cheap to clone; every clone is the same store. The directory is locked
/// while any clone is alive.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

/// One keyspace per kind of record.
struct Keyspaces {
    events: Keyspace,
    event_ids: Keyspace,
    shard_stream: Keyspace,
    heads: Keyspace,
    state: Keyspace,
    memberships: Keyspace,
    txns: Keyspace,
    users: Keyspace,
    devices: Keyspace,
    tokens: Keyspace,
    device_tokens: Keyspace,
    receipts: Keyspace,
    account_data: Keyspace,
    redactions: Keyspace,
    event_txns: Keyspace,
    aliases: Keyspace,
    room_aliases: Keyspace,
    published: Keyspace,
}

struct Inner {
    db: Database,
    ks: Keyspaces,
    durability: Durability,
    sync: Arc<GroupSync>,
    /// Held while an append checks heads and commits, so two appends to the
    /// same room (a sequencer bug) cannot both pass the dense-seq check.
    /// The fsync runs outside it, so appends of different shards share it.
    append_lock: Mutex<()>,
    /// Held by account writes that read before they write (create-if-absent,
    /// token cascades).
    account_lock: Mutex<()>,
    /// Each shard's latest readable events, for `/sync`.
    recent: recent::RecentEvents,
    /// Heads of the rooms appended to since the store opened.
    room_heads: recent::RoomHeads,
    /// Users' rooms as readable now, for `/sync`.
    memberships: recent::Memberships,
    /// Access tokens as readable now, for every authenticated request.
    tokens: recent::ReadThrough<[u8; 32], axon_core::store::TokenRecord>,
    /// Dropped before `db`: joins the flush thread.
    _flusher: Option<Flusher>,
}

fn backend(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context}: {e}"))
}

impl EmbeddedStore {
    /// Opens the store in `dir`, creating the directory and an empty store if
    /// needed, and recovering from the journal after a crash.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| backend(&format!("creating {}", dir.display()), e))?;
        let mut builder = Database::builder(dir);
        if let Some(bytes) = options.cache_bytes {
            builder = builder.cache_size(bytes);
        }
        let db = builder
            .open()
            .map_err(|e| backend(&format!("opening {}", dir.display()), e))?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| backend(&format!("opening keyspace {name}"), e))
        };
        let ks = Keyspaces {
            events: open("events")?,
            event_ids: open("event_ids")?,
            shard_stream: open("shard_stream")?,
            heads: open("heads")?,
            state: open("state")?,
            memberships: open("memberships")?,
            txns: open("txns")?,
            users: open("users")?,
            devices: open("devices")?,
            tokens: open("tokens")?,
            device_tokens: open("device_tokens")?,
            receipts: open("receipts")?,
            account_data: open("account_data")?,
            redactions: open("redactions")?,
            event_txns: open("event_txns")?,
            aliases: open("aliases")?,
            room_aliases: open("room_aliases")?,
            published: open("published")?,
        };
        check_layout(&db, &open("meta")?)?;
        let sync = Arc::new(GroupSync::new(&db));
        let flusher = match options.durability {
            Durability::Fsync => None,
            Durability::Buffered { flush_interval } => Some(Flusher::start(
                db.clone(),
                Arc::clone(&sync),
                flush_interval,
            )?),
        };
        let inner = Inner {
            db,
            ks,
            durability: options.durability,
            sync,
            append_lock: Mutex::new(()),
            account_lock: Mutex::new(()),
            recent: recent::RecentEvents::default(),
            room_heads: recent::RoomHeads::default(),
            memberships: recent::Memberships::new(recent::MAX_USERS),
            tokens: recent::ReadThrough::new(recent::MAX_TOKENS),
            _flusher: flusher,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The durability this store was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Fsyncs everything written so far and releases this handle; the
    /// directory is unlocked once every clone is gone.
    pub async fn close(self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.sync.sync_all(&inner.db)).await
    }

    /// Runs a read on the calling thread. Point reads and bounded range
    /// reads come from fjall's memtables and block cache (or the OS page
    /// cache) in microseconds; a hop to the blocking pool costs more than
    /// that (a thread wake-up each way: under a Matrix `/sync` load it was
    /// a third of the server's CPU, see docs/benchmarks.md). Writes, which
    /// fsync, go to the pool ([`Self::blocking`]).
    fn inline<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Inner) -> Result<T, StoreError>,
    {
        f(&self.inner)
    }

    /// Runs `f` on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| backend("blocking store task", e))?
    }
}

/// Writes the layout version into a new store; refuses a store written in
/// another layout rather than misreading it.
fn check_layout(db: &Database, meta: &Keyspace) -> Result<(), StoreError> {
    match meta
        .get(LAYOUT_KEY)
        .map_err(|e| backend("reading the layout version", e))?
    {
        Some(v) if v.as_ref() == [LAYOUT_VERSION] => Ok(()),
        Some(v) => Err(StoreError::Corrupt(format!(
            "store layout version {:?}, this build reads {LAYOUT_VERSION}",
            v.as_ref()
        ))),
        None => {
            let mut batch = db.batch().durability(Some(fjall::PersistMode::SyncAll));
            batch.insert(meta, LAYOUT_KEY, vec![LAYOUT_VERSION]);
            batch
                .commit()
                .map_err(|e| backend("writing the layout version", e))
        }
    }
}

impl Inner {
    /// Commits `batch` to the journal; returns the ticket to make it durable.
    /// Call with `append_lock`/`account_lock` held where the caller checked
    /// something before writing, and `commit` from [`GroupSync::start_commit`]
    /// taken before that lock.
    fn commit(
        &self,
        commit: durability::CommitTicket<'_>,
        batch: OwnedWriteBatch,
    ) -> Result<u64, StoreError> {
        // `Buffer` hands the journal's user-space buffer to the OS: without
        // it a committed batch could sit in the process's memory and be lost
        // to a kill -9 in the buffered mode. The fsync comes later, shared.
        batch
            .durability(Some(fjall::PersistMode::Buffer))
            .commit()
            .map_err(|e| backend("committing a write batch", e))?;
        Ok(commit.finish())
    }

    /// Makes the commit with `ticket` (and all before it) durable as the
    /// configured durability demands. Call without any lock held, so that
    /// concurrent writers share the fsync.
    fn make_durable(&self, ticket: u64) -> Result<(), StoreError> {
        match self.durability {
            Durability::Fsync => self.sync.sync_through(&self.db, ticket),
            Durability::Buffered { .. } => Ok(()),
        }
    }

    /// Commits and makes durable: for writes that checked nothing first.
    fn write(&self, batch: OwnedWriteBatch) -> Result<(), StoreError> {
        let ticket = self.commit(self.sync.start_commit(), batch)?;
        self.make_durable(ticket)
    }

    /// What reads see. With fsync durability, the state as of the latest
    /// completed fsync: a reader never sees an event a crash could still
    /// take back (a client that saw it would later skip the different event
    /// given the same seq after recovery). With buffered durability,
    /// everything committed.
    fn view(&self) -> Arc<Snapshot> {
        match self.durability {
            Durability::Fsync => self.sync.durable_view(),
            Durability::Buffered { .. } => Arc::new(self.db.snapshot()),
        }
    }

    /// Everything committed, for the checks a writer makes under its lock.
    fn latest(&self) -> Snapshot {
        self.db.snapshot()
    }
}

/// A point read in `view`.
fn read(
    view: &Snapshot,
    ks: &Keyspace,
    key: impl AsRef<[u8]>,
) -> Result<Option<fjall::Slice>, StoreError> {
    view.get(ks, key).map_err(|e| backend("reading", e))
}

/// Key and value of an iterator item.
fn kv(guard: fjall::Guard) -> Result<(fjall::Slice, fjall::Slice), StoreError> {
    guard
        .into_inner()
        .map_err(|e| backend("reading a range", e))
}
