//! What a run measures: latency series (HDR histograms, in total and per
//! second), error counts by code, and per-room tallies that find lost and
//! duplicated events by `seq`.
//!
//! Tasks record into a [`Local`] (a small buffer, no lock) that flushes to
//! one of a few locked shards of its [`Series`] when the buffer fills or the
//! second turns over; the shards merge when the run ends. A per-connection
//! histogram would cost tens of KiB per connection, a shared lock per
//! event would serialise the receivers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::payload::now_ns;

/// Largest latency kept (60 s, in µs); larger values count as this.
const MAX_MICROS: u64 = 60_000_000;
/// Shards per series.
const SHARDS: usize = 8;
/// Seconds of another process's series that [`Series::import`] keeps
/// (more than any bounded run lasts).
const MAX_SECONDS: usize = 4 * crate::cli::MAX_DURATION_SECS as usize;
/// Samples a [`Local`] holds before it flushes.
const LOCAL_SAMPLES: usize = 256;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // Bounds and precision are constants within the crate's limits.
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("valid histogram bounds")
}

/// One measured quantity over the run, e.g. delivery latency.
pub struct Series {
    start_ns: u64,
    shards: Vec<Mutex<Shard>>,
    next_shard: AtomicUsize,
}

struct Shard {
    /// Three significant digits over the whole run.
    total: Histogram<u64>,
    /// Two significant digits per second of the run (enough for p50/p99).
    seconds: Vec<Histogram<u64>>,
}

impl Series {
    /// A series whose second 0 starts at `start_ns` (Unix ns).
    pub fn new(start_ns: u64) -> Arc<Self> {
        Arc::new(Self {
            start_ns,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        total: histogram(3),
                        seconds: Vec::new(),
                    })
                })
                .collect(),
            next_shard: AtomicUsize::new(0),
        })
    }

    /// A recorder for one task.
    pub fn local(self: &Arc<Self>) -> Local {
        Local {
            shard: self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS,
            series: Arc::clone(self),
            second: 0,
            samples: Vec::new(),
        }
    }

    /// Samples recorded so far (flushed ones only).
    pub fn count(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().total.len()).sum()
    }

    /// Percentiles in total and per second.
    pub fn summary(&self) -> SeriesSummary {
        let (total, seconds) = self.merged();
        SeriesSummary::of(&total, &seconds)
    }

    /// The shards' histograms added up: in total, and per second.
    fn merged(&self) -> (Histogram<u64>, Vec<Histogram<u64>>) {
        let mut total = histogram(3);
        let mut seconds: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            // Same bounds everywhere: adding cannot fail.
            let _ = total.add(&shard.total);
            for (i, h) in shard.seconds.iter().enumerate() {
                if seconds.len() <= i {
                    seconds.resize_with(i + 1, || histogram(2));
                }
                let _ = seconds[i].add(h);
            }
        }
        (total, seconds)
    }
}

impl Series {
    /// Everything recorded (flushed) so far, as bucket counts another
    /// process can send over and [`Series::import`] merges exactly.
    pub fn export(&self) -> Recorded {
        let (total, seconds) = self.merged();
        Recorded {
            total: buckets(&total),
            seconds: seconds.iter().map(buckets).collect(),
        }
    }

    /// Adds what another series recorded (one with the same start, so
    /// that its seconds are this one's).
    pub fn import(&self, recorded: &Recorded) {
        let mut shard = self.shards[0].lock();
        record_buckets(&mut shard.total, &recorded.total);
        let seconds = recorded.seconds.len().min(MAX_SECONDS);
        if shard.seconds.len() < seconds {
            shard.seconds.resize_with(seconds, || histogram(2));
        }
        for (h, b) in shard
            .seconds
            .iter_mut()
            .zip(&recorded.seconds)
            .take(MAX_SECONDS)
        {
            record_buckets(h, b);
        }
    }
}

/// A series' histograms as (value, count) pairs, one per non-empty
/// bucket: the value is the bucket's highest equivalent value, so
/// recording it again lands in the same bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The whole run.
    pub total: Vec<(u64, u64)>,
    /// Per second.
    pub seconds: Vec<Vec<(u64, u64)>>,
}

fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn record_buckets(h: &mut Histogram<u64>, buckets: &[(u64, u64)]) {
    for &(value, count) in buckets {
        // Out-of-range values from a peer are clamped, never a panic.
        let _ = h.record_n(value.clamp(1, MAX_MICROS), count);
    }
}

/// A task's buffer in front of a [`Series`].
pub struct Local {
    series: Arc<Series>,
    shard: usize,
    second: u32,
    samples: Vec<u64>,
}

impl Local {
    /// Records a latency of `latency_ns` observed now.
    pub fn record(&mut self, latency_ns: u64) {
        self.record_at(now_ns(), latency_ns);
    }

    /// Records a latency of `latency_ns` observed at `now` (Unix ns).
    pub fn record_at(&mut self, now: u64, latency_ns: u64) {
        let second = u32::try_from(now.saturating_sub(self.series.start_ns) / 1_000_000_000)
            .unwrap_or(u32::MAX);
        if second != self.second || self.samples.len() >= LOCAL_SAMPLES {
            self.flush();
            self.second = second;
        }
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(LOCAL_SAMPLES);
        }
        self.samples.push((latency_ns / 1_000).clamp(1, MAX_MICROS));
    }

    /// Hands the buffered samples to the series.
    pub fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let mut shard = self.series.shards[self.shard].lock();
        let i = self.second as usize;
        if shard.seconds.len() <= i {
            shard.seconds.resize_with(i + 1, || histogram(2));
        }
        for &v in &self.samples {
            // Values are clamped into the histogram's bounds.
            let _ = shard.total.record(v);
            let _ = shard.seconds[i].record(v);
        }
        self.samples.clear();
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Latency figures of a series, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeriesSummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Per second of the run: samples, p50, p99 and max.
    pub per_second: Vec<SecondSummary>,
    /// (percentile, µs) pairs for the distribution chart.
    pub distribution: Vec<(f64, u64)>,
}

/// One second of a series.
#[derive(Debug, Clone, Serialize)]
pub struct SecondSummary {
    /// Seconds since the start of the run.
    pub second: u32,
    /// Samples in that second.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
}

impl SeriesSummary {
    fn of(total: &Histogram<u64>, seconds: &[Histogram<u64>]) -> Self {
        if total.is_empty() {
            return Self::default();
        }
        // 0, 50, 75, 87.5, ... 99.9999: evenly spaced in 1/(1-p).
        let distribution = (0..=20)
            .map(|i| {
                let p = 100.0 * (1.0 - 0.5f64.powi(i));
                (p, total.value_at_quantile(p / 100.0))
            })
            .chain(std::iter::once((100.0, total.max())))
            .collect();
        Self {
            count: total.len(),
            mean_us: total.mean(),
            p50_us: total.value_at_quantile(0.50),
            p90_us: total.value_at_quantile(0.90),
            p99_us: total.value_at_quantile(0.99),
            p999_us: total.value_at_quantile(0.999),
            max_us: total.max(),
            per_second: seconds
                .iter()
                .enumerate()
                .map(|(i, h)| SecondSummary {
                    second: i as u32,
                    count: h.len(),
                    p50_us: if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(0.5)
                    },
                    p99_us: if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(0.99)
                    },
                    max_us: h.max(),
                })
                .collect(),
            distribution,
        }
    }
}

/// Errors by code, shared by every task of a run.
#[derive(Default)]
pub struct Errors {
    by_code: Mutex<BTreeMap<String, u64>>,
}

impl Errors {
    /// Counts one error with `code` (e.g. `RateLimited`, `http 429`,
    /// `connect: Connection refused`).
    pub fn add(&self, code: impl Into<String>) {
        *self.by_code.lock().entry(code.into()).or_default() += 1;
    }

    /// All errors so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_code.lock().clone()
    }

    /// Counts `n` errors with `code` (e.g. those a worker process saw).
    pub fn add_n(&self, code: impl Into<String>, n: u64) {
        *self.by_code.lock().entry(code.into()).or_default() += n;
    }

    /// Errors so far.
    pub fn total(&self) -> u64 {
        self.by_code.lock().values().sum()
    }
}

/// What one receiver saw of one room, checked by `seq`: events arrive in
/// `seq` order, so one that does not move forward is a duplicate, and the
/// receiver's count beside the publishers' acknowledged count gives the
/// lost ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Highest `seq` seen.
    pub last_seq: u64,
    /// Load events received (each `seq` once).
    pub received: u64,
    /// Events at or below `last_seq`.
    pub duplicates: u64,
}

impl Tally {
    /// Notes a load event with `seq`; false for a duplicate.
    pub fn offer(&mut self, seq: u64) -> bool {
        if seq <= self.last_seq {
            self.duplicates += 1;
            return false;
        }
        self.last_seq = seq;
        self.received += 1;
        true
    }
}

/// What one receiver saw of each publisher's events, for a server whose
/// events carry no Axon `seq` (another homeserver, measured for
/// comparison): a publisher sends its count `n` only after `n - 1` was
/// acknowledged, and a room's timeline is linear, so a receiver sees each
/// publisher's counts only rise; one that does not is a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampTally {
    /// Highest count seen, by publisher.
    last: HashMap<u32, u64>,
    /// Load events received (each count once).
    pub received: u64,
    /// Events at or below their publisher's highest count.
    pub duplicates: u64,
}

impl StampTally {
    /// Notes publisher `w`'s event number `n`; false for a duplicate.
    pub fn offer(&mut self, w: u32, n: u64) -> bool {
        if self.seen(w, n) {
            self.duplicates += 1;
            return false;
        }
        self.last.insert(w, n);
        self.received += 1;
        true
    }

    /// Whether publisher `w`'s event number `n` (or a later one) was seen.
    pub fn seen(&self, w: u32, n: u64) -> bool {
        self.last.get(&w).is_some_and(|&last| n <= last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locals_merge_into_percentiles_and_seconds() {
        let start = now_ns();
        let series = Series::new(start);
        let mut a = series.local();
        let mut b = series.local();
        for i in 1..=1000u64 {
            a.record_at(start + 10, i * 1_000); // 1..1000 µs in second 0
        }
        b.record_at(start + 2_000_000_000, 5_000_000_000); // 5 s, in second 2
        drop(a);
        drop(b);
        let s = series.summary();
        assert_eq!(s.count, 1001);
        assert!((495..=505).contains(&s.p50_us), "p50 {}", s.p50_us);
        assert!(s.max_us >= 4_990_000);
        assert_eq!(s.per_second.len(), 3);
        assert_eq!(s.per_second[0].count, 1000);
        assert_eq!(s.per_second[1].count, 0);
        assert_eq!(s.per_second[2].count, 1);
        assert_eq!(series.count(), 1001);
    }

    #[test]
    fn exported_series_merge_exactly() {
        let start = now_ns();
        let (a, b, both) = (Series::new(start), Series::new(start), Series::new(start));
        let (mut la, mut lb, mut l) = (a.local(), b.local(), both.local());
        for i in 1..=500u64 {
            la.record_at(start + 10, i * 7_000);
            l.record_at(start + 10, i * 7_000);
            lb.record_at(start + 1_500_000_000, i * 3_000_000);
            l.record_at(start + 1_500_000_000, i * 3_000_000);
        }
        drop((la, lb, l));
        let merged = Series::new(start);
        let wire = serde_json::to_string(&a.export()).unwrap();
        merged.import(&serde_json::from_str(&wire).unwrap());
        merged.import(&b.export());
        let (m, w) = (merged.summary(), both.summary());
        assert_eq!(m.count, 1000);
        assert_eq!(
            (m.p50_us, m.p99_us, m.max_us),
            (w.p50_us, w.p99_us, w.max_us)
        );
        assert_eq!(m.per_second.len(), 2);
        assert_eq!(m.per_second[1].p99_us, w.per_second[1].p99_us);
        // A hostile peer's values are clamped, not a panic.
        merged.import(&Recorded {
            total: vec![(u64::MAX, 1), (0, 1)],
            seconds: vec![],
        });
        assert_eq!(merged.count(), 1002);
    }

    #[test]
    fn tally_counts_duplicates_by_seq() {
        let mut t = Tally::default();
        assert!(t.offer(3));
        assert!(t.offer(5));
        assert!(!t.offer(5));
        assert!(!t.offer(4));
        assert!(t.offer(9));
        assert_eq!((t.received, t.duplicates, t.last_seq), (3, 2, 9));
    }

    #[test]
    fn stamp_tally_counts_duplicates_per_publisher() {
        let mut t = StampTally::default();
        assert!(t.offer(0, 0));
        assert!(t.offer(1, 0));
        assert!(t.offer(0, 1));
        assert!(!t.offer(0, 1));
        assert!(!t.offer(1, 0));
        assert!(t.seen(0, 0) && !t.seen(0, 2) && !t.seen(7, 0));
        assert!(t.offer(1, 5));
        assert_eq!((t.received, t.duplicates), (4, 2));
    }

    #[test]
    fn errors_count_by_code() {
        let e = Errors::default();
        e.add("RateLimited");
        e.add("RateLimited");
        e.add("http 500");
        assert_eq!(e.total(), 3);
        assert_eq!(e.snapshot()["RateLimited"], 2);
    }
}
