//! `connections`: ramp to `--count` idle native connections (ws, wss or
//! quic) at `--rate` per second, hold them `--hold-secs`, close them.
//!
//! Each connection is an axon-client [`Client`] authenticated with the
//! token of one of `--users` users (made through the Matrix API), and
//! then idle but for the library's heartbeats; it never reconnects, so a
//! connection the server drops shows as not held. WebSocket connections
//! rotate over `--sources` loopback source addresses; QUIC connections
//! share one client endpoint (UDP socket) per
//! [`native::CONNECTIONS_PER_QUIC_ENDPOINT`] connections. At most
//! [`MAX_IN_FLIGHT`] connects are under way at once per process, so a
//! server slower than `--rate` shows as a lower achieved rate.
//!
//! `--processes N` spreads the connections over N worker processes
//! ([`super::worker`]): they ramp together, report when all theirs are
//! open, hold until the parent has read the server's memory, and close
//! when it says so.
//!
//! Measured: the connect rate achieved, the handshake latency (TCP or
//! QUIC, TLS, WebSocket upgrade, `Hello` → `Welcome`), the connections
//! held, errors by code, and from `--server-metrics` the server's resident
//! memory before the ramp and during the hold (2 s after the last
//! connection opened), whence the server memory per connection, and the
//! connections the server counts.
//!
//! ```sh
//! axon --config deploy/loadtest.toml &
//! axon-loadtest --server-metrics http://127.0.0.1:9108/metrics \
//!     connections --transport ws --count 19000 --rate 2000 --processes 2
//! # QUIC: one process is enough (the server's native.max_connections
//! # must allow the count: AXON_NATIVE__MAX_CONNECTIONS=110000)
//! axon-loadtest --server-metrics http://127.0.0.1:9108/metrics \
//!     --ca-file data-loadtest/tls/dev-cert.pem \
//!     connections --transport quic --count 100000 --rate 300
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axon_client::{Client, ConnectionState, ReconnectPolicy};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::native::{self, Dialer, Face};
use super::worker::{self, Instructions, Job as WorkerJob, Message, Workers};
use super::{Live, Run};
use crate::cli::{ConnectionsArgs, MAX_DURATION_SECS};
use crate::http::BaseUrl;
use crate::payload;
use crate::provision::Provisioner;
use crate::record::{Errors, Recorded, Series};
use crate::report::{Report, bytes};

/// Connects under way at once, per process.
pub const MAX_IN_FLIGHT: usize = 1_000;
/// Most connections a run may ask for.
const MAX_COUNT: usize = 1_000_000;
/// Most worker processes.
const MAX_PROCESSES: usize = 64;
/// Pause between the last connection opening and reading the server's
/// memory, so that its allocator settles.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest the close of all connections may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// One process's share of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The face.
    pub face: Face,
    /// The listener (loopback).
    pub target: std::net::SocketAddr,
    /// CA certificate for wss and quic.
    pub ca_file: Option<PathBuf>,
    /// Access tokens; connection `g` uses `tokens[g % len]`.
    pub tokens: Vec<String>,
    /// Connections of this share.
    pub count: usize,
    /// Index of the share's first connection in the whole run (spreads
    /// users and source addresses evenly over the shares).
    pub offset: usize,
    /// Connects per second of this share.
    pub rate: f64,
    /// Loopback source addresses (TCP) to rotate over.
    pub sources: usize,
    /// Start of the run (Unix ns), second 0 of the handshake series.
    pub start_ns: u64,
}

/// What a share did; shares add up with [`Outcome::merge`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Connects tried.
    pub attempted: u64,
    /// Connects that reached `Welcome`.
    pub opened: u64,
    /// Connections still connected at the end of the hold.
    pub held: u64,
    /// From the first connect to the last one finished, seconds (the
    /// longest of the shares).
    pub ramp_secs: f64,
    /// Closing them all, seconds (the longest of the shares).
    pub close_secs: f64,
    /// Handshake latencies.
    pub handshake: Recorded,
    /// Errors by code (a worker's; in-process errors go to the run's).
    pub errors: BTreeMap<String, u64>,
    /// Connects that failed for want of file descriptors.
    pub out_of_files: u64,
    /// Resident memory of the load generator's processes before the ramp
    /// and during the hold, bytes.
    pub client_rss_before: u64,
    /// See `client_rss_before`.
    pub client_rss_held: u64,
}

impl Outcome {
    /// Adds another share's outcome to this one.
    pub fn merge(&mut self, other: Outcome) {
        self.attempted += other.attempted;
        self.opened += other.opened;
        self.held += other.held;
        self.ramp_secs = self.ramp_secs.max(other.ramp_secs);
        self.close_secs = self.close_secs.max(other.close_secs);
        // Bucket lists add up by concatenation: recording them adds counts.
        self.handshake.total.extend(other.handshake.total);
        if self.handshake.seconds.len() < other.handshake.seconds.len() {
            self.handshake
                .seconds
                .resize_with(other.handshake.seconds.len(), Vec::new);
        }
        for (mine, theirs) in self
            .handshake
            .seconds
            .iter_mut()
            .zip(other.handshake.seconds)
        {
            mine.extend(theirs);
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.out_of_files += other.out_of_files;
        self.client_rss_before += other.client_rss_before;
        self.client_rss_held += other.client_rss_held;
    }
}

/// Server memory per connection, bytes: the growth of the server's
/// resident memory from before the ramp to the hold, over the connections
/// held. `None` without connections.
pub fn memory_per_connection(rss_before: f64, rss_held: f64, connections: u64) -> Option<f64> {
    (connections > 0).then(|| (rss_held - rss_before) / connections as f64)
}

/// Splits `count` connections over `processes` shares, the first ones one
/// larger: (offset, count) each.
pub fn split(count: usize, processes: usize) -> Vec<(usize, usize)> {
    let processes = processes.max(1);
    let mut offset = 0;
    (0..processes)
        .map(|p| {
            let n = count / processes + usize::from(p < count % processes);
            let share = (offset, n);
            offset += n;
            share
        })
        .collect()
}

/// Runs the scenario.
pub async fn run(run: Run, args: ConnectionsArgs) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("finding this executable for --processes")?;
    run_with(run, args, &exe).await
}

/// Runs the scenario; workers are started from `exe`.
pub async fn run_with(run: Run, args: ConnectionsArgs, exe: &Path) -> anyhow::Result<Report> {
    if args.count == 0 || args.count > MAX_COUNT {
        bail!("--count must be 1..={MAX_COUNT}");
    }
    if args.rate == 0 {
        bail!("--rate must be at least 1");
    }
    if args.processes == 0 || args.processes > MAX_PROCESSES {
        bail!("--processes must be 1..={MAX_PROCESSES}");
    }
    if args.hold_secs > MAX_DURATION_SECS {
        bail!("--hold-secs must be at most {MAX_DURATION_SECS}");
    }
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    let face = Face::parse(&args.transport)?;
    let target = native::target(face, args.addr.as_deref()).await?;
    let mut report = Report::new("connections");
    if run.common.server_metrics.is_none() {
        report.notes.push(
            "no --server-metrics: server memory per connection and the server's connection count were not measured"
                .into(),
        );
    }
    if args.processes == 1 {
        let files = args.count as u64 * face.files_per_connection() + 64;
        crate::net::check_file_budget(files, "connections")?;
    }

    let base = BaseUrl::parse(&run.common.http).await?;
    eprintln!(
        "setting up {} users through {}",
        args.users, run.common.http
    );
    let provisioner = Provisioner::new(base, run.common.registration_token.clone());
    let tokens: Vec<String> = provisioner
        .users(args.users)
        .await?
        .into_iter()
        .map(|u| u.token)
        .collect();

    let before = run.server_sample().await;
    let start_ns = payload::now_ns();
    let rate = args.rate as f64 / args.processes as f64;
    let jobs: Vec<Job> = split(args.count, args.processes)
        .into_iter()
        .map(|(offset, count)| Job {
            face,
            target,
            ca_file: run.common.ca_file.clone(),
            tokens: tokens.clone(),
            count,
            offset,
            rate,
            sources: run.common.sources,
            start_ns,
        })
        .collect();
    eprintln!(
        "opening {} {} connections at {}/s over {} process(es)",
        args.count, args.transport, args.rate, args.processes
    );
    let ramp = Duration::from_secs_f64(args.count as f64 / args.rate as f64);
    let bar = run.progress("ramp", ramp);
    let mut shares = Shares::start(&run, &jobs, exe).await?;
    let open = shares.held().await?;
    bar.finish_and_clear();

    eprintln!("{open} connections open; holding {} s", args.hold_secs);
    let bar = run.progress("hold", Duration::from_secs(args.hold_secs));
    let hold_started = Instant::now();
    tokio::time::sleep(SETTLE.min(Duration::from_secs(args.hold_secs))).await;
    let at_hold = run.server_sample().await;
    let client_rss_held = own_rss_bytes();
    tokio::time::sleep(Duration::from_secs(args.hold_secs).saturating_sub(hold_started.elapsed()))
        .await;
    bar.finish_and_clear();
    eprintln!("closing");
    let mut outcome = shares.close().await?;
    if outcome.client_rss_held == 0 {
        outcome.client_rss_held = client_rss_held;
    }
    let after = run.server_sample().await;

    let handshake = Series::new(start_ns);
    handshake.import(&outcome.handshake);
    report.handshake = Some(handshake.summary());
    report.duration_secs = outcome.ramp_secs;
    for (code, n) in &outcome.errors {
        run.errors.add_n(code.clone(), *n);
    }
    report.figure("transport", args.transport.clone());
    report.figure("processes", args.processes as u64);
    report.figure("connections asked", args.count as u64);
    report.figure("connections opened", outcome.opened);
    report.figure("connections held (to the end of the hold)", outcome.held);
    report.figure("target connect rate", format!("{}/s", args.rate));
    report.figure(
        "connect rate achieved",
        format!(
            "{:.0}/s",
            outcome.opened as f64 / outcome.ramp_secs.max(1e-3)
        ),
    );
    report.figure("hold", format!("{} s", args.hold_secs));
    report.figure("close", format!("{:.1} s", outcome.close_secs));
    if face == Face::Quic {
        report.figure(
            "client QUIC endpoints (UDP sockets)",
            jobs.iter()
                .map(|j| native::quic_endpoints_for(j.count) as u64)
                .sum::<u64>(),
        );
    }
    if outcome.client_rss_held > 0 && outcome.opened > 0 {
        report.figure(
            "client memory per connection",
            bytes(
                outcome
                    .client_rss_held
                    .saturating_sub(outcome.client_rss_before) as f64
                    / outcome.opened as f64,
            ),
        );
    }
    if let (Some(before), Some(held)) = (&before, &at_hold) {
        report.figure("server RSS before", bytes(before.rss_bytes));
        report.figure("server RSS at hold", bytes(held.rss_bytes));
        report.figure("server connections at hold", held.connections as u64);
        if let Some(per) = memory_per_connection(before.rss_bytes, held.rss_bytes, outcome.opened) {
            report.figure("server memory per connection (bytes)", per.round());
            report.figure("server memory per connection", bytes(per));
            // The allocator keeps freed memory: a server that held
            // connections before reuses it and shows less growth.
            report.notes.push(
                "server memory per connection is the RSS growth: measure on a freshly started server"
                    .into(),
            );
        }
        if held.connections < outcome.opened as f64 {
            report.notes.push(format!(
                "the server counted {} connections at the hold, {} were opened",
                held.connections, outcome.opened
            ));
        }
    }
    if let Some(after) = &after {
        report.figure("server RSS after close", bytes(after.rss_bytes));
    }
    if outcome.out_of_files > 0 {
        report.notes.push(format!(
            "{} connects failed because a process ran out of open files (limit {}); use more --processes",
            outcome.out_of_files,
            crate::net::open_file_limit().map_or_else(|| "unknown".into(), |l| l.to_string())
        ));
    }
    if outcome.held < outcome.opened {
        report.notes.push(format!(
            "{} connections were lost during the hold",
            outcome.opened - outcome.held
        ));
    }
    run.finish(&mut report).await;
    if let (Some(server), Some(held)) = (&mut report.server, &at_hold) {
        server.rss_end_bytes = held.rss_bytes;
        server.connections = held.connections;
    }
    Ok(report)
}

/// The shares of a run: in this process, or in workers.
enum Shares {
    Local(Box<Opened>),
    Workers { workers: Workers, live: Arc<Live> },
}

impl Shares {
    async fn start(run: &Run, jobs: &[Job], exe: &Path) -> anyhow::Result<Self> {
        if let [job] = jobs {
            let opened = open(job, &run.live, &run.errors).await?;
            return Ok(Shares::Local(Box::new(opened)));
        }
        let worker_jobs: Vec<WorkerJob> =
            jobs.iter().cloned().map(WorkerJob::Connections).collect();
        let workers = Workers::spawn(exe, &worker_jobs).await?;
        Ok(Shares::Workers {
            workers,
            live: Arc::clone(&run.live),
        })
    }

    /// Waits until every share is open; returns the connections open.
    async fn held(&mut self) -> anyhow::Result<u64> {
        match self {
            Shares::Local(opened) => Ok(opened.clients.len() as u64),
            Shares::Workers { workers, live } => {
                let mut open = vec![0u64; workers.len()];
                let mut held = vec![false; workers.len()];
                while !held.iter().all(|h| *h) {
                    let (i, message) = workers
                        .next()
                        .await
                        .context("workers ended before holding")?;
                    match message {
                        Some(Message::Progress { open: n }) => open[i] = n,
                        Some(Message::Held { open: n }) => {
                            open[i] = n;
                            held[i] = true;
                        }
                        Some(Message::Failed { error }) => bail!("worker {i}: {error}"),
                        Some(Message::Done { .. }) => bail!("worker {i} closed before the hold"),
                        None => bail!("worker {i} exited before the hold"),
                    }
                    live.connections.store(open.iter().sum(), Ordering::Relaxed);
                }
                Ok(open.iter().sum())
            }
        }
    }

    /// Closes every share; their outcomes, merged.
    async fn close(self) -> anyhow::Result<Outcome> {
        match self {
            Shares::Local(opened) => Ok(close(*opened).await),
            Shares::Workers { mut workers, .. } => {
                workers.tell_all(worker::CLOSE).await?;
                let mut outcome = Outcome::default();
                let mut done = vec![false; workers.len()];
                while !done.iter().all(|d| *d) {
                    let (i, message) = workers
                        .next()
                        .await
                        .context("workers ended before reporting")?;
                    match message {
                        Some(Message::Done { outcome: o }) => {
                            outcome.merge(*o);
                            done[i] = true;
                        }
                        Some(Message::Progress { .. } | Message::Held { .. }) => {}
                        Some(Message::Failed { error }) => bail!("worker {i}: {error}"),
                        // A worker's output ends after its result.
                        None if done[i] => {}
                        None => bail!("worker {i} exited without its result"),
                    }
                }
                workers.wait().await;
                Ok(outcome)
            }
        }
    }
}

/// A share's open connections, and what the ramp recorded.
pub struct Opened {
    clients: Vec<Client>,
    outcome: Outcome,
    handshake: Arc<Series>,
}

/// Opens a share's connections at its rate; returns when every connect
/// has succeeded or failed.
pub async fn open(job: &Job, live: &Arc<Live>, errors: &Arc<Errors>) -> anyhow::Result<Opened> {
    let client_rss_before = own_rss_bytes();
    let dialer = Arc::new(Dialer::new(
        job.face,
        job.target,
        job.ca_file.as_deref(),
        job.sources,
        native::quic_endpoints_for(job.count),
    )?);
    if job.tokens.is_empty() {
        bail!("a share without users");
    }
    let handshake = Series::new(job.start_ns);
    let next = Arc::new(AtomicUsize::new(0));
    let out_of_files = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let interval = 1.0 / job.rate.max(1e-3);
    let job = Arc::new(job.clone());
    let mut connectors = JoinSet::new();
    for _ in 0..job.count.clamp(1, MAX_IN_FLIGHT) {
        let (job, dialer, next, live, errors, out_of_files) = (
            Arc::clone(&job),
            Arc::clone(&dialer),
            Arc::clone(&next),
            Arc::clone(live),
            Arc::clone(errors),
            Arc::clone(&out_of_files),
        );
        let mut latency = handshake.local();
        connectors.spawn(async move {
            let mut clients = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= job.count {
                    break;
                }
                let due = started + Duration::from_secs_f64(i as f64 * interval);
                tokio::time::sleep_until(due.into()).await;
                let g = job.offset + i;
                let config = dialer.config(
                    g,
                    &job.tokens[g % job.tokens.len()],
                    ReconnectPolicy::never(),
                );
                let t = Instant::now();
                match Client::connect(config).await {
                    Ok(client) => {
                        latency.record(t.elapsed().as_nanos() as u64);
                        live.connections.fetch_add(1, Ordering::Relaxed);
                        clients.push(client);
                    }
                    Err(e) => {
                        if native::is_out_of_files(&e) {
                            out_of_files.fetch_add(1, Ordering::Relaxed);
                        }
                        errors.add(native::error_code(&e));
                    }
                }
            }
            clients
        });
    }
    let mut clients = Vec::with_capacity(job.count);
    while let Some(done) = connectors.join_next().await {
        clients.extend(done.context("connector task")?);
    }
    let outcome = Outcome {
        attempted: job.count as u64,
        opened: clients.len() as u64,
        ramp_secs: started.elapsed().as_secs_f64(),
        out_of_files: out_of_files.load(Ordering::Relaxed),
        client_rss_before,
        ..Outcome::default()
    };
    Ok(Opened {
        clients,
        outcome,
        handshake,
    })
}

/// Counts the connections still up, closes them all, and completes the
/// share's outcome.
pub async fn close(opened: Opened) -> Outcome {
    let Opened {
        clients,
        mut outcome,
        handshake,
    } = opened;
    outcome.held = clients
        .iter()
        .filter(|c| c.state() == ConnectionState::Connected)
        .count() as u64;
    let started = Instant::now();
    let mut closing = JoinSet::new();
    for chunk in clients.chunks(1_000) {
        let chunk = chunk.to_vec();
        closing.spawn(async move {
            futures::future::join_all(chunk.iter().map(Client::close)).await;
        });
    }
    let all_closed = async { while closing.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, all_closed).await;
    outcome.close_secs = started.elapsed().as_secs_f64();
    outcome.handshake = handshake.export();
    outcome
}

/// The worker side of a share: open, report, hold until told, close,
/// report.
pub async fn work(job: Job, instructions: &mut Instructions) -> anyhow::Result<()> {
    crate::net::check_file_budget(
        job.count as u64 * job.face.files_per_connection() + 64,
        "this worker's share",
    )?;
    let live = Arc::new(Live::default());
    let errors = Arc::new(Errors::default());
    let ticker = {
        let live = Arc::clone(&live);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                worker::emit(&Message::Progress {
                    open: live.connections.load(Ordering::Relaxed),
                });
            }
        })
    };
    let opened = open(&job, &live, &errors).await;
    ticker.abort();
    let mut opened = opened?;
    worker::emit(&Message::Held {
        open: opened.clients.len() as u64,
    });
    tokio::time::sleep(SETTLE).await;
    opened.outcome.client_rss_held = own_rss_bytes();
    // Hold until the parent says close (or goes away).
    while let Some(line) = instructions.next_line().await? {
        if line.trim() == worker::CLOSE {
            break;
        }
    }
    let mut outcome = close(opened).await;
    outcome.errors = errors.snapshot();
    worker::emit(&Message::Done {
        outcome: Box::new(outcome),
    });
    Ok(())
}

/// Resident memory of this process, bytes (`VmRSS`), 0 if unknown.
fn own_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            face: Face::Quic,
            target: "127.0.0.1:8443".parse().unwrap(),
            ca_file: Some("data/tls/dev-cert.pem".into()),
            tokens: vec!["axat_a".into(), "axat_b".into()],
            count: 50_000,
            offset: 50_000,
            rate: 500.0,
            sources: 8,
            start_ns: 1_795_339_845_000_000_000,
        }
    }

    #[test]
    fn jobs_round_trip_as_worker_json() {
        let job = WorkerJob::Connections(job());
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains(r#""scenario":"connections""#), "{text}");
        assert!(text.contains(r#""face":"quic""#), "{text}");
        assert_eq!(serde_json::from_str::<WorkerJob>(&text).unwrap(), job);
    }

    #[test]
    fn shares_cover_the_count() {
        assert_eq!(split(10, 3), [(0, 4), (4, 3), (7, 3)]);
        assert_eq!(split(19_000, 2), [(0, 9_500), (9_500, 9_500)]);
        assert_eq!(split(1, 2), [(0, 1), (1, 0)]);
    }

    #[test]
    fn outcomes_merge() {
        let start = payload::now_ns();
        let (a, b) = (Series::new(start), Series::new(start));
        let (mut la, mut lb) = (a.local(), b.local());
        for i in 1..=100u64 {
            la.record_at(start, i * 1_000_000);
            lb.record_at(start + 1_000_000_000, i * 2_000_000);
        }
        drop((la, lb));
        let mut one = Outcome {
            attempted: 10,
            opened: 9,
            held: 9,
            ramp_secs: 2.0,
            close_secs: 1.0,
            handshake: a.export(),
            errors: BTreeMap::from([("connect: timed out".to_owned(), 1)]),
            out_of_files: 0,
            client_rss_before: 100,
            client_rss_held: 1_000,
        };
        let two = Outcome {
            attempted: 10,
            opened: 8,
            held: 7,
            ramp_secs: 3.0,
            close_secs: 0.5,
            handshake: b.export(),
            errors: BTreeMap::from([
                ("connect: timed out".to_owned(), 1),
                ("connect: out of open files (EMFILE)".to_owned(), 1),
            ]),
            out_of_files: 1,
            client_rss_before: 100,
            client_rss_held: 2_000,
        };
        one.merge(two);
        assert_eq!((one.attempted, one.opened, one.held), (20, 17, 16));
        assert_eq!((one.ramp_secs, one.close_secs), (3.0, 1.0));
        assert_eq!(one.errors["connect: timed out"], 2);
        assert_eq!(one.out_of_files, 1);
        assert_eq!((one.client_rss_before, one.client_rss_held), (200, 3_000));
        let merged = Series::new(start);
        merged.import(&one.handshake);
        let s = merged.summary();
        assert_eq!(s.count, 200);
        assert_eq!(s.per_second.len(), 2);
        assert_eq!((s.per_second[0].count, s.per_second[1].count), (100, 100));
        assert!((199_000..=201_000).contains(&s.max_us), "max {}", s.max_us);
    }

    #[test]
    fn memory_per_connection_is_growth_over_connections() {
        let per = memory_per_connection(10_000_000.0, 48_000_000.0, 10_000).unwrap();
        assert_eq!(per, 3_800.0);
        assert_eq!(memory_per_connection(1.0, 2.0, 0), None);
    }
}
