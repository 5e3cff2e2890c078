//! `matrix`: users send messages over the Matrix client-server API and
//! receive them by long-polling `/sync`, as Matrix clients do.
//!
//! Set-up (through the same API): `--users` users, `--rooms` public rooms
//! made by one more user, user `i` joins room `i mod rooms`. Every user
//! then runs a `/sync` loop on its own keep-alive connection (a stored
//! filter: timeline of `m.room.message`, limit 100, nothing else).
//! When all have their first `next_batch`, `--senders` senders each take
//! a user's token and `PUT /rooms/{room}/send/m.room.message/{txn}` in a
//! loop, at `--rate` in total or as fast as the server answers, for
//! `--duration-secs`. Each event carries its send time.
//!
//! Measured: acknowledged sends per second, send → acknowledgement, and
//! send → seen in `/sync` for every member of the room (end-to-end
//! delivery). A `limited` timeline is backfilled with `/messages` as a
//! client would, and counted. Lost and duplicated events are found by
//! `unsigned."io.axon.seq"` against the acknowledged count per room; on a
//! server whose events carry no such field (another homeserver, measured
//! for comparison) duplicates are found by each sender's count instead
//! ([`StampTally`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::cli::MatrixArgs;
use crate::http::{BaseUrl, HttpConn, Reply};
use crate::net::SourceAddrs;
use crate::payload::{self, Stamp};
use crate::provision::{Provisioner, User, V3, encode_path, retrying};
use crate::record::{Local, Series, StampTally, Tally};
use crate::report::Report;
use crate::scenario::Run;

/// Long-poll timeout of `/sync`, ms.
const SYNC_TIMEOUT_MS: u64 = 30_000;
/// Timeline events per room per `/sync` (the server's maximum).
const TIMELINE_LIMIT: u64 = 100;
/// Pause after a failed request before the loop tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What one receiving user has counted, read by the drain check.
#[derive(Default)]
struct Seen {
    received: AtomicU64,
    duplicates: AtomicU64,
    limited: AtomicU64,
    backfilled: AtomicU64,
    syncs: AtomicU64,
    /// Events counted by their stamp, as they carried no `io.axon.seq`.
    unsequenced: AtomicU64,
}

/// Runs the scenario.
pub async fn run(mut run: Run, args: MatrixArgs) -> anyhow::Result<Report> {
    if args.users == 0 || args.rooms == 0 || args.rooms > args.users {
        bail!("--users must be at least 1 and at least --rooms");
    }
    if args.users > 10_000 {
        bail!("--users is limited to 10000 (two connections each)");
    }
    let senders = if args.senders == 0 {
        args.users
    } else {
        args.senders
    };
    crate::net::check_file_budget((args.users + senders) as u64 + 16, "matrix")?;
    let base = BaseUrl::parse(&run.common.http).await?;
    let sources = Arc::new(SourceAddrs::new(&base.addr, run.common.sources));
    let mut report = Report::new("matrix");

    eprintln!(
        "setting up {} users in {} rooms through {}",
        args.users, args.rooms, run.common.http
    );
    let provisioner = Provisioner::new(base.clone(), run.common.registration_token.clone());
    let mut users = provisioner.users(args.users + 1).await?;
    let owner = users.pop().context("no owner")?;
    let rooms = provisioner.rooms(&owner, args.rooms).await?;
    provisioner
        .join(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), rooms[i % rooms.len()].clone()))
                .collect(),
        )
        .await?;

    // Receivers: one /sync loop per user.
    // Stamps count from here: Matrix content keeps integers within
    // ±(2^53 - 1) (canonical JSON; Synapse refuses others), and Unix
    // nanoseconds are past that.
    let start_ns = payload::now_ns();
    let delivery = Series::new(start_ns);
    let acks = Series::new(start_ns);
    let mut receivers = JoinSet::new();
    let mut seen = Vec::with_capacity(users.len());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(users.len());
    for (i, user) in users.iter().enumerate() {
        let s = Arc::new(Seen::default());
        seen.push((i % rooms.len(), Arc::clone(&s)));
        receivers.spawn(receive(
            base.clone(),
            sources.next(),
            user.clone(),
            rooms[i % rooms.len()].clone(),
            start_ns,
            delivery.local(),
            s,
            Arc::clone(&run.live),
            Arc::clone(&run.errors),
            ready_tx.clone(),
        ));
    }
    drop(ready_tx);
    for _ in 0..users.len() {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.context("a user's first /sync")),
            None => bail!("a /sync loop ended before its first sync"),
        }
    }

    // Senders.
    eprintln!(
        "{} users syncing; {senders} senders for {} s",
        users.len(),
        run.common.duration_secs
    );
    let acked: Arc<Vec<AtomicU64>> =
        Arc::new((0..rooms.len()).map(|_| AtomicU64::new(0)).collect());
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(senders as f64 / args.rate as f64));
    run.begin_measuring().await;
    let bar = run.progress("matrix", run.duration());
    let started = Instant::now();
    let deadline = started + run.duration();
    let mut sending = JoinSet::new();
    for j in 0..senders {
        let u = j % users.len();
        sending.spawn(send(
            SendJob {
                base: base.clone(),
                source: sources.next(),
                user: users[u].clone(),
                room: rooms[u % rooms.len()].clone(),
                room_index: u % rooms.len(),
                writer: j as u32,
                senders,
                payload: args.payload,
                interval,
                deadline,
                epoch_ns: start_ns,
            },
            acks.local(),
            Arc::clone(&acked),
            Arc::clone(&run.live),
            Arc::clone(&run.errors),
        ));
    }
    while let Some(r) = sending.join_next().await {
        r.context("sender task")??;
    }
    let measured = started.elapsed();
    bar.finish_and_clear();

    // Drain: wait until every member has every acknowledged event of its
    // room, or the drain time is up.
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let complete = || {
        seen.iter().all(|(room, s)| {
            s.received.load(Ordering::Relaxed) >= acked[*room].load(Ordering::Relaxed)
        })
    };
    while !complete() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    receivers.abort_all();
    while receivers.join_next().await.is_some() {}

    report.duration_secs = measured.as_secs_f64();
    report.delivery_secs = drained.as_secs_f64();
    report.sent = acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    for (room, s) in &seen {
        let expected = acked[*room].load(Ordering::Relaxed);
        let got = s.received.load(Ordering::Relaxed);
        report.delivered += got;
        report.lost += expected.saturating_sub(got);
        report.duplicated += s.duplicates.load(Ordering::Relaxed);
    }
    report.latency = delivery.summary();
    report.send_latency = Some(acks.summary());
    let sum = |f: fn(&Seen) -> &AtomicU64| -> u64 {
        seen.iter().map(|(_, s)| f(s).load(Ordering::Relaxed)).sum()
    };
    report.figure("users", args.users as u64);
    report.figure("rooms", args.rooms as u64);
    report.figure("senders", senders as u64);
    report.figure(
        "target rate",
        if args.rate == 0 {
            "maximum".to_owned()
        } else {
            format!("{}/s", args.rate)
        },
    );
    report.figure("payload bytes", args.payload as u64);
    report.figure("syncs answered", sum(|s| &s.syncs));
    report.figure("limited timelines (backfilled)", sum(|s| &s.limited));
    report.figure("events backfilled with /messages", sum(|s| &s.backfilled));
    let unsequenced = sum(|s| &s.unsequenced);
    if unsequenced > 0 {
        report.figure("events without io.axon.seq (checked by stamp)", unsequenced);
    }
    if report.lost > 0 {
        report.notes.push(format!(
            "{} acknowledged events were not seen in /sync within --drain-secs {}",
            report.lost, args.drain_secs
        ));
    }
    run.finish(&mut report).await;
    Ok(report)
}

struct SendJob {
    base: BaseUrl,
    source: std::net::IpAddr,
    user: User,
    room: String,
    room_index: usize,
    writer: u32,
    senders: usize,
    payload: usize,
    interval: Option<Duration>,
    deadline: Instant,
    /// Stamps carry nanoseconds since this Unix time.
    epoch_ns: u64,
}

async fn send(
    job: SendJob,
    mut acks: Local,
    acked: Arc<Vec<AtomicU64>>,
    live: Arc<super::Live>,
    errors: Arc<crate::record::Errors>,
) -> anyhow::Result<()> {
    let mut conn = HttpConn::connect(&job.base, Some(job.source)).await?;
    let room = encode_path(&job.room);
    let mut ticker = job.interval.map(|i| {
        super::staggered_ticker(
            i,
            job.writer as usize,
            job.senders,
            tokio::time::MissedTickBehavior::Skip,
        )
    });
    let mut n = 0u64;
    while Instant::now() < job.deadline {
        if let Some(t) = &mut ticker {
            t.tick().await;
        }
        let t = payload::now_ns();
        let body = payload::encode(
            Stamp {
                t: t.saturating_sub(job.epoch_ns),
                w: job.writer,
                n,
            },
            job.payload,
        );
        let path = format!("{V3}/rooms/{room}/send/m.room.message/lt{}n{n}", job.writer);
        match conn
            .request(Method::PUT, &path, Some(&job.user.token), Some(body))
            .await
        {
            Ok((status, _)) if status.is_success() => {
                acks.record(payload::now_ns().saturating_sub(t));
                acked[job.room_index].fetch_add(1, Ordering::Relaxed);
                live.sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok((status, body)) => {
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("errcode")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("http {}", status.as_u16()));
                errors.add(format!("send: {code}"));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => {
                errors.add(format!("send: {}", root_cause(&e)));
                tokio::time::sleep(RETRY_PAUSE).await;
                conn = HttpConn::connect(&job.base, Some(job.source)).await?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn receive(
    base: BaseUrl,
    source: std::net::IpAddr,
    user: User,
    room: String,
    epoch_ns: u64,
    mut delivery: Local,
    seen: Arc<Seen>,
    live: Arc<super::Live>,
    errors: Arc<crate::record::Errors>,
    ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let first = async {
        let mut conn = HttpConn::connect(&base, Some(source)).await?;
        let filter = json!({
            "room": {
                "timeline": {"limit": TIMELINE_LIMIT, "types": ["m.room.message"]},
                "state": {"lazy_load_members": true},
                "ephemeral": {"limit": 0},
                "account_data": {"limit": 0},
            },
            "presence": {"limit": 0},
            "account_data": {"limit": 0},
        });
        let reply = retrying(
            &mut conn,
            Method::POST,
            &format!("{V3}/user/{}/filter", encode_path(&user.user_id)),
            Some(&user.token),
            Some(&filter),
        )
        .await?;
        let filter_id = reply
            .json
            .get("filter_id")
            .and_then(Value::as_str)
            .with_context(|| format!("POST filter: {} {}", reply.status, reply.json))?
            .to_owned();
        let reply = retrying(
            &mut conn,
            Method::GET,
            &format!("{V3}/sync?filter={filter_id}&timeout=0"),
            Some(&user.token),
            None,
        )
        .await?;
        let since = reply
            .json
            .get("next_batch")
            .and_then(Value::as_str)
            .with_context(|| format!("first /sync: {} {}", reply.status, reply.json))?
            .to_owned();
        anyhow::Ok((conn, filter_id, since))
    };
    let (mut conn, filter_id, mut since) = match first.await {
        Ok(v) => {
            let _ = ready.send(Ok(())).await;
            v
        }
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return;
        }
    };
    drop(ready);
    let mut tally = Tally::default();
    let mut by_stamp = StampTally::default();
    loop {
        let path = format!("{V3}/sync?filter={filter_id}&timeout={SYNC_TIMEOUT_MS}&since={since}");
        let body = match conn
            .request(Method::GET, &path, Some(&user.token), None)
            .await
        {
            Ok((status, body)) if status.is_success() => body,
            Ok((status, body)) => {
                errors.add(format!("sync: {}", Reply::of(status, &body).error_code()));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            Err(e) => {
                errors.add(format!("sync: {}", root_cause(&e)));
                tokio::time::sleep(RETRY_PAUSE).await;
                match HttpConn::connect(&base, Some(source)).await {
                    Ok(c) => conn = c,
                    Err(_) => continue,
                }
                continue;
            }
        };
        let now = payload::now_ns();
        seen.syncs.fetch_add(1, Ordering::Relaxed);
        // Only what the tally needs is decoded (the generator's CPU is
        // taken from the server's, on one machine).
        let mut reply: SyncReply<'_> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                errors.add(format!("sync: undecodable answer ({e})"));
                continue;
            }
        };
        if let Some(next) = reply.next_batch.take() {
            since = next.into_owned();
        }
        let Some(timeline) = reply.rooms.join.remove(room.as_str()).map(|r| r.timeline) else {
            continue;
        };
        let mut stamped: Vec<(Option<u64>, Stamp)> = Vec::new();
        if timeline.limited {
            seen.limited.fetch_add(1, Ordering::Relaxed);
            let backfill = fetch_gap(
                &mut conn,
                &user,
                &room,
                timeline.prev_batch.as_deref(),
                |seq, stamp| match (seq, stamp) {
                    (Some(seq), _) => Some(seq > tally.last_seq),
                    (None, Some(s)) => Some(!by_stamp.seen(s.w, s.n)),
                    (None, None) => None,
                },
                &errors,
            )
            .await;
            seen.backfilled
                .fetch_add(backfill.len() as u64, Ordering::Relaxed);
            stamped.extend(backfill);
        }
        stamped.extend(
            timeline
                .events
                .iter()
                .filter_map(|e| Some((e.unsigned.seq, e.content?))),
        );
        for (seq, stamp) in stamped {
            let new = match seq {
                Some(seq) => tally.offer(seq),
                None => {
                    seen.unsequenced.fetch_add(1, Ordering::Relaxed);
                    by_stamp.offer(stamp.w, stamp.n)
                }
            };
            if new {
                delivery.record_at(now, now.saturating_sub(epoch_ns.saturating_add(stamp.t)));
                seen.received.fetch_add(1, Ordering::Relaxed);
                live.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                seen.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        delivery.flush();
    }
}

/// The load events between what the receiver has seen and a limited
/// timeline, oldest first, with their `seq` where the server gives one:
/// read backwards from `prev_batch` with `/messages` until `unseen` says an
/// event was seen already (`Some(false)`; `None`: not a load event).
async fn fetch_gap(
    conn: &mut HttpConn,
    user: &User,
    room: &str,
    prev_batch: Option<&str>,
    unseen: impl Fn(Option<u64>, Option<Stamp>) -> Option<bool>,
    errors: &crate::record::Errors,
) -> Vec<(Option<u64>, Stamp)> {
    let mut out = Vec::new();
    let Some(mut from) = prev_batch.map(str::to_owned) else {
        return out;
    };
    let filter = encode_path(r#"{"types":["m.room.message"]}"#);
    loop {
        let path = format!(
            "{V3}/rooms/{}/messages?dir=b&limit=100&from={from}&filter={filter}",
            encode_path(room)
        );
        let reply = match conn.json(Method::GET, &path, Some(&user.token), None).await {
            Ok(r) if r.status.is_success() => r,
            Ok(r) => {
                errors.add(format!("messages: {}", r.error_code()));
                break;
            }
            Err(e) => {
                errors.add(format!("messages: {}", root_cause(&e)));
                break;
            }
        };
        let chunk = reply.json["chunk"].as_array().cloned().unwrap_or_default();
        let mut reached = chunk.is_empty();
        for event in chunk {
            let seq = event["unsigned"]["io.axon.seq"].as_u64();
            let stamp = serde_json::from_value::<Stamp>(event["content"].clone()).ok();
            match (unseen(seq, stamp), stamp) {
                (Some(true), Some(stamp)) => out.push((seq, stamp)),
                (Some(true), None) | (None, _) => {}
                (Some(false), _) => reached = true,
            }
        }
        match reply.json["end"].as_str() {
            Some(end) if !reached => from = end.to_owned(),
            _ => break,
        }
    }
    out.reverse();
    out
}

fn root_cause(e: &anyhow::Error) -> String {
    e.root_cause().to_string()
}

/// The parts of a `/sync` answer the generator reads; the rest is skipped
/// without being built.
#[derive(Deserialize)]
struct SyncReply<'a> {
    #[serde(borrow)]
    next_batch: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    rooms: SyncRooms<'a>,
}

#[derive(Default, Deserialize)]
struct SyncRooms<'a> {
    #[serde(default, borrow)]
    join: HashMap<Cow<'a, str>, SyncRoom>,
}

#[derive(Deserialize)]
struct SyncRoom {
    #[serde(default)]
    timeline: SyncTimeline,
}

#[derive(Default, Deserialize)]
struct SyncTimeline {
    #[serde(default)]
    limited: bool,
    prev_batch: Option<String>,
    #[serde(default)]
    events: Vec<SyncEvent>,
}

#[derive(Deserialize)]
struct SyncEvent {
    #[serde(default)]
    unsigned: Unsigned,
    /// `None` for events without the generator's stamp.
    #[serde(default, deserialize_with = "stamp_or_none")]
    content: Option<Stamp>,
}

#[derive(Default, Deserialize)]
struct Unsigned {
    #[serde(rename = "io.axon.seq")]
    seq: Option<u64>,
}

/// A stamp, or `None` for content of another shape.
fn stamp_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Stamp>, D::Error> {
    #[derive(Deserialize)]
    struct MaybeStamp {
        t: Option<u64>,
        w: Option<u32>,
        n: Option<u64>,
    }
    let m = MaybeStamp::deserialize(d)?;
    Ok(match (m.t, m.w, m.n) {
        (Some(t), Some(w), Some(n)) => Some(Stamp { t, w, n }),
        _ => None,
    })
}
