//! `churn`: `--clients` native clients lose their connections all at once,
//! `--cycles` times, while publishers keep sending, and must come back
//! without a gap or a duplicate.
//!
//! Set-up (through the Matrix API): `--users` users (at least `--rooms`),
//! `--rooms` public rooms made by one more user, user `u` joins room
//! `u mod rooms`. Client `i` connects (ws, wss or quic, as `connections`
//! does) as user `i mod users` and subscribes to that user's room. Only
//! when every client is subscribed do the publishers start (one native
//! client per room, as the rooms' creator, `--rate` events per second in
//! all, [`WINDOW`] sends in flight each), so that what the server
//! acknowledges in a room is exactly what each of its subscribers must
//! receive. Each event carries its send time ([`payload`]).
//!
//! The measured phase lasts `--duration-secs`, cut into `--cycles + 1`
//! equal pauses; after each pause but the last, every client drops its
//! socket at the same moment (axon-client's `kill_connection`, as a
//! network failure would), then reconnects by itself (with the library's
//! default backoff: the first attempt waits 100–200 ms, jittered) and
//! resumes its room from the last `seq` it saw. The next pause starts
//! when all are back (or after [`RESUME_TIMEOUT`]). Then the publishers
//! stop and the receivers drain.
//!
//! Checked for every client: it received each acknowledged event of its
//! room once (a [`Tally`] by `seq`: no duplicate, no jump in `seq`, and
//! as many as were acknowledged). Measured: resume time (from the drop to
//! the client being connected again, `Welcome` after the resume), the
//! reconnects the clients report, delivery latency, send latency.
//!
//! ```sh
//! axon-loadtest --server-metrics http://127.0.0.1:9108/metrics --duration-secs 40 \
//!     churn --transport ws --clients 10000 --rooms 100 --cycles 3 --rate 2000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axon_client::{Client, ConnectionState, ReconnectPolicy};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::native::{self, Dialer, Face};
use super::{Live, Run};
use crate::cli::ChurnArgs;
use crate::http::BaseUrl;
use crate::payload::{self, EVENT_TYPE, Stamp};
use crate::provision::Provisioner;
use crate::record::{Errors, Local, Series, Tally};
use crate::report::{Report, us};

/// Sends each publisher keeps in flight.
pub const WINDOW: usize = 64;
/// Longest the clients may take to come back after a drop.
pub const RESUME_TIMEOUT: Duration = Duration::from_secs(120);
/// After the publishers stop, how long receivers may take to drain.
const DRAIN: Duration = Duration::from_secs(60);
/// Connects (and subscribes) under way at once while setting up.
const SETUP_IN_FLIGHT: usize = 500;
/// Event content size, bytes.
const PAYLOAD_BYTES: usize = 256;
/// Most clients a run may ask for.
const MAX_CLIENTS: usize = 200_000;

/// What one client has received.
#[derive(Default)]
struct Seen {
    received: AtomicU64,
    duplicates: AtomicU64,
    /// Times `seq` jumped forward by more than one.
    jumps: AtomicU64,
}

/// One subscribed client.
struct Subscriber {
    client: Client,
    room: usize,
    seen: Arc<Seen>,
}

/// Runs the scenario.
pub async fn run(mut run: Run, args: ChurnArgs) -> anyhow::Result<Report> {
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be 1..={MAX_CLIENTS}");
    }
    if args.rooms == 0 || args.rooms > args.clients {
        bail!("--rooms must be 1..=--clients");
    }
    if args.cycles > 100 {
        bail!("--cycles must be at most 100");
    }
    if args.rate == 0 || args.rate > 1_000_000 {
        bail!("--rate must be 1..=1000000");
    }
    let face = Face::parse(&args.transport)?;
    let target = native::target(face, args.addr.as_deref()).await?;
    let files = (args.clients + args.rooms) as u64 * face.files_per_connection() + 64;
    crate::net::check_file_budget(files, "churn")?;
    let users = args.users.clamp(args.rooms, args.clients);
    let mut report = Report::new("churn");

    eprintln!(
        "setting up {users} users in {} rooms through {}",
        args.rooms, run.common.http
    );
    let base = BaseUrl::parse(&run.common.http).await?;
    let provisioner = Provisioner::new(base, run.common.registration_token.clone());
    let mut people = provisioner.users(users + 1).await?;
    let owner = people.pop().context("no owner")?;
    let rooms = provisioner.rooms(&owner, args.rooms).await?;
    provisioner
        .join(
            people
                .iter()
                .enumerate()
                .map(|(u, user)| (user.clone(), rooms[u % rooms.len()].clone()))
                .collect(),
        )
        .await?;
    let dialer = Arc::new(Dialer::new(
        face,
        target,
        run.common.ca_file.as_deref(),
        run.common.sources,
        native::quic_endpoints_for(args.clients + args.rooms),
    )?);

    // Clients: connect and subscribe, all before the first send.
    eprintln!(
        "connecting and subscribing {} {} clients",
        args.clients, args.transport
    );
    let start_ns = payload::now_ns();
    let handshake = Series::new(start_ns);
    let delivery = Series::new(start_ns);
    let acks = Series::new(start_ns);
    let resume = Series::new(start_ns);
    let tokens: Arc<Vec<String>> = Arc::new(people.iter().map(|u| u.token.clone()).collect());
    let rooms = Arc::new(rooms);
    let subscribers = subscribe_all(
        &run,
        &dialer,
        &tokens,
        &rooms,
        &handshake,
        &delivery,
        args.clients,
    )
    .await?;

    // Publishers.
    let acked: Arc<Vec<AtomicU64>> =
        Arc::new((0..rooms.len()).map(|_| AtomicU64::new(0)).collect());
    let mut publishers_up = Vec::new();
    for r in 0..rooms.len() {
        let config = dialer.config(args.clients + r, &owner.token, ReconnectPolicy::default());
        publishers_up.push(
            Client::connect(config)
                .await
                .map_err(|e| anyhow::anyhow!("publisher {r}: {e}"))?,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let per_room = args.rate as f64 / rooms.len() as f64;
    let mut publishing = JoinSet::new();
    for (r, client) in publishers_up.iter().enumerate() {
        publishing.spawn(publish(
            client.clone(),
            Arc::clone(&rooms),
            r,
            per_room,
            acks.local(),
            Arc::clone(&acked),
            Arc::clone(&stop),
            Arc::clone(&run.live),
            Arc::clone(&run.errors),
        ));
    }

    // Cycles.
    let pause = run.duration() / (args.cycles as u32 + 1);
    eprintln!(
        "{} clients subscribed; publishing {}/s, {} drop-and-resume cycles every {:.1} s",
        subscribers.len(),
        args.rate,
        args.cycles,
        pause.as_secs_f64()
    );
    run.begin_measuring().await;
    let bar = run.progress("churn", run.duration());
    let started = Instant::now();
    let mut not_resumed = 0u64;
    let mut cycle_secs = Vec::new();
    for _ in 0..args.cycles {
        tokio::time::sleep(pause).await;
        let (late, took) = drop_and_resume(&subscribers, &resume).await;
        not_resumed += late;
        cycle_secs.push(took);
    }
    tokio::time::sleep(pause).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = publishing.join_next().await {
        r.context("publisher task")?;
    }
    let measured = started.elapsed();
    bar.finish_and_clear();

    // Drain: until every client has every acknowledged event of its room.
    let complete = || {
        subscribers.iter().all(|s| {
            s.seen.received.load(Ordering::Relaxed) >= acked[s.room].load(Ordering::Relaxed)
        })
    };
    let drain_deadline = Instant::now() + DRAIN;
    while !complete() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    // Anything more arriving now would be a duplicate: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let reconnects: u64 = subscribers.iter().map(|s| s.client.reconnects()).sum();
    let mut extra = 0;
    for s in &subscribers {
        let expected = acked[s.room].load(Ordering::Relaxed);
        let got = s.seen.received.load(Ordering::Relaxed);
        report.delivered += got;
        report.lost += expected.saturating_sub(got);
        extra += got.saturating_sub(expected);
        report.duplicated += s.seen.duplicates.load(Ordering::Relaxed);
    }
    let jumps: u64 = subscribers
        .iter()
        .map(|s| s.seen.jumps.load(Ordering::Relaxed))
        .sum();
    let closing: Vec<Client> = subscribers
        .iter()
        .map(|s| s.client.clone())
        .chain(publishers_up)
        .collect();
    drop(subscribers);
    for chunk in closing.chunks(1_000) {
        futures::future::join_all(chunk.iter().map(Client::close)).await;
    }
    drop(closing);

    report.duration_secs = measured.as_secs_f64();
    report.delivery_secs = drained.as_secs_f64();
    report.sent = acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    report.latency = delivery.summary();
    report.send_latency = Some(acks.summary());
    report.handshake = Some(handshake.summary());
    let resumed = resume.summary();
    report.figure("transport", args.transport.clone());
    report.figure("clients", args.clients as u64);
    report.figure("rooms", args.rooms as u64);
    report.figure("users", users as u64);
    report.figure("cycles", args.cycles as u64);
    report.figure("target rate", format!("{}/s", args.rate));
    report.figure("reconnects expected", (args.clients * args.cycles) as u64);
    report.figure("reconnects observed", reconnects);
    report.figure("clients not back within the resume timeout", not_resumed);
    if resumed.count > 0 {
        report.figure(
            "resume time (drop → connected)",
            format!(
                "p50 {}  p90 {}  p99 {}  max {}",
                us(resumed.p50_us),
                us(resumed.p90_us),
                us(resumed.p99_us),
                us(resumed.max_us)
            ),
        );
    }
    report.figure(
        "cycle time (drop → all back), s",
        cycle_secs
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.figure("seq jumps (gaps) seen by clients", jumps);
    if report.lost > 0 || jumps > 0 || report.duplicated > 0 {
        report.notes.push(format!(
            "DELIVERY CHECK FAILED: {} lost, {} duplicated, {} seq jumps",
            report.lost, report.duplicated, jumps
        ));
    } else {
        report.notes.push(format!(
            "delivery check passed: every client got every acknowledged event of its room once, in order, across {} drops",
            args.cycles
        ));
    }
    if extra > 0 {
        report.notes.push(format!(
            "{extra} deliveries beyond the acknowledged count (sends that failed on the client's side but were stored)"
        ));
    }
    run.finish(&mut report).await;
    Ok(report)
}

/// Connects `count` clients (client `i` as user `i mod users`, in that
/// user's room) and subscribes each; starts a receiver per client.
async fn subscribe_all(
    run: &Run,
    dialer: &Arc<Dialer>,
    tokens: &Arc<Vec<String>>,
    rooms: &Arc<Vec<String>>,
    handshake: &Arc<Series>,
    delivery: &Arc<Series>,
    count: usize,
) -> anyhow::Result<Vec<Subscriber>> {
    let gate = Arc::new(Semaphore::new(SETUP_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (dialer, tokens, rooms, live, errors) = (
            Arc::clone(dialer),
            Arc::clone(tokens),
            Arc::clone(rooms),
            Arc::clone(&run.live),
            Arc::clone(&run.errors),
        );
        let mut latency = handshake.local();
        let delivery = delivery.local();
        tasks.spawn(async move {
            let _permit = permit;
            let user = i % tokens.len();
            let room = user % rooms.len();
            let config = dialer.config(i, &tokens[user], ReconnectPolicy::default());
            let t = Instant::now();
            let client = Client::connect(config)
                .await
                .map_err(|e| anyhow::anyhow!("client {i}: {}", native::error_code(&e)))?;
            latency.record(t.elapsed().as_nanos() as u64);
            let head = client
                .subscribe(&rooms[room])
                .await
                .map_err(|e| anyhow::anyhow!("client {i} subscribing: {e}"))?
                .head;
            live.connections.fetch_add(1, Ordering::Relaxed);
            let seen = Arc::new(Seen::default());
            tokio::spawn(receive(
                client.clone(),
                head,
                delivery,
                Arc::clone(&seen),
                live,
                errors,
            ));
            anyhow::Ok((i, Subscriber { client, room, seen }))
        });
    }
    let mut subscribers = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        subscribers.push(done.context("client set-up task")??);
    }
    subscribers.sort_by_key(|(i, _)| *i);
    Ok(subscribers.into_iter().map(|(_, s)| s).collect())
}

/// Reads one client's events until it closes, tallying them by `seq`
/// from the room's head at subscription.
async fn receive(
    client: Client,
    head: u64,
    mut delivery: Local,
    seen: Arc<Seen>,
    live: Arc<Live>,
    errors: Arc<Errors>,
) {
    let mut tally = Tally {
        last_seq: head,
        ..Tally::default()
    };
    while let Some(event) = client.next_event().await {
        let now = payload::now_ns();
        let Some(stamp) = payload::decode(&event.content) else {
            continue;
        };
        let previous = tally.last_seq;
        if tally.offer(event.seq) {
            if event.seq != previous + 1 {
                seen.jumps.fetch_add(1, Ordering::Relaxed);
                errors.add("receive: seq jump (gap)");
            }
            delivery.record_at(now, now.saturating_sub(stamp.t));
            seen.received.fetch_add(1, Ordering::Relaxed);
            live.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            seen.duplicates.fetch_add(1, Ordering::Relaxed);
            errors.add("receive: duplicate");
        }
    }
    delivery.flush();
}

/// Drops every client's socket at once and waits until each is connected
/// again; returns the clients not back within [`RESUME_TIMEOUT`] and the
/// seconds until the last was back.
async fn drop_and_resume(subscribers: &[Subscriber], resume: &Arc<Series>) -> (u64, f64) {
    let before: Vec<u64> = subscribers.iter().map(|s| s.client.reconnects()).collect();
    let mut waiting = JoinSet::new();
    let dropped = Instant::now();
    for (s, r0) in subscribers.iter().zip(before) {
        let client = s.client.clone();
        let mut state = client.watch_state();
        let mut latency = resume.local();
        waiting.spawn(async move {
            let back = tokio::time::timeout(
                RESUME_TIMEOUT,
                state.wait_for(|st| *st == ConnectionState::Connected && client.reconnects() > r0),
            )
            .await;
            match back {
                Ok(Ok(_)) => {
                    latency.record(dropped.elapsed().as_nanos() as u64);
                    true
                }
                _ => false,
            }
        });
    }
    futures::future::join_all(subscribers.iter().map(|s| s.client.kill_connection())).await;
    let mut late = 0;
    while let Some(back) = waiting.join_next().await {
        if !matches!(back, Ok(true)) {
            late += 1;
        }
    }
    (late, dropped.elapsed().as_secs_f64())
}

/// Sends into room `r` at `rate` per second, [`WINDOW`] at a time, until
/// `stop`; counts acknowledged sends per room.
#[allow(clippy::too_many_arguments)]
async fn publish(
    client: Client,
    rooms: Arc<Vec<String>>,
    r: usize,
    rate: f64,
    acks: Local,
    acked: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    errors: Arc<Errors>,
) {
    let window = Arc::new(Semaphore::new(WINDOW));
    let acks = Arc::new(parking_lot::Mutex::new(acks));
    let started = Instant::now();
    let mut sends = JoinSet::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(n as f64 / rate.max(1e-3));
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = Arc::clone(&window).acquire_owned().await else {
            break;
        };
        let t = payload::now_ns();
        let content = payload::encode(Stamp { t, w: r as u32, n }, PAYLOAD_BYTES);
        n += 1;
        let (client, rooms, acks, acked, live, errors) = (
            client.clone(),
            Arc::clone(&rooms),
            Arc::clone(&acks),
            Arc::clone(&acked),
            Arc::clone(&live),
            Arc::clone(&errors),
        );
        sends.spawn(async move {
            let _permit = permit;
            match client.send(&rooms[r], EVENT_TYPE, content).await {
                Ok(_) => {
                    acks.lock().record(payload::now_ns().saturating_sub(t));
                    acked[r].fetch_add(1, Ordering::Relaxed);
                    live.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => errors.add(format!("send: {}", native::error_code(&e))),
            }
        });
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
}
