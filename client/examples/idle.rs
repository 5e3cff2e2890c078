//! Opens many idle connections with the client library and holds them, to
//! measure what an idle connection costs the server (docs/benchmarks.md).
//!
//! ```sh
//! axon user create idler && TOKEN=$(axon user token idler)
//! axon &                                   # the server under test
//! BEFORE=$(grep VmRSS /proc/$(pgrep -x axon)/status)
//! cargo run --release -p axon-client --example idle -- \
//!     --url ws://127.0.0.1:8008/_axon/v1/ws --token "$TOKEN" --count 10000 --hold-secs 30
//! # while it holds: grep VmRSS /proc/$(pgrep -x axon)/status
//! ```
//!
//! Every connection authenticates (Hello, Welcome) and then sends nothing
//! but the client's heartbeat pings. Connections are opened 200 at a time.
//! The count is bounded, the hold is bounded, and only the given URL (a
//! loopback address) is contacted.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use axon_client::{Auth, Client, ClientConfig};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Server URL, e.g. ws://127.0.0.1:8008/_axon/v1/ws or quic://127.0.0.1:8443.
    #[arg(long)]
    url: String,
    /// Access token every connection authenticates with.
    #[arg(long)]
    token: String,
    /// Connections to open (at most 18,000: the process file limit is 20,000).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Seconds to hold them once all are open (at most 600).
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// CA certificate (PEM) for wss:// or quic:// with the development certificate.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.count <= 18_000,
        "--count is limited to 18000 (20,000 open files per process)"
    );
    anyhow::ensure!(args.hold_secs <= 600, "--hold-secs is limited to 600");
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.count);
    while clients.len() < args.count {
        let wave = (args.count - clients.len()).min(200);
        let mut pending = Vec::with_capacity(wave);
        for _ in 0..wave {
            let mut config = ClientConfig::new(args.url.clone(), Auth::Token(args.token.clone()));
            if let Some(ca) = &args.ca_file {
                config = config.add_root_pem(ca.clone());
            }
            pending.push(tokio::spawn(Client::connect(config)));
        }
        for p in pending {
            clients.push(p.await.context("connect task")?.context("connect")?);
        }
    }
    println!(
        "{} connections open in {:.1} s; holding for {} s",
        clients.len(),
        started.elapsed().as_secs_f64(),
        args.hold_secs
    );
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    for c in &clients {
        c.close().await;
    }
    println!("closed");
    Ok(())
}
