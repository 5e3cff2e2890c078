//! `fanout`: publishers send into rooms, every subscribed connection
//! receives.
//!
//! Set-up (Matrix API): `--users` users and one owner; the owner makes
//! `--rooms` rooms; connection `i` belongs to user `i mod users` and
//! subscribes to `--rooms-per-connection` rooms starting at
//! `i * rooms_per_connection mod rooms`; each user joins the rooms its
//! connections subscribe to. Subscribers connect over `--transport` (ws,
//! wss, quic, or mix: a third each) with the native client library, 200
//! at a time, and subscribe. Then `--publishers` connections of the owner
//! send for `--duration-secs`, each keeping up to `--window` sends in
//! flight, at `--rate` in total or as fast as the server acknowledges.
//!
//! Measured: deliveries per second, end-to-end latency (the send time in
//! the payload to the receiver reading the event), send → acknowledgement,
//! and lost and duplicated events by `seq` against the acknowledged count
//! per room, after a drain of at most `--drain-secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axon_client::{Client, ReconnectPolicy};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::task::JoinSet;

use crate::cli::FanoutArgs;
use crate::http::BaseUrl;
use crate::payload::{self, Stamp};
use crate::provision::Provisioner;
use crate::record::{Errors, Local, Series, Tally};
use crate::report::Report;
use crate::scenario::native::{self, Dialer, Face};
use crate::scenario::{Live, Run};

/// Connections opened at once while ramping up.
const CONNECT_WAVE: usize = 200;
/// Deliveries a receiver counts before adding them to the live counter.
const LIVE_BATCH: u64 = 1_024;
/// Events a receiver takes from its client at once.
const RECEIVE_BATCH: usize = 256;
/// Events a subscriber's client buffers ahead of the reader. Small on
/// purpose: at maximum rate the receivers fall seconds behind, and 4,096
/// per client (1,000 clients) kept about 1 GiB of events churning through
/// fresh pages, which cost more CPU than the deliveries (docs/benchmarks.md).
/// The backlog waits in the socket buffers instead.
const EVENT_BUFFER: usize = 256;

/// A few reconnects: a connection lost during a run shows as errors and
/// (if it does not come back) lost events, not as a hung run.
fn reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts: Some(5),
        ..ReconnectPolicy::default()
    }
}

/// What one subscriber counted, read by the drain check.
struct Receiver {
    /// Room indexes it subscribed to.
    rooms: Vec<usize>,
    received: AtomicU64,
    duplicates: AtomicU64,
}

/// Runs the scenario.
pub async fn run(mut run: Run, args: FanoutArgs) -> anyhow::Result<Report> {
    let faces = match args.transport.as_str() {
        "mix" => vec![Face::Ws, Face::Wss, Face::Quic],
        one => vec![Face::parse(one)?],
    };
    if args.connections == 0 || args.rooms == 0 || args.publishers == 0 || args.users == 0 {
        bail!("--connections, --rooms, --publishers and --users must be at least 1");
    }
    if args.rooms_per_connection == 0 || args.rooms_per_connection > args.rooms {
        bail!("--rooms-per-connection must be 1..=--rooms");
    }
    if args.connections > 18_000 {
        bail!("--connections is limited to 18000 in one process (20,000 open files)");
    }
    if args.window == 0 || args.window > 10_000 {
        bail!("--window must be 1..=10000");
    }
    crate::net::check_file_budget((args.connections + args.publishers) as u64 + 32, "fanout")?;
    // One dialer per face: source addresses for TCP, shared endpoints
    // for QUIC, one TLS configuration.
    let mut dialers = Vec::with_capacity(faces.len());
    for &face in &faces {
        let addr = match face {
            Face::Ws => &args.ws_addr,
            Face::Wss => &args.wss_addr,
            Face::Quic => &args.quic_addr,
        };
        let target = native::target(face, Some(addr)).await?;
        dialers.push(Dialer::new(
            face,
            target,
            run.common.ca_file.as_deref(),
            run.common.sources,
            native::quic_endpoints_for(args.connections + args.publishers),
        )?);
    }
    let dial = |i: usize, token: &str| {
        let mut config = dialers[i % dialers.len()].config(i / dialers.len(), token, reconnect());
        // Room for bursts: a full buffer stops the client reading its socket.
        config.event_buffer = EVENT_BUFFER;
        config
    };
    let mut report = Report::new("fanout");

    // Set-up.
    let users_n = args.users.min(args.connections);
    eprintln!(
        "setting up {users_n} users, {} rooms, {} connections over {}",
        args.rooms, args.connections, args.transport
    );
    let base = BaseUrl::parse(&run.common.http).await?;
    let provisioner = Provisioner::new(base, run.common.registration_token.clone());
    let mut users = provisioner.users(users_n + 1).await?;
    let owner = users.pop().context("no owner")?;
    let rooms = provisioner.rooms(&owner, args.rooms).await?;
    let rooms_of = |i: usize| -> Vec<usize> {
        (0..args.rooms_per_connection)
            .map(|j| (i * args.rooms_per_connection + j) % args.rooms)
            .collect()
    };
    let mut joins = std::collections::BTreeSet::new();
    for i in 0..args.connections {
        for r in rooms_of(i) {
            joins.insert((i % users_n, r));
        }
    }
    provisioner
        .join(
            joins
                .into_iter()
                .map(|(u, r)| (users[u].clone(), rooms[r].clone()))
                .collect(),
        )
        .await?;
    let room_ids = Arc::new(rooms.clone());

    // Subscribers.
    let start_ns = payload::now_ns();
    let delivery = Series::new(start_ns);
    let handshakes = Series::new(start_ns);
    let mut clients: Vec<Client> = Vec::with_capacity(args.connections);
    let mut receivers = Vec::with_capacity(args.connections);
    let ramp = Instant::now();
    let bar = run.progress("connect", Duration::from_secs(60));
    while clients.len() < args.connections {
        let first = clients.len();
        let wave = (args.connections - first).min(CONNECT_WAVE);
        let mut pending = JoinSet::new();
        for i in first..first + wave {
            let config = dial(i, &users[i % users_n].token);
            let subscribe: Vec<String> =
                rooms_of(i).into_iter().map(|r| rooms[r].clone()).collect();
            let mut hs = handshakes.local();
            pending.spawn(async move {
                let t = payload::now_ns();
                let client = Client::connect(config).await?;
                hs.record(payload::now_ns().saturating_sub(t));
                for room in &subscribe {
                    client.subscribe(room).await?;
                }
                anyhow::Ok((i, client))
            });
        }
        let mut wave_clients = Vec::with_capacity(wave);
        while let Some(r) = pending.join_next().await {
            let (i, client) = r.context("connect task")?.with_context(|| {
                format!(
                    "connection {} of {}",
                    clients.len() + wave_clients.len() + 1,
                    args.connections
                )
            })?;
            wave_clients.push((i, client));
        }
        wave_clients.sort_by_key(|(i, _)| *i);
        for (i, client) in wave_clients {
            receivers.push(Arc::new(Receiver {
                rooms: rooms_of(i),
                received: AtomicU64::new(0),
                duplicates: AtomicU64::new(0),
            }));
            clients.push(client);
            run.live.connections.fetch_add(1, Ordering::Relaxed);
        }
    }
    bar.finish_and_clear();
    let ramp_secs = ramp.elapsed().as_secs_f64();
    eprintln!(
        "{} connections subscribed in {ramp_secs:.1} s; {} publishers for {} s",
        clients.len(),
        args.publishers,
        run.common.duration_secs
    );
    let mut reading = JoinSet::new();
    for (client, receiver) in clients.iter().zip(&receivers) {
        reading.spawn(receive(
            client.clone(),
            Arc::clone(receiver),
            Arc::clone(&room_ids),
            delivery.local(),
            Arc::clone(&run.live),
        ));
    }

    // Publishers.
    let acked: Arc<Vec<AtomicU64>> =
        Arc::new((0..rooms.len()).map(|_| AtomicU64::new(0)).collect());
    let acks = Series::new(start_ns);
    let mut publishers = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        let config = dial(p, &owner.token);
        publishers.push(
            Client::connect(config)
                .await
                .context("publisher connection")?,
        );
    }
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(args.publishers as f64 / args.rate as f64));
    run.begin_measuring().await;
    let bar = run.progress("fanout", run.duration());
    let started = Instant::now();
    let deadline = started + run.duration();
    let mut sending = JoinSet::new();
    for (p, client) in publishers.iter().enumerate() {
        sending.spawn(publish(
            Publisher {
                client: client.clone(),
                writer: p as u32,
                publishers: args.publishers,
                rooms: Arc::clone(&room_ids),
                payload: args.payload,
                window: args.window,
                interval,
                deadline,
            },
            acks.local(),
            Arc::clone(&acked),
            Arc::clone(&run.live),
            Arc::clone(&run.errors),
        ));
    }
    while let Some(r) = sending.join_next().await {
        r.context("publisher task")?;
    }
    let measured = started.elapsed();
    bar.finish_and_clear();

    // Drain.
    let expected = |r: &Receiver| -> u64 {
        r.rooms
            .iter()
            .map(|&i| acked[i].load(Ordering::Relaxed))
            .sum()
    };
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    while Instant::now() < drain_deadline
        && !receivers
            .iter()
            .all(|r| r.received.load(Ordering::Relaxed) >= expected(r))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    for c in publishers.iter().chain(&clients) {
        c.close().await;
    }
    reading.abort_all();
    while reading.join_next().await.is_some() {}

    report.duration_secs = measured.as_secs_f64();
    report.delivery_secs = drained.as_secs_f64();
    report.sent = acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    for r in &receivers {
        let got = r.received.load(Ordering::Relaxed);
        report.delivered += got;
        report.lost += expected(r).saturating_sub(got);
        report.duplicated += r.duplicates.load(Ordering::Relaxed);
    }
    report.latency = delivery.summary();
    report.send_latency = Some(acks.summary());
    report.handshake = Some(handshakes.summary());
    report.figure("transport", args.transport.clone());
    report.figure("connections", args.connections as u64);
    report.figure("rooms", args.rooms as u64);
    report.figure("rooms per connection", args.rooms_per_connection as u64);
    report.figure("publishers", args.publishers as u64);
    report.figure("window per publisher", args.window as u64);
    report.figure(
        "target rate",
        if args.rate == 0 {
            "maximum".to_owned()
        } else {
            format!("{}/s", args.rate)
        },
    );
    report.figure("payload bytes", args.payload as u64);
    report.figure("connect + subscribe, s", (ramp_secs * 10.0).round() / 10.0);
    if report.lost > 0 {
        report.notes.push(format!(
            "{} acknowledged deliveries did not arrive within --drain-secs {}",
            report.lost, args.drain_secs
        ));
    }
    run.finish(&mut report).await;
    Ok(report)
}

async fn receive(
    client: Client,
    receiver: Arc<Receiver>,
    room_ids: Arc<Vec<String>>,
    mut delivery: Local,
    live: Arc<Live>,
) {
    let mut tallies: Vec<(usize, Tally)> = receiver
        .rooms
        .iter()
        .map(|&r| (r, Tally::default()))
        .collect();
    let mut unreported = 0u64;
    let mut batch = Vec::with_capacity(RECEIVE_BATCH);
    while client.next_events(&mut batch, RECEIVE_BATCH).await > 0 {
        // Events taken at once arrived together: one clock read for all.
        let now = payload::now_ns();
        for event in batch.drain(..) {
            let Some(stamp) = payload::decode(&event.content) else {
                continue;
            };
            // A connection subscribes to a few rooms: comparing their ids is
            // cheaper than hashing the event's (SipHash was 5 % of the
            // generator's CPU at 1,000 subscribers).
            let Some((_, tally)) = tallies
                .iter_mut()
                .find(|(r, _)| event.room_id == room_ids[*r])
            else {
                continue;
            };
            if tally.offer(event.seq) {
                delivery.record_at(now, now.saturating_sub(stamp.t));
                receiver.received.fetch_add(1, Ordering::Relaxed);
                unreported += 1;
                if unreported >= LIVE_BATCH {
                    live.delivered.fetch_add(unreported, Ordering::Relaxed);
                    unreported = 0;
                }
            } else {
                receiver.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    live.delivered.fetch_add(unreported, Ordering::Relaxed);
}

struct Publisher {
    client: Client,
    writer: u32,
    publishers: usize,
    rooms: Arc<Vec<String>>,
    payload: usize,
    window: usize,
    interval: Option<Duration>,
    deadline: Instant,
}

async fn publish(
    p: Publisher,
    mut acks: Local,
    acked: Arc<Vec<AtomicU64>>,
    live: Arc<Live>,
    errors: Arc<Errors>,
) {
    let mut ticker = p.interval.map(|i| {
        // Timers tick in milliseconds: a shorter interval is kept on
        // average by catching up in bursts.
        super::staggered_ticker(
            i,
            p.writer as usize,
            p.publishers,
            tokio::time::MissedTickBehavior::Burst,
        )
    });
    let mut in_flight = FuturesUnordered::new();
    let mut n = 0u64;
    loop {
        let open = Instant::now() < p.deadline;
        if open && in_flight.len() < p.window {
            if let Some(t) = &mut ticker {
                tokio::select! {
                    _ = t.tick() => {}
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                        settle(done, &mut acks, &acked, &live, &errors);
                        continue;
                    }
                }
            }
            let room = (p.writer as usize + n as usize * p.publishers) % p.rooms.len();
            let t = payload::now_ns();
            let content = payload::encode(Stamp { t, w: p.writer, n }, p.payload);
            let client = p.client.clone();
            let room_id = p.rooms[room].clone();
            in_flight.push(async move {
                let r = client.send(&room_id, payload::EVENT_TYPE, content).await;
                (room, t, r)
            });
            n += 1;
            continue;
        }
        match in_flight.next().await {
            Some(done) => settle(done, &mut acks, &acked, &live, &errors),
            None => break,
        }
    }
}

fn settle(
    (room, t, result): (
        usize,
        u64,
        Result<axon_client::SendAck, axon_client::ClientError>,
    ),
    acks: &mut Local,
    acked: &[AtomicU64],
    live: &Live,
    errors: &Errors,
) {
    match result {
        Ok(_) => {
            acks.record(payload::now_ns().saturating_sub(t));
            acked[room].fetch_add(1, Ordering::Relaxed);
            live.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => errors.add(match e.code() {
            Some(code) => format!("send: {code:?}"),
            None => format!("send: {e}"),
        }),
    }
}
