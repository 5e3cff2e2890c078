//! The scenarios, and what they share: [`Run`] (bounds, errors, the
//! server probe, the progress bar).

pub mod churn;
pub mod connections;
pub mod fanout;
pub mod matrix;
pub mod native;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Common, MAX_DURATION_SECS};
use crate::record::Errors;
use crate::report::{Report, si};
use crate::server::{MetricsProbe, ServerFigures, ServerSample, own_cpu_seconds};

/// Counters the progress bar shows while a run goes.
#[derive(Debug, Default)]
pub struct Live {
    /// Acknowledged sends.
    pub sent: AtomicU64,
    /// Deliveries counted by receivers.
    pub delivered: AtomicU64,
    /// Open connections (for the ramp scenarios).
    pub connections: AtomicU64,
}

/// One run: its bounds and what every scenario records.
pub struct Run {
    /// The shared options.
    pub common: Common,
    /// Errors by code.
    pub errors: Arc<Errors>,
    /// Live counters.
    pub live: Arc<Live>,
    probe: Option<MetricsProbe>,
    before: Option<ServerSample>,
    cpu_before: f64,
}

impl Run {
    /// Checks the bounds and reads the server's metrics once.
    pub async fn start(common: Common) -> anyhow::Result<Self> {
        if common.duration_secs == 0 || common.duration_secs > MAX_DURATION_SECS {
            bail!("--duration-secs must be 1..={MAX_DURATION_SECS}");
        }
        let probe = common.server_metrics.clone().map(MetricsProbe::new);
        let before =
            match &probe {
                Some(p) => Some(p.sample().await.map_err(|e| {
                    e.context("reading --server-metrics (is the admin listener up?)")
                })?),
                None => None,
            };
        Ok(Self {
            common,
            errors: Arc::new(Errors::default()),
            live: Arc::new(Live::default()),
            probe,
            before,
            cpu_before: own_cpu_seconds(),
        })
    }

    /// Reads the server's figures and this process's CPU again: what
    /// `finish` reports is then the measured phase alone, without the
    /// set-up (users, rooms, connections) before it.
    pub async fn begin_measuring(&mut self) {
        if let Some(probe) = &self.probe
            && let Ok(sample) = probe.sample().await
        {
            self.before = Some(sample);
        }
        self.cpu_before = own_cpu_seconds();
    }

    /// The measured phase's length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.common.duration_secs)
    }

    /// Starts a progress bar over `length` that shows the live counters;
    /// stop it with [`ProgressBar::finish_and_clear`].
    pub fn progress(&self, phase: &str, length: Duration) -> ProgressBar {
        let bar = ProgressBar::new(length.as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_owned());
        let live = Arc::clone(&self.live);
        let errors = Arc::clone(&self.errors);
        let ticker = bar.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let mut last = (0u64, 0u64, Instant::now());
            while !ticker.is_finished() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let sent = live.sent.load(Ordering::Relaxed);
                let delivered = live.delivered.load(Ordering::Relaxed);
                let secs = last.2.elapsed().as_secs_f64().max(1e-3);
                ticker.set_position(started.elapsed().as_millis() as u64);
                ticker.set_message(format!(
                    "sent {} ({}/s)  delivered {} ({}/s)  conns {}  errors {}",
                    sent,
                    si((sent - last.0) as f64 / secs),
                    delivered,
                    si((delivered - last.1) as f64 / secs),
                    live.connections.load(Ordering::Relaxed),
                    errors.total()
                ));
                last = (sent, delivered, Instant::now());
            }
        });
        bar
    }

    /// Fills the errors, CPU and server figures of `report`.
    pub async fn finish(&self, report: &mut Report) {
        report.errors = self.errors.snapshot();
        report.client_cpu_secs = own_cpu_seconds() - self.cpu_before;
        if let (Some(probe), Some(before)) = (&self.probe, &self.before) {
            match probe.sample().await {
                Ok(after) => {
                    report.server = Some(ServerFigures::between(before, &after, report.delivered));
                }
                Err(e) => report
                    .notes
                    .push(format!("could not read --server-metrics at the end: {e:#}")),
            }
        }
        report.finish_rates();
    }

    /// The server's figures now (for a scenario that reads them mid-run).
    pub async fn server_sample(&self) -> Option<ServerSample> {
        self.probe.as_ref()?.sample().await.ok()
    }
}

/// A ticker for the `index`-th of `count` paced senders sharing one
/// interval, its first tick offset by `index / count` of the interval.
/// Without the offsets every sender ticks at the same instants, and a run
/// "at half the maximum rate" is bursts of `count` sends at once whose
/// latency is the burst's, not the rate's.
pub fn staggered_ticker(
    interval: Duration,
    index: usize,
    count: usize,
    behavior: tokio::time::MissedTickBehavior,
) -> tokio::time::Interval {
    let phase = interval.mul_f64(index as f64 / count.max(1) as f64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, interval);
    ticker.set_missed_tick_behavior(behavior);
    ticker
}

#[cfg(test)]
mod ticker_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn staggered_tickers_spread_over_the_interval() {
        let start = tokio::time::Instant::now();
        let interval = Duration::from_millis(100);
        let mut tickers: Vec<_> = (0..4)
            .map(|i| staggered_ticker(interval, i, 4, tokio::time::MissedTickBehavior::Skip))
            .collect();
        let mut ticks = Vec::new();
        for t in &mut tickers {
            ticks.push(t.tick().await - start);
        }
        assert_eq!(ticks, [0, 25, 50, 75].map(Duration::from_millis));
        assert_eq!(tickers[1].tick().await - start, Duration::from_millis(125));
    }
}
