//! One Matrix `/sync` answered in process: the request goes through the
//! adapter's whole stack (routing, auth, the filter, the build, the JSON
//! encoding) as [`MatrixApi::handle`] serves it, without the TCP and HTTP
//! framing around it. Ten members share a room and use the load
//! generator's filter (a timeline of messages, lazy-loaded members).
//!
//! - `incremental/1 event` and `incremental/5 events`: a member's sync
//!   after one or five new messages from the others, what each member of a
//!   busy room answers over and over under a Matrix load;
//! - `up to date`: a sync that finds nothing (`timeout=0`), what a
//!   long-poll costs before it waits.
//!
//! The messages are sent outside the timed part; only the `/sync` is
//! timed. The allocator is the server's (mimalloc).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use axon_core::store::{AccountStore, Store, TimelineStore};
use axon_core::{
    Accounts, Ephemeral, RoomRouter, Sequencer, SequencerConfig, ServerName, Services,
};
use axon_matrix::{MatrixApi, MatrixConfig, RateLimit};
use axon_storage::{Durability, EmbeddedOptions, EmbeddedStore};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::Full;
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MEMBERS: usize = 10;

/// The adapter over a fresh embedded store, with rate limits off.
struct Bench {
    api: MatrixApi,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

struct Member {
    token: String,
    filter: String,
}

impl Bench {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let api = runtime.block_on(async {
            // The sends are not timed: buffered writes keep their fsyncs
            // from stretching the run.
            let options = EmbeddedOptions {
                durability: Durability::Buffered {
                    flush_interval: Duration::from_secs(1),
                },
                ..EmbeddedOptions::default()
            };
            let store = Arc::new(EmbeddedStore::open(dir.path(), options).expect("open store"));
            let router = Arc::new(RoomRouter::new());
            let timeline: Arc<dyn TimelineStore> = store.clone();
            let sequencer =
                Sequencer::start(timeline, Arc::clone(&router), SequencerConfig::default())
                    .await
                    .expect("sequencer");
            let accounts_store: Arc<dyn AccountStore> = store.clone();
            let server = ServerName::parse("bench.example").expect("server name literal");
            let accounts = Accounts::new(accounts_store, server, None);
            let store: Arc<dyn Store> = store;
            let ephemeral = Ephemeral::start(Arc::clone(&router), Arc::clone(&store));
            let services = Services {
                sequencer,
                store,
                accounts,
                router,
                ephemeral,
            };
            let off = RateLimit {
                per_second: 0,
                burst: 0,
            };
            let config = MatrixConfig {
                per_user: off,
                per_ip: off,
                ..MatrixConfig::default()
            };
            MatrixApi::new(services, config)
        });
        Self {
            api,
            runtime,
            _dir: dir,
        }
    }

    /// One request; the JSON answer, or a panic naming what failed (the
    /// set-up of a benchmark has no other way to fail).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let req = request(method, path, token, body);
        let response = self.runtime.block_on(self.api.handle(req, None));
        assert!(
            response.status().is_success(),
            "{method} {path}: {} {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        );
        serde_json::from_slice(response.body()).expect("JSON answer")
    }

    /// Ten members in one room, each with the load generator's filter and
    /// a token after an initial sync; returns the room and the members.
    fn room(&self) -> (String, Vec<Member>) {
        let mut tokens = Vec::new();
        for i in 0..MEMBERS {
            let body = json!({
                "username": format!("member{i}"),
                "password": "bench password",
                "auth": {"type": "m.login.dummy"},
            });
            let reply = self.call("POST", "/_matrix/client/v3/register", None, Some(body));
            tokens.push(str_of(&reply, "access_token"));
        }
        let created = self.call(
            "POST",
            "/_matrix/client/v3/createRoom",
            Some(&tokens[0]),
            Some(json!({"preset": "public_chat", "name": "bench"})),
        );
        let room = str_of(&created, "room_id");
        for token in &tokens[1..] {
            let path = format!("/_matrix/client/v3/rooms/{room}/join");
            self.call("POST", &path, Some(token), Some(json!({})));
        }
        let filter = json!({
            "room": {
                "timeline": {"limit": 50, "types": ["m.room.message"]},
                "state": {"lazy_load_members": true},
                "ephemeral": {"limit": 0},
                "account_data": {"limit": 0},
            },
            "presence": {"limit": 0},
            "account_data": {"limit": 0},
        });
        let members = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let path = format!("/_matrix/client/v3/user/@member{i}:bench.example/filter");
                let reply = self.call("POST", &path, Some(&token), Some(filter.clone()));
                Member {
                    filter: str_of(&reply, "filter_id"),
                    token,
                }
            })
            .collect();
        (room, members)
    }

    fn say(&self, room: &str, member: &Member, txn: u64) {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/b{txn}");
        let body = json!({"msgtype": "m.text", "body": "a message of a typical length in a busy room, a few words more than hello"});
        self.call("PUT", &path, Some(&member.token), Some(body));
    }

    /// `member`'s `/sync` after `since` (`None`: initial), timed; returns
    /// the time and the next token.
    fn sync(&self, member: &Member, since: Option<&str>) -> (Duration, String) {
        let path = match since {
            Some(since) => format!(
                "/_matrix/client/v3/sync?filter={}&timeout=0&since={since}",
                member.filter
            ),
            None => format!("/_matrix/client/v3/sync?filter={}&timeout=0", member.filter),
        };
        let req = request("GET", &path, Some(&member.token), None);
        let start = Instant::now();
        let response = self.runtime.block_on(self.api.handle(req, None));
        let took = start.elapsed();
        assert!(
            response.status().is_success(),
            "sync: {}",
            response.status()
        );
        let reply: Value = serde_json::from_slice(response.body()).expect("JSON answer");
        (took, str_of(&reply, "next_batch"))
    }
}

fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    req.body(Full::new(body)).expect("a valid request")
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

fn sync(c: &mut Criterion) {
    let bench = Bench::new();
    let (room, members) = bench.room();
    let reader = &members[0];
    let (_, mut since) = bench.sync(reader, None);
    let mut txn = 0;
    let mut g = c.benchmark_group("matrix_sync");
    for events in [1, 5] {
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("incremental/{events} events"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..events {
                        txn += 1;
                        let sender = &members[1 + (txn as usize % (MEMBERS - 1))];
                        bench.say(&room, sender, txn);
                    }
                    let (took, next) = bench.sync(reader, Some(&since));
                    total += took;
                    since = next;
                }
                total
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("up to date", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, next) = bench.sync(reader, Some(&since));
                total += took;
                since = next;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, sync);
criterion_main!(benches);
