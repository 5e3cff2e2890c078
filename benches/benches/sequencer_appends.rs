//! Durable appends through the sequencer on the embedded store, fsync group
//! commit, at concurrency 1, 16 and 256 (budget: 100k acknowledged appends
//! per second at 256): 16 shards served by one writer (the server's
//! default), 16 shards with a writer each, and one shard.
//! Each iteration is one acknowledged append; with N senders, N appends are
//! in flight at once. The allocator is the server's (mimalloc).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use axon_benches::sample_content;
use axon_core::{
    NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer, SequencerConfig, ServerName, UserId,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A sequencer on a fresh store in `dir`, with 64 rooms made by `alice`.
async fn start(
    dir: &std::path::Path,
    shards: u16,
    writers: u16,
    alice: &UserId,
) -> (Sequencer, Arc<Vec<RoomId>>) {
    let store = Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("open store"));
    let sequencer = Sequencer::start(
        store,
        Arc::new(RoomRouter::new()),
        SequencerConfig {
            shards,
            writers,
            ..SequencerConfig::default()
        },
    )
    .await
    .expect("start sequencer");
    let server = ServerName::parse("bench.example").expect("valid server name");
    let mut rooms = Vec::new();
    for _ in 0..64 {
        let room = RoomId::random(&server);
        sequencer
            .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
            .await
            .expect("create room");
        rooms.push(room);
    }
    (sequencer, Arc::new(rooms))
}

/// Time for `iters` acknowledged appends made by `n` tasks at once, each
/// appending one message at a time over `rooms` in turn.
async fn append_concurrently(
    sequencer: &Sequencer,
    rooms: &Arc<Vec<RoomId>>,
    alice: &UserId,
    n: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    let per_task = iters.div_ceil(n as u64);
    let mut tasks = Vec::with_capacity(n);
    for t in 0..n {
        let (sequencer, rooms, alice) = (sequencer.clone(), rooms.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                let room = &rooms[(t + i as usize) % rooms.len()];
                sequencer
                    .append(NewEvent::message(room, &alice, sample_content()))
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender task");
    }
    // Time per acknowledged append actually made, times `iters`.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_task * n as u64) as f64)
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let alice = UserId::parse("@alice:bench.example").expect("valid user id");
    let mut g = c.benchmark_group("sequencer_appends");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for (name, shards, writers) in [
        ("16 shards", 16u16, 1u16),
        ("16 shards, 16 writers", 16, 16),
        ("1 shard", 1, 1),
    ] {
        // On the real disk, not tmpfs: fsync cost is what is measured.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let (sequencer, rooms) = runtime.block_on(start(dir.path(), shards, writers, &alice));
        for concurrency in [1usize, 16, 256] {
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(
                BenchmarkId::new(name, concurrency),
                &concurrency,
                |b, &n| {
                    b.iter_custom(|iters| {
                        runtime.block_on(append_concurrently(&sequencer, &rooms, &alice, n, iters))
                    })
                },
            );
        }
        runtime.block_on(sequencer.shutdown());
    }
    g.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
