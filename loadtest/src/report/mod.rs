//! The end of a run: a summary table on stdout, a JSON result file and a
//! self-contained HTML report ([`html`]) with latency over time and the
//! percentile distribution.

pub mod html;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::record::SeriesSummary;
use crate::server::ServerFigures;

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `fanout`, `connections`, `churn` or `matrix`.
    pub scenario: String,
    /// The command line, as run.
    pub command: String,
    /// Start, UTC (`2026-11-22 07:30:00Z`).
    pub started_utc: String,
    /// Length of the measured phase, seconds.
    pub duration_secs: f64,
    /// Events the server acknowledged.
    pub sent: u64,
    /// Acknowledged sends per second.
    pub sent_per_sec: f64,
    /// Events received by the receivers (each receiver counts its own),
    /// during the measured phase and the drain after it.
    pub delivered: u64,
    /// From the start of the measured phase until the drain ended: the
    /// last acknowledged event arrived, or the drain time ran out. 0 for a
    /// scenario without a drain (`duration_secs` then applies).
    pub delivery_secs: f64,
    /// Deliveries per second over `delivery_secs`: at maximum rate the
    /// receivers fall behind, and dividing what arrives during the drain
    /// by the measured phase alone would overstate it.
    pub delivered_per_sec: f64,
    /// Acknowledged events a receiver never got.
    pub lost: u64,
    /// Events a receiver got twice (by `seq`).
    pub duplicated: u64,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// End-to-end latency: send timestamp in the payload to receipt.
    pub latency: SeriesSummary,
    /// Send to acknowledgement.
    pub send_latency: Option<SeriesSummary>,
    /// Connection set-up (TCP/QUIC, TLS, WebSocket, Hello/Welcome).
    pub handshake: Option<SeriesSummary>,
    /// CPU seconds of the load generator (and its worker processes).
    pub client_cpu_secs: f64,
    /// Server-side figures from `--server-metrics`.
    pub server: Option<ServerFigures>,
    /// Scenario-specific figures (connections held, memory per
    /// connection, ...), in the order they were added.
    pub figures: Vec<(String, Value)>,
    /// What the reader should know: limits met, caveats.
    pub notes: Vec<String>,
}

impl Report {
    /// A report for `scenario`, started now.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_utc: utc_now(),
            ..Self::default()
        }
    }

    /// Adds a scenario figure.
    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.push((name.to_owned(), value.into()));
    }

    /// Fills the rates from the counts and `duration_secs`.
    pub fn finish_rates(&mut self) {
        if self.duration_secs > 0.0 {
            self.sent_per_sec = self.sent as f64 / self.duration_secs;
        }
        let delivery_secs = if self.delivery_secs > 0.0 {
            self.delivery_secs
        } else {
            self.duration_secs
        };
        if delivery_secs > 0.0 {
            self.delivered_per_sec = self.delivered as f64 / delivery_secs;
        }
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("scenario".into(), self.scenario.clone()),
            ("started".into(), self.started_utc.clone()),
            ("measured".into(), format!("{:.1} s", self.duration_secs)),
        ];
        if self.sent > 0 {
            rows.push((
                "sent (acknowledged)".into(),
                format!("{} ({}/s)", self.sent, si(self.sent_per_sec)),
            ));
        }
        if self.delivered > 0 || self.sent > 0 {
            rows.push((
                "delivered".into(),
                if self.delivery_secs > 0.0 {
                    format!(
                        "{} ({}/s over {:.1} s: measured + drain)",
                        self.delivered,
                        si(self.delivered_per_sec),
                        self.delivery_secs
                    )
                } else {
                    format!("{} ({}/s)", self.delivered, si(self.delivered_per_sec))
                },
            ));
            rows.push(("lost".into(), self.lost.to_string()));
            rows.push(("duplicated".into(), self.duplicated.to_string()));
        }
        let mut latency = |name: &str, s: &SeriesSummary| {
            if s.count > 0 {
                rows.push((
                    name.into(),
                    format!(
                        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                        us(s.p50_us),
                        us(s.p90_us),
                        us(s.p99_us),
                        us(s.p999_us),
                        us(s.max_us)
                    ),
                ));
            }
        };
        latency("delivery latency", &self.latency);
        if let Some(s) = &self.send_latency {
            latency("send → ack", s);
        }
        if let Some(s) = &self.handshake {
            latency("handshake", s);
        }
        for (name, value) in &self.figures {
            let v = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n
                    .as_f64()
                    .filter(|f| f.fract() != 0.0)
                    .map_or_else(|| n.to_string(), |f| format!("{f:.2}")),
                other => other.to_string(),
            };
            rows.push((name.clone(), v));
        }
        rows.push((
            "errors".into(),
            if self.errors.is_empty() {
                "none".into()
            } else {
                self.errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
        rows.push((
            "client CPU".into(),
            format!("{:.1} s", self.client_cpu_secs),
        ));
        if let Some(s) = &self.server {
            rows.push(("server CPU".into(), format!("{:.1} s", s.cpu_seconds)));
            if let Some(per) = s.cpu_us_per_delivery {
                rows.push(("server CPU per delivery".into(), format!("{per:.3} µs")));
            }
            rows.push((
                "server RSS start → end".into(),
                format!("{} → {}", bytes(s.rss_start_bytes), bytes(s.rss_end_bytes)),
            ));
            if s.lagged > 0.0 {
                rows.push(("server lagged deliveries".into(), format!("{}", s.lagged)));
            }
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<width$}  {v}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }

    /// Writes `<dir>/<scenario>-<time>.json` and `.html`; returns both paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!(
            "{}-{}",
            self.scenario,
            self.started_utc
                .replace([' ', ':'], "-")
                .trim_end_matches('Z')
        );
        let json = dir.join(format!("{stem}.json"));
        let html = dir.join(format!("{stem}.html"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(&html, html::render(self))
            .with_context(|| format!("writing {}", html.display()))?;
        Ok((json, html))
    }
}

/// `1.23 ms`, `850 µs`, `2.10 s`.
pub fn us(v: u64) -> String {
    match v {
        0..1_000 => format!("{v} µs"),
        1_000..1_000_000 => format!("{:.2} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// `1.23M`, `45.6k`, `789`.
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `12.3 MiB`.
pub fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    } else if v >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", v / 1024.0)
    }
}

/// Now, UTC, to the second.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SSZ`.
fn utc(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_and_units() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_795_339_845), "2026-11-22 09:30:45Z");
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(1_230), "1.23 ms");
        assert_eq!(si(4_200_000.0), "4.20M");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }

    #[test]
    fn writes_json_and_html() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Report::new("fanout");
        r.sent = 10;
        r.delivered = 100;
        r.duration_secs = 2.0;
        r.finish_rates();
        r.figure("connections", 10);
        let table = r.table();
        assert!(
            table.contains("delivered") && table.contains("100 (50/s)"),
            "{table}"
        );
        // Deliveries that arrived during a drain count over the drain too.
        r.delivery_secs = 4.0;
        r.finish_rates();
        assert_eq!(r.sent_per_sec, 5.0);
        assert_eq!(r.delivered_per_sec, 25.0);
        assert!(r.table().contains("100 (25/s over 4.0 s"), "{}", r.table());
        let (json, html) = r.write(dir.path()).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(back["delivered"], 100);
        assert_eq!(back["figures"][0][0], "connections");
        let page = std::fs::read_to_string(html).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("fanout"));
    }
}
