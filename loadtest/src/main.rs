//! `axon-loadtest`: see the crate documentation and `docs/benchmarks.md`.

use anyhow::bail;
use axon_loadtest::cli::{Cli, Scenario};
use axon_loadtest::scenario::{self, Run};
use clap::Parser as _;

// glibc's malloc was a third of the load generator's CPU at a few hundred
// thousand deliveries per second (per-event allocations across threads);
// mimalloc keeps the generator from being what a run measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // One TLS provider for the process, installed before any TLS config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Scenario::Worker(args) = cli.scenario {
            return scenario::worker::serve(args).await;
        }
        let out = cli.common.out.clone();
        let run = Run::start(cli.common).await?;
        let report = match cli.scenario {
            Scenario::Matrix(args) => scenario::matrix::run(run, args).await?,
            Scenario::Fanout(args) => scenario::fanout::run(run, args).await?,
            Scenario::Connections(args) => scenario::connections::run(run, args).await?,
            Scenario::Churn(args) => scenario::churn::run(run, args).await?,
            Scenario::Worker(_) => {
                bail!("worker is handled above")
            }
        };
        println!("{}", report.table());
        let (json, html) = report.write(&out)?;
        println!("  result: {}\n  report: {}", json.display(), html.display());
        anyhow::Ok(())
    })
}
