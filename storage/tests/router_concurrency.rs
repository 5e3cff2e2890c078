//! Router correctness under concurrency, on the real pipeline: sequencer →
//! embedded store → router → feeds.
//!
//! Many publishers append to several rooms while many subscribers join and
//! leave at random. Each subscriber checks that, for as long as it was
//! subscribed to a room, it saw that room's events in `seq` order with no gap
//! and no duplicate. One subscriber with a tiny queue does not drain at all
//! until every publisher has finished: if the router waited on it, the
//! publishers would never finish and the test would time out. It lags, and
//! catches up from storage to the exact final head of every room.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axon_core::room::{JoinRule, Membership};
use axon_core::router::{Feed, LagPolicy};
use axon_core::store::TimelineStore;
use axon_core::{
    NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer, SequencerConfig, ServerName, UserId,
};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

const ROOMS: usize = 6;
const PUBLISHERS: usize = 6;
const EVENTS_PER_PUBLISHER: usize = 400;
const CHURNING_SUBSCRIBERS: usize = 12;

fn message(room: &RoomId, sender: &UserId, n: usize) -> NewEvent {
    NewEvent::message(
        room,
        sender,
        format!(r#"{{"msgtype":"m.text","body":"{n}"}}"#),
    )
}

/// Checks one subscription period: the seqs seen for a room are consecutive.
fn assert_consecutive(who: &str, room: &RoomId, seqs: &[u64]) {
    for w in seqs.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "{who}: {room} went from seq {} to {}",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_see_every_room_in_order_while_joining_and_leaving() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
    let router = Arc::new(RoomRouter::new());
    let config = SequencerConfig {
        shards: 4,
        ..SequencerConfig::default()
    };
    let sequencer = Sequencer::start(store.clone(), router.clone(), config)
        .await
        .unwrap();

    let server = ServerName::parse("x").unwrap();
    let alice = UserId::parse("@alice:x").unwrap();
    let rooms: Vec<RoomId> = (0..ROOMS).map(|_| RoomId::random(&server)).collect();
    for room in &rooms {
        let mut creation = RoomCreation::new(room.clone(), alice.clone());
        creation.join_rule = JoinRule::Public;
        sequencer.append_all(creation.events()).await.unwrap();
    }

    // The slow subscriber joins every room before anything is published and
    // then does not read until the publishers are done.
    let (done_tx, done_rx) = watch::channel(false);
    let mut slow = Feed::new(router.clone(), store.clone(), 8, LagPolicy::CatchUp);
    for room in &rooms {
        slow.join(room, None).await.unwrap();
    }
    let slow_task = {
        let mut done = done_rx.clone();
        let (store, rooms) = (store.clone(), rooms.clone());
        tokio::spawn(async move {
            done.wait_for(|d| *d).await.unwrap();
            // Publishing has finished: these heads are final.
            let mut heads = HashMap::new();
            for room in &rooms {
                heads.insert(room.clone(), store.room_head(room).await.unwrap().unwrap());
            }
            let mut seen: HashMap<RoomId, Vec<u64>> = HashMap::new();
            let mut out = Vec::new();
            while rooms
                .iter()
                .any(|r| slow.cursor().last(r) != heads.get(r).copied())
            {
                out.clear();
                slow.next(&mut out).await.unwrap();
                for d in &out {
                    seen.entry(d.event.room_id.clone())
                        .or_default()
                        .push(d.event.seq);
                }
            }
            (seen, slow.lags())
        })
    };

    // Churning subscribers: join a random subset of rooms (from the live
    // point or from a random earlier seq), read for a while, leave, repeat.
    let mut churners = Vec::new();
    for i in 0..CHURNING_SUBSCRIBERS {
        let (router, store) = (router.clone(), store.clone());
        let rooms = rooms.clone();
        let done = done_rx.clone();
        churners.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut periods = 0usize;
            let mut delivered = 0usize;
            let mut lags = 0;
            while !*done.borrow() {
                let mut feed = Feed::new(router.clone(), store.clone(), 4096, LagPolicy::CatchUp);
                let mut seen: HashMap<RoomId, Vec<u64>> = HashMap::new();
                let chosen: Vec<&RoomId> = rooms.iter().filter(|_| rng.random_bool(0.5)).collect();
                for room in chosen {
                    let from = if rng.random_bool(0.5) {
                        Some(rng.random_range(0..20))
                    } else {
                        None
                    };
                    for d in feed.join(room, from).await.unwrap() {
                        seen.entry(room.clone()).or_default().push(d.event.seq);
                    }
                    if let Some(from) = from {
                        // A replay from `from` starts right after it.
                        if let Some(first) = seen.get(room).and_then(|s| s.first()) {
                            assert_eq!(*first, from + 1, "subscriber {i}: replay of {room}");
                        }
                    }
                }
                let reads = rng.random_range(1..20);
                let mut out = Vec::new();
                for _ in 0..reads {
                    out.clear();
                    let next =
                        tokio::time::timeout(Duration::from_millis(50), feed.next(&mut out)).await;
                    if let Ok(r) = next {
                        r.unwrap();
                    }
                    for d in &out {
                        seen.entry(d.event.room_id.clone())
                            .or_default()
                            .push(d.event.seq);
                    }
                }
                for (room, seqs) in &seen {
                    assert_consecutive(&format!("subscriber {i}"), room, seqs);
                    delivered += seqs.len();
                }
                lags += feed.lags();
                periods += 1;
                drop(feed);
            }
            (periods, delivered, lags)
        }));
    }

    // Publishers: one sender per publisher, joined to every (public) room.
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let sender = UserId::parse(&format!("@p{p}:x")).unwrap();
        for room in &rooms {
            let join = NewEvent::membership(room, &sender, &sender, Membership::Join);
            sequencer.append(join).await.unwrap();
        }
        let sequencer = sequencer.clone();
        let rooms = rooms.clone();
        publishers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + p as u64);
            for n in 0..EVENTS_PER_PUBLISHER {
                let room = &rooms[rng.random_range(0..rooms.len())];
                sequencer.append(message(room, &sender, n)).await.unwrap();
            }
        }));
    }
    let finished = tokio::time::timeout(Duration::from_secs(120), async {
        for p in publishers {
            p.await.unwrap();
        }
    })
    .await;
    assert!(
        finished.is_ok(),
        "publishers were held up while the slow subscriber did not read"
    );
    done_tx.send(true).unwrap();

    let mut total_delivered = 0;
    for c in churners {
        let (periods, delivered, lags) = c.await.unwrap();
        assert!(periods > 0);
        assert_eq!(
            lags, 0,
            "a subscriber with a 4096-deep queue that reads should not lag"
        );
        total_delivered += delivered;
    }
    assert!(total_delivered > 0, "the churning subscribers saw nothing");

    // The slow subscriber lagged, caught up, and ends at each room's head
    // with every message event since it joined, in order.
    let (seen, lags) = tokio::time::timeout(Duration::from_secs(60), slow_task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        lags > 0,
        "the slow subscriber should have lagged with a queue of 8"
    );
    for room in &rooms {
        let head = store.room_head(room).await.unwrap().unwrap();
        let seqs = seen.get(room).cloned().unwrap_or_default();
        assert_consecutive("slow subscriber", room, &seqs);
        assert_eq!(
            seqs.last().copied(),
            Some(head),
            "slow subscriber did not reach the head of {room}"
        );
    }
    sequencer.shutdown().await;
}

/// The feed's replay page.
const PAGE: usize = 512;

/// A store, router and sequencer with defaults, for the paging tests.
struct Paging {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    router: Arc<RoomRouter>,
    sequencer: Sequencer,
    server: ServerName,
    alice: UserId,
}

impl Paging {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let router = Arc::new(RoomRouter::new());
        let sequencer = Sequencer::start(store.clone(), router.clone(), SequencerConfig::default())
            .await
            .unwrap();
        Self {
            _dir: dir,
            store,
            router,
            sequencer,
            server: ServerName::parse("x").unwrap(),
            alice: UserId::parse("@alice:x").unwrap(),
        }
    }
}

/// A feed far behind catches up a page per room per `try_next` (at most 512
/// events, the feed's replay page), in order and without gaps, and only
/// then takes live events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_feed_catches_up_a_page_at_a_time() {
    const BEHIND: usize = 1_300;
    let Paging {
        _dir,
        store,
        router,
        sequencer,
        server,
        alice,
    } = Paging::start().await;
    let rooms: Vec<RoomId> = (0..2).map(|_| RoomId::random(&server)).collect();
    for room in &rooms {
        let mut creation = RoomCreation::new(room.clone(), alice.clone());
        creation.join_rule = JoinRule::Public;
        sequencer.append_all(creation.events()).await.unwrap();
    }
    let mut feed = Feed::new(router.clone(), store.clone(), 8, LagPolicy::CatchUp);
    for room in &rooms {
        feed.join(room, None).await.unwrap();
    }
    for n in 0..BEHIND {
        for room in &rooms {
            sequencer.append(message(room, &alice, n)).await.unwrap();
        }
    }
    let mut heads = HashMap::new();
    for room in &rooms {
        heads.insert(room.clone(), store.room_head(room).await.unwrap().unwrap());
    }

    let mut seen: HashMap<RoomId, Vec<u64>> = HashMap::new();
    let mut steps = 0;
    while rooms
        .iter()
        .any(|r| feed.cursor().last(r) != heads.get(r).copied())
    {
        let mut out = Vec::new();
        feed.next(&mut out).await.unwrap();
        steps += 1;
        let mut per_room: HashMap<&RoomId, usize> = HashMap::new();
        for d in &out {
            *per_room.entry(&d.event.room_id).or_default() += 1;
            seen.entry(d.event.room_id.clone())
                .or_default()
                .push(d.event.seq);
        }
        for (room, n) in per_room {
            assert!(n <= PAGE, "step {steps}: {n} events of {room} at once");
        }
    }
    assert_eq!(feed.lags(), 1);
    assert_eq!(steps, BEHIND.div_ceil(PAGE), "one page per room per step");
    for room in &rooms {
        let seqs = &seen[room];
        assert_consecutive("the lagging feed", room, seqs);
        assert_eq!(seqs.last().copied(), heads.get(room).copied());
    }

    // Caught up: live events flow again.
    sequencer
        .append(message(&rooms[0], &alice, BEHIND))
        .await
        .unwrap();
    let mut out = Vec::new();
    feed.next(&mut out).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event.seq, heads[&rooms[0]] + 1);
    assert_eq!(feed.lags(), 1);
    sequencer.shutdown().await;
}

/// Joining from far back (a subscribe with `since: 0` on a long timeline)
/// returns one page, and the rest follows a page per `try_next` before any
/// live event: the feed never holds the whole backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_from_far_back_replays_a_page_at_a_time() {
    const BACKLOG: usize = 1_100;
    let Paging {
        _dir,
        store,
        router,
        sequencer,
        server,
        alice,
    } = Paging::start().await;
    let room = RoomId::random(&server);
    sequencer
        .append_all(RoomCreation::new(room.clone(), alice.clone()).events())
        .await
        .unwrap();
    for n in 0..BACKLOG {
        sequencer.append(message(&room, &alice, n)).await.unwrap();
    }
    let head = store.room_head(&room).await.unwrap().unwrap();

    let mut feed = Feed::new(router.clone(), store.clone(), 64, LagPolicy::CatchUp);
    let first = feed.join(&room, Some(0)).await.unwrap();
    assert_eq!(first.len(), PAGE, "join hands out one page");
    assert_eq!(feed.cursor().last(&room), Some(PAGE as u64));
    // Published while the feed is still catching up: it comes after the
    // backlog, once.
    sequencer
        .append(message(&room, &alice, BACKLOG))
        .await
        .unwrap();
    let mut seqs: Vec<u64> = first.iter().map(|d| d.event.seq).collect();
    let mut steps = 0;
    while feed.cursor().last(&room) != Some(head + 1) {
        let mut out = Vec::new();
        feed.next(&mut out).await.unwrap();
        steps += 1;
        assert!(
            out.len() <= PAGE,
            "step {steps}: {} events at once",
            out.len()
        );
        seqs.extend(out.iter().map(|d| d.event.seq));
    }
    assert_consecutive("the joining feed", &room, &seqs);
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(seqs.last(), Some(&(head + 1)));
    assert_eq!(feed.lags(), 0, "paging is not a lag");
    // The live event was stored before the catch-up read the head, so it
    // comes with the last page; its queued copy is a dropped duplicate.
    assert_eq!(
        steps,
        (head as usize + 1 - PAGE).div_ceil(PAGE),
        "one page per step"
    );
    sequencer.shutdown().await;
}
