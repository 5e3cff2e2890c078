//! Router fan-out: one event handed to 1, 100 and 10,000 subscribers'
//! queues (the per-delivery cost the budget of 0.25 µs of server CPU covers,
//! before the socket write).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use axon_benches::sample_event;
use axon_core::RoomId;
use axon_core::router::{RoomRouter, RoutedEvent};
use axon_schemas::FrameEncoder;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn fanout(c: &mut Criterion) {
    let room = RoomId::parse("!bench:bench.example").expect("valid room id literal");
    let mut encoder = FrameEncoder::new();
    let mut g = c.benchmark_group("router_fanout");
    for subscribers in [1usize, 100, 10_000] {
        let router = RoomRouter::new();
        let subs: Vec<_> = (0..subscribers)
            .map(|_| router.new_subscriber(1 << 16))
            .collect();
        for s in &subs {
            router.subscribe(&room, s);
        }
        let delivery = RoutedEvent::encode(sample_event(&room, 1), &mut encoder);
        let mut drained = Vec::new();
        g.throughput(Throughput::Elements(subscribers as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| {
                b.iter_custom(|iters| {
                    // Publish in rounds small enough that no queue lags, draining
                    // between rounds outside the timed section.
                    let mut total = std::time::Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let round = left.min(1024);
                        let start = std::time::Instant::now();
                        for _ in 0..round {
                            router.publish(&room, &delivery);
                        }
                        total += start.elapsed();
                        for s in &subs {
                            drained.clear();
                            s.queue.try_drain(&mut drained);
                        }
                        left -= round;
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
