//! Timeline range reads from the embedded store: a page of 50 events
//! backwards from the head (what /messages and history pages do) and
//! forwards (what a resume replays).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;

use axon_benches::sample_event;
use axon_core::store::{CommitBatch, Direction, TimelineStore};
use axon_core::{RoomId, ShardId};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store =
        Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open store"));
    let room = RoomId::parse("!bench:bench.example").expect("valid room id literal");
    const EVENTS: u64 = 10_000;
    runtime.block_on(async {
        for chunk in (1..=EVENTS).collect::<Vec<_>>().chunks(1000) {
            let events = chunk.iter().map(|&s| sample_event(&room, s)).collect();
            let batch = CommitBatch {
                shard: ShardId(0),
                events,
                txns: Vec::new(),
            };
            store.append(Arc::new(batch)).await.expect("append");
        }
    });
    let mut g = c.benchmark_group("timeline_reads");
    g.throughput(Throughput::Elements(50));
    g.bench_function("backward_50_from_head", |b| {
        b.iter(|| {
            runtime
                .block_on(store.events(&room, 1, EVENTS, Direction::Backward, 50))
                .expect("read")
        })
    });
    g.bench_function("forward_50_mid", |b| {
        b.iter(|| {
            runtime
                .block_on(store.events(&room, 5000, EVENTS, Direction::Forward, 50))
                .expect("read")
        })
    });
    g.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
