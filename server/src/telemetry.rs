//! Metrics and logs: the Prometheus recorder, the catalogue of metric names
//! with their descriptions, and the `tracing` subscriber.
//!
//! Every metric is named `axon_*`. [`CATALOGUE`] lists them all, those
//! recorded here and those recorded by `axon-core` and `axon-storage`;
//! `docs/operations.md` repeats it for operators.

use std::sync::OnceLock;

use anyhow::Context as _;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Kind of a metric, for [`CATALOGUE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (rendered with buckets).
    Histogram,
}

/// One metric: name, kind, unit and description.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// Name, `axon_` prefixed.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Unit.
    pub unit: Unit,
    /// What it measures.
    pub help: &'static str,
}

const fn def(name: &'static str, kind: MetricKind, unit: Unit, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric the server exports.
pub const CATALOGUE: &[MetricDef] = &[
    def(
        "axon_build_info",
        MetricKind::Gauge,
        Unit::Count,
        "Always 1; the version label says which build runs.",
    ),
    def(
        "axon_uptime_seconds",
        MetricKind::Gauge,
        Unit::Seconds,
        "Seconds since the process started.",
    ),
    def(
        "axon_ready",
        MetricKind::Gauge,
        Unit::Count,
        "1 while the server is ready to serve, 0 during startup and shutdown.",
    ),
    def(
        "axon_http_connections_total",
        MetricKind::Counter,
        Unit::Count,
        "HTTP connections accepted, by listener.",
    ),
    def(
        "axon_http_requests_total",
        MetricKind::Counter,
        Unit::Count,
        "Requests answered on the public HTTP listeners, by status.",
    ),
    def(
        "axon_sequencer_events_total",
        MetricKind::Counter,
        Unit::Count,
        "Events sequenced and durably committed.",
    ),
    def(
        "axon_sequencer_batch_events",
        MetricKind::Histogram,
        Unit::Count,
        "Events per group commit.",
    ),
    def(
        "axon_sequencer_commit_seconds",
        MetricKind::Histogram,
        Unit::Seconds,
        "Time of one durable group commit.",
    ),
    def(
        "axon_store_fsync_seconds",
        MetricKind::Histogram,
        Unit::Seconds,
        "Time of one fsync of the embedded store.",
    ),
    def(
        "axon_store_fsync_commits",
        MetricKind::Histogram,
        Unit::Count,
        "Commits one fsync of the embedded store made durable (1: nothing shared).",
    ),
    def(
        "axon_sequencer_write_failures_total",
        MetricKind::Counter,
        Unit::Count,
        "Failed store writes (each stops the shards it held).",
    ),
    def(
        "axon_router_subscriptions",
        MetricKind::Gauge,
        Unit::Count,
        "Room subscriptions of local connections.",
    ),
    def(
        "axon_router_deliveries_total",
        MetricKind::Counter,
        Unit::Count,
        "Events handed to a connection's queue (one per subscriber per event).",
    ),
    def(
        "axon_router_lagged_total",
        MetricKind::Counter,
        Unit::Count,
        "Deliveries that found a full queue (the connection catches up from storage).",
    ),
    def(
        "axon_feed_catch_ups_total",
        MetricKind::Counter,
        Unit::Count,
        "Times a connection's feed caught up from storage after its queue lagged.",
    ),
];

/// The installed recorder's handle, or why it could not be installed.
static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once
/// per process: servers started in one process, as in tests, share it) and
/// describes every metric of [`CATALOGUE`].
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    match HANDLE.get_or_init(|| install().map_err(|e| format!("{e:#}"))) {
        Ok(handle) => Ok(handle.clone()),
        Err(e) => Err(anyhow::anyhow!("installing the metrics recorder: {e}")),
    }
}

fn install() -> anyhow::Result<PrometheusHandle> {
    let commit_buckets = [
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];
    let batch_buckets = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("axon_sequencer_commit_seconds".into()),
            &commit_buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full("axon_store_fsync_seconds".into()),
            &commit_buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full("axon_sequencer_batch_events".into()),
            &batch_buckets,
        )?
        .set_buckets_for_metric(
            Matcher::Full("axon_store_fsync_commits".into()),
            &batch_buckets,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .context("another metrics recorder is already installed in this process")?;
    describe();
    Ok(handle)
}

fn describe() {
    for m in CATALOGUE {
        match m.kind {
            MetricKind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            MetricKind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            MetricKind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
    metrics::gauge!("axon_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Dependencies that log routine work at `info`; a plain `log.level` caps
/// them at `warn`.
const CHATTY_DEPENDENCIES: &[&str] = &["fjall", "lsm_tree"];

/// The filter for `level`: a plain level (`info`) applies to Axon and caps
/// the storage engine's crates (`fjall`, `lsm_tree`) at `warn`; directives
/// (`info,fjall=debug`) are taken as written.
pub fn log_filter(level: &str) -> anyhow::Result<EnvFilter> {
    let mut directives = level.to_owned();
    if !level.contains('=') {
        for dep in CHATTY_DEPENDENCIES {
            directives.push_str(&format!(",{dep}=warn"));
        }
    }
    EnvFilter::builder()
        .parse(&directives)
        .with_context(|| format!("log.level {level:?} is not a valid filter"))
}

/// Installs the global `tracing` subscriber: text or JSON lines on stderr,
/// filtered by `log.level`.
pub fn init_logging(config: &LogConfig) -> anyhow::Result<()> {
    let filter = log_filter(&config.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_doc_lists_every_metric() {
        let doc = include_str!("../../docs/operations.md");
        for m in CATALOGUE {
            assert!(m.name.starts_with("axon_"), "{}", m.name);
            assert!(
                doc.contains(&format!("| `{}", m.name)),
                "{} missing from docs/operations.md",
                m.name
            );
        }
    }

    #[test]
    fn plain_levels_quiet_the_storage_engine() {
        assert!(
            log_filter("info")
                .unwrap()
                .to_string()
                .contains("fjall=warn")
        );
        assert!(
            !log_filter("info,fjall=debug")
                .unwrap()
                .to_string()
                .contains("fjall=warn")
        );
        assert!(log_filter("info,=[").is_err());
    }
}
