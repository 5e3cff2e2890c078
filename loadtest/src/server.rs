//! Server-side figures from the server's Prometheus `/metrics`
//! (`--server-metrics URL`): CPU seconds, resident memory, connections and
//! router deliveries, sampled before and after a run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::http;

/// One reading of `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerSample {
    /// `process_cpu_seconds_total`.
    pub cpu_seconds: f64,
    /// `process_resident_memory_bytes`.
    pub rss_bytes: f64,
    /// `process_open_fds`.
    pub open_fds: f64,
    /// `axon_connections` (native connections, all faces).
    pub connections: f64,
    /// `axon_router_deliveries_total`.
    pub deliveries: f64,
    /// `axon_sequencer_events_total`.
    pub events: f64,
    /// `axon_router_lagged_total`.
    pub lagged: f64,
}

/// Reads `/metrics` at a URL.
#[derive(Debug, Clone)]
pub struct MetricsProbe {
    url: String,
}

impl MetricsProbe {
    /// A probe of `url` (e.g. `http://127.0.0.1:9108/metrics`).
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }

    /// Reads the server's figures now.
    pub async fn sample(&self) -> anyhow::Result<ServerSample> {
        let text = http::get_text(&self.url).await?;
        Ok(ServerSample::parse(&text))
    }
}

impl ServerSample {
    /// Picks the figures out of a Prometheus text exposition; a metric with
    /// labels is summed over them, a missing one reads 0.
    pub fn parse(text: &str) -> Self {
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let Some((name_labels, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = name_labels.split('{').next().unwrap_or(name_labels);
            if let Ok(v) = value.parse::<f64>() {
                *sums.entry(name).or_default() += v;
            }
        }
        let get = |n: &str| sums.get(n).copied().unwrap_or(0.0);
        Self {
            cpu_seconds: get("process_cpu_seconds_total"),
            rss_bytes: get("process_resident_memory_bytes"),
            open_fds: get("process_open_fds"),
            connections: get("axon_connections"),
            deliveries: get("axon_router_deliveries_total"),
            events: get("axon_sequencer_events_total"),
            lagged: get("axon_router_lagged_total"),
        }
    }
}

/// The server's side of a run: the difference of two samples, and the
/// memory at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFigures {
    /// CPU seconds the server spent during the run.
    pub cpu_seconds: f64,
    /// Resident memory at the start, bytes.
    pub rss_start_bytes: f64,
    /// Resident memory at the end (or at the peak of a hold), bytes.
    pub rss_end_bytes: f64,
    /// Native connections at the end.
    pub connections: f64,
    /// Router deliveries during the run.
    pub deliveries: f64,
    /// Events sequenced during the run.
    pub events: f64,
    /// Deliveries that found a full queue during the run.
    pub lagged: f64,
    /// Server CPU per delivered event, µs (deliveries counted by the
    /// load generator's receivers).
    pub cpu_us_per_delivery: Option<f64>,
}

impl ServerFigures {
    /// From samples taken before and after; `delivered` is what the
    /// receivers counted.
    pub fn between(before: &ServerSample, after: &ServerSample, delivered: u64) -> Self {
        let cpu = after.cpu_seconds - before.cpu_seconds;
        Self {
            cpu_seconds: cpu,
            rss_start_bytes: before.rss_bytes,
            rss_end_bytes: after.rss_bytes,
            connections: after.connections,
            deliveries: after.deliveries - before.deliveries,
            events: after.events - before.events,
            lagged: after.lagged - before.lagged,
            cpu_us_per_delivery: (delivered > 0).then(|| cpu * 1e6 / delivered as f64),
        }
    }
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat`, plus those of its waited-for children.
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold
    // spaces): utime is field 14, stime 15, cutime 16, cstime 17.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = (11..=14)
        .filter_map(|i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sums_labelled_metrics() {
        let text = "# HELP process_cpu_seconds_total x\n\
            # TYPE process_cpu_seconds_total counter\n\
            process_cpu_seconds_total 12.5\n\
            process_resident_memory_bytes 1048576\n\
            axon_connections{face=\"ws\"} 10\n\
            axon_connections{face=\"quic\"} 5\n\
            axon_router_deliveries_total 1000\n";
        let s = ServerSample::parse(text);
        assert_eq!(s.cpu_seconds, 12.5);
        assert_eq!(s.rss_bytes, 1_048_576.0);
        assert_eq!(s.connections, 15.0);
        assert_eq!(s.deliveries, 1000.0);
        assert_eq!(s.events, 0.0);
        let after = ServerSample {
            cpu_seconds: 14.5,
            deliveries: 3000.0,
            ..s.clone()
        };
        let f = ServerFigures::between(&s, &after, 2000);
        assert_eq!(f.cpu_seconds, 2.0);
        assert_eq!(f.deliveries, 2000.0);
        assert_eq!(f.cpu_us_per_delivery, Some(1000.0));
    }

    #[test]
    fn own_cpu_time_is_read() {
        let before = own_cpu_seconds();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let used = own_cpu_seconds() - before;
        assert!(used >= 0.1, "300 ms of spinning read as {used} s of CPU");
    }
}
