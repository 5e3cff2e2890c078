//! fjall vs redb on Axon's timeline pattern (see `docs/storage.md`).
//!
//! - `commit/<engine>/<n>`: one committer, durable batch commits (fsync every
//!   commit) of `n` events of ~200 bytes keyed `(room, seq)` across 8 rooms,
//!   plus the event-id index entry, as the sequencer's group commit writes.
//! - `commit_4threads/<engine>/<n>`: four committers at once, as four shard
//!   sequencers would; one iteration is one batch by any of them.
//! - `store_commit/axon-embedded/<c>committers/<n>`: `c` shards appending
//!   batches of `n` through `EmbeddedStore` (fjall; commits without fsync,
//!   then one fsync shared by the committers waiting at that moment), which
//!   is what Axon ships.
//! - `read/<engine>/range50_backward`: the latest 50 events of a room.
//! - `read/<engine>/by_event_id`: event-id index lookup, then the event.
//!
//! The data directory is a tempdir under the target directory, on the real
//! disk: a tmpfs fsync costs nothing and would flatter both engines.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const ROOMS: u64 = 8;
const CONTENT_BYTES: usize = 200;
const THREADS: u64 = 4;

/// A room id of realistic length and the event key `(len, room, seq BE)`.
fn event_key(room: u64, seq: u64) -> Vec<u8> {
    let id = format!("!room{room:016}:bench.example.org");
    let mut k = Vec::with_capacity(1 + id.len() + 8);
    k.push(id.len() as u8);
    k.extend_from_slice(id.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn event_id(room: u64, seq: u64) -> Vec<u8> {
    format!("$ev{room:08}x{seq:016}").into_bytes()
}

fn content(seq: u64) -> Vec<u8> {
    let mut v = format!(r#"{{"msgtype":"m.text","body":"message {seq} "#).into_bytes();
    v.resize(CONTENT_BYTES - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// Sequence numbers handed out per room so every commit appends at the head.
struct Seqs(Vec<AtomicU64>);

impl Seqs {
    fn new() -> Self {
        Self((0..ROOMS).map(|_| AtomicU64::new(0)).collect())
    }

    /// The next `n` events: round-robin over the rooms.
    fn next_batch(&self, n: usize, salt: u64) -> Vec<(u64, u64)> {
        (0..n as u64)
            .map(|i| {
                let room = (i + salt) % ROOMS;
                (
                    room,
                    self.0[room as usize].fetch_add(1, Ordering::Relaxed) + 1,
                )
            })
            .collect()
    }
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench data directory is creatable");
    dir
}

trait Engine: Send + Sync + 'static {
    const NAME: &'static str;
    fn open(dir: &Path) -> Self;
    /// Writes the events and their id index in one atomic, fsynced commit.
    fn commit(&self, events: &[(u64, u64)]);
    fn range_backward(&self, room: u64, head: u64, n: usize) -> usize;
    fn by_id(&self, room: u64, seq: u64) -> bool;
}

struct Fjall {
    db: fjall::Database,
    events: fjall::Keyspace,
    ids: fjall::Keyspace,
}

impl Engine for Fjall {
    const NAME: &'static str = "fjall";

    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir.join("fjall"))
            .open()
            .expect("fjall opens");
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let ids = db
            .keyspace("event_ids", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        Self { db, events, ids }
    }

    fn commit(&self, events: &[(u64, u64)]) {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        for &(room, seq) in events {
            let key = event_key(room, seq);
            batch.insert(&self.ids, event_id(room, seq), key.clone());
            batch.insert(&self.events, key, content(seq));
        }
        batch.commit().expect("fjall commit");
    }

    fn range_backward(&self, room: u64, head: u64, n: usize) -> usize {
        self.events
            .range(event_key(room, 1)..=event_key(room, head))
            .rev()
            .take(n)
            .map(|kv| kv.into_inner().expect("read").1.len())
            .sum()
    }

    fn by_id(&self, room: u64, seq: u64) -> bool {
        let key = self
            .ids
            .get(event_id(room, seq))
            .expect("read")
            .expect("id indexed");
        self.events.get(key).expect("read").is_some()
    }
}

const REDB_EVENTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("events");
const REDB_IDS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("event_ids");

struct Redb {
    db: redb::Database,
}

impl Engine for Redb {
    const NAME: &'static str = "redb";

    fn open(dir: &Path) -> Self {
        let db = redb::Database::create(dir.join("redb.db")).expect("redb opens");
        Self { db }
    }

    fn commit(&self, events: &[(u64, u64)]) {
        let mut tx = self.db.begin_write().expect("begin");
        tx.set_durability(redb::Durability::Immediate)
            .expect("durability");
        {
            let mut ev = tx.open_table(REDB_EVENTS).expect("table");
            let mut ids = tx.open_table(REDB_IDS).expect("table");
            for &(room, seq) in events {
                let key = event_key(room, seq);
                ids.insert(event_id(room, seq).as_slice(), key.as_slice())
                    .expect("insert");
                ev.insert(key.as_slice(), content(seq).as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("redb commit");
    }

    fn range_backward(&self, room: u64, head: u64, n: usize) -> usize {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("begin");
        let t = tx.open_table(REDB_EVENTS).expect("table");
        let (from, to) = (event_key(room, 1), event_key(room, head));
        t.range(from.as_slice()..=to.as_slice())
            .expect("range")
            .rev()
            .take(n)
            .map(|kv| kv.expect("read").1.value().len())
            .sum()
    }

    fn by_id(&self, room: u64, seq: u64) -> bool {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("begin");
        let ids = tx.open_table(REDB_IDS).expect("table");
        let ev = tx.open_table(REDB_EVENTS).expect("table");
        let key = ids
            .get(event_id(room, seq).as_slice())
            .expect("read")
            .expect("id indexed");
        ev.get(key.value()).expect("read").is_some()
    }
}

fn commits<E: Engine>(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    for n in [1usize, 32, 256] {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let engine = E::open(dir.path());
        let seqs = Seqs::new();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(E::NAME, n), &n, |b, &n| {
            b.iter(|| engine.commit(&seqs.next_batch(n, 0)));
        });
    }
    g.finish();
}

fn concurrent_commits<E: Engine>(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit_4threads");
    for n in [1usize, 32, 256] {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let engine = Arc::new(E::open(dir.path()));
        let seqs = Arc::new(Seqs::new());
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(E::NAME, n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(THREADS);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..THREADS {
                        let (engine, seqs) = (Arc::clone(&engine), Arc::clone(&seqs));
                        s.spawn(move || {
                            for _ in 0..per_thread {
                                engine.commit(&seqs.next_batch(n, t));
                            }
                        });
                    }
                });
                // Scale to the iterations asked for (per_thread rounds up).
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_thread * THREADS) as f64)
            });
        });
    }
    g.finish();
}

/// Shards appending through the real store, which shares fsyncs between
/// the committers waiting at the same moment.
fn store_concurrent_commits(c: &mut Criterion) {
    use axon_core::store::{CommitBatch, TimelineStore};
    use axon_core::{Event, EventId, RoomId, ShardId, UserId};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("store_commit");
    for (committers, n) in [
        (1u64, 1usize),
        (4, 1),
        (16, 1),
        (1, 32),
        (4, 32),
        (16, 32),
        (4, 256),
    ] {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let store = Arc::new(
            axon_storage::EmbeddedStore::open(dir.path(), axon_storage::EmbeddedOptions::default())
                .expect("store opens"),
        );
        // Per shard: its room's next seq (= next pos: one room per shard).
        let next: Arc<Vec<AtomicU64>> =
            Arc::new((0..committers).map(|_| AtomicU64::new(1)).collect());
        let sender = UserId::parse("@bench:bench.example.org").expect("valid user id");
        g.throughput(Throughput::Elements(n as u64));
        let id = BenchmarkId::new(format!("axon-embedded/{committers}committers"), n);
        g.bench_with_input(id, &n, |b, &n| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(committers);
                let started = Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for t in 0..committers {
                        let (store, next, sender) =
                            (Arc::clone(&store), Arc::clone(&next), sender.clone());
                        tasks.push(tokio::spawn(async move {
                            let room = RoomId::parse(&format!("!room{t:016}:bench.example.org"))
                                .expect("valid room id");
                            for _ in 0..per_task {
                                let first = next[t as usize].fetch_add(n as u64, Ordering::Relaxed);
                                let events = (first..first + n as u64)
                                    .map(|seq| Event {
                                        event_id: EventId::generate(),
                                        room_id: room.clone(),
                                        sender: sender.clone(),
                                        event_type: "m.room.message".into(),
                                        state_key: None,
                                        content: content(seq).into(),
                                        origin_server_ts: 0,
                                        seq,
                                        pos: seq,
                                    })
                                    .collect();
                                let batch = CommitBatch {
                                    shard: ShardId(t as u16),
                                    events,
                                    txns: Vec::new(),
                                };
                                store.append(Arc::new(batch)).await.expect("append");
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.expect("committer task");
                    }
                });
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * committers) as f64)
            });
        });
    }
    g.finish();
}

fn reads<E: Engine>(c: &mut Criterion) {
    const PER_ROOM: u64 = 2_048;
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let engine = E::open(dir.path());
    let seqs = Seqs::new();
    for _ in 0..(PER_ROOM * ROOMS / 256) {
        engine.commit(&seqs.next_batch(256, 0));
    }
    let mut g = c.benchmark_group("read");
    let mut room = 0;
    g.bench_function(BenchmarkId::new(E::NAME, "range50_backward"), |b| {
        b.iter(|| {
            room = (room + 1) % ROOMS;
            assert!(engine.range_backward(room, PER_ROOM, 50) >= 50 * CONTENT_BYTES);
        });
    });
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new(E::NAME, "by_event_id"), |b| {
        b.iter(|| {
            i = i
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            assert!(engine.by_id(i % ROOMS, 1 + (i >> 33) % PER_ROOM));
        });
    });
    g.finish();
}

fn engines(c: &mut Criterion) {
    commits::<Fjall>(c);
    commits::<Redb>(c);
    concurrent_commits::<Fjall>(c);
    concurrent_commits::<Redb>(c);
    store_concurrent_commits(c);
    reads::<Fjall>(c);
    reads::<Redb>(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = engines
}
criterion_main!(benches);
