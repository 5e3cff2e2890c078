//! Frame encode, verify and decode: the work per event on the way out and
//! per client frame on the way in.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use axon_benches::{sample_content, sample_event};
use axon_core::RoomId;
use axon_schemas::{ClientFrame, DecodeLimits, FrameEncoder, SendEvent, decode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn frames(c: &mut Criterion) {
    let room = RoomId::parse("!bench:bench.example").expect("valid room id literal");
    let event = sample_event(&room, 42);
    let mut encoder = FrameEncoder::new();
    let limits = DecodeLimits::default();

    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_event", |b| {
        b.iter(|| encoder.encode_event(&event.wire_view()))
    });

    let event_frame = encoder.encode_event(&event.wire_view());
    g.bench_function("verify_decode_event", |b| {
        b.iter(|| decode(&event_frame, &limits).expect("valid frame"))
    });

    let content = sample_content();
    let send = ClientFrame::Send(SendEvent {
        request_id: 7,
        room_id: room.as_str(),
        txn_id: "m1763800000000.42",
        event_type: "m.room.message",
        state_key: None,
        content: &content,
    });
    g.bench_function("encode_send", |b| b.iter(|| encoder.encode_client(&send)));
    let send_frame = encoder.encode_client(&send);
    g.bench_function("verify_decode_send", |b| {
        b.iter(|| decode(&send_frame, &limits).expect("valid frame"))
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
