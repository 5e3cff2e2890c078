//! The HTML report: one file, no scripts, no external resources: the
//! summary table and SVG charts of latency over time, deliveries per
//! second and the latency percentile distribution.

use std::fmt::Write as _;

use super::{Report, us};
use crate::record::SeriesSummary;

/// The page for `report`.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("axon-loadtest {} — {}", report.scenario, report.started_utc);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         svg{{background:#fff;border:1px solid #ddd;margin:0.5em 0}}</style></head><body>\
         <h1>{}</h1><p><code>{}</code></p><pre>{}</pre>",
        escape(&title),
        escape(&title),
        escape(&report.command),
        escape(&report.table())
    );
    let mut section = |heading: &str, summary: &SeriesSummary| {
        if summary.count == 0 {
            return;
        }
        let _ = write!(page, "<h2>{}</h2>", escape(heading));
        let over_time = |pick: fn(&crate::record::SecondSummary) -> u64| {
            summary
                .per_second
                .iter()
                .filter(|s| s.count > 0)
                .map(|s| (f64::from(s.second), pick(s) as f64))
                .collect::<Vec<_>>()
        };
        page.push_str(&chart(
            "latency over time (µs, log scale)",
            "second of the run",
            &[
                ("p50", "#1f77b4", over_time(|s| s.p50_us)),
                ("p99", "#ff7f0e", over_time(|s| s.p99_us)),
                ("max", "#d62728", over_time(|s| s.max_us)),
            ],
            true,
            Axis::Linear,
        ));
        page.push_str(&chart(
            "samples per second",
            "second of the run",
            &[(
                "per second",
                "#2ca02c",
                summary
                    .per_second
                    .iter()
                    .map(|s| (f64::from(s.second), s.count as f64))
                    .collect(),
            )],
            false,
            Axis::Linear,
        ));
        page.push_str(&chart(
            "percentile distribution (µs, log scale)",
            "percentile",
            &[(
                "latency",
                "#9467bd",
                summary
                    .distribution
                    .iter()
                    .map(|&(p, v)| (nines(p), v as f64))
                    .collect(),
            )],
            true,
            Axis::Nines,
        ));
        let _ = write!(
            page,
            "<p>p50 {} · p90 {} · p99 {} · p99.9 {} · max {} ({} samples)</p>",
            us(summary.p50_us),
            us(summary.p90_us),
            us(summary.p99_us),
            us(summary.p999_us),
            us(summary.max_us),
            summary.count
        );
    };
    section("End-to-end delivery latency", &report.latency);
    if let Some(s) = &report.send_latency {
        section("Send to acknowledgement", s);
    }
    if let Some(s) = &report.handshake {
        section("Handshake", s);
    }
    page.push_str("</body></html>\n");
    page
}

/// Percentile `p` as "nines": 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        7.0
    } else {
        (-(1.0 - p / 100.0).log10()).min(7.0)
    }
}

/// A chart line: name, colour, (x, y) points.
type Line<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

#[derive(Clone, Copy)]
enum Axis {
    Linear,
    Nines,
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// A line chart; `log_y` plots the values on a log10 scale.
fn chart(title: &str, x_label: &str, lines: &[Line<'_>], log_y: bool, x_axis: Axis) -> String {
    let points = lines.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        let y = if log_y { y.max(1.0).log10() } else { y };
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-size=\"11\">\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"13\">{}</text>",
        escape(title)
    );
    if x0 > x1 {
        svg.push_str("<text x=\"300\" y=\"130\">no data</text></svg>");
        return svg;
    }
    if log_y {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        y0 = 0.0;
        y1 = y1.max(1.0) * 1.05;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| {
        let y = if log_y { y.max(1.0).log10() } else { y };
        H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM)
    };
    // Axes and ticks.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#888\"/>\
         <text x=\"{cx}\" y=\"{ly}\" text-anchor=\"middle\">{}</text>",
        escape(x_label),
        b = H - BOTTOM,
        r = W - RIGHT,
        cx = (W + LEFT) / 2.0,
        ly = H - 8.0,
    );
    let y_ticks: Vec<f64> = if log_y {
        (y0 as i32..=y1 as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=4).map(|i| y1 * f64::from(i) / 4.0).collect()
    };
    for v in y_ticks {
        let y = py(v);
        let label = if log_y { us(v as u64) } else { super::si(v) };
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
            escape(&label),
            r = W - RIGHT,
            lx = LEFT - 4.0,
            ty = y + 4.0,
        );
    }
    let x_ticks: Vec<(f64, String)> = match x_axis {
        Axis::Linear => (0..=5)
            .map(|i| {
                let v = x0 + (x1 - x0) * f64::from(i) / 5.0;
                (v, format!("{v:.0}"))
            })
            .collect(),
        Axis::Nines => [
            (0.0, "0"),
            (1.0, "90"),
            (2.0, "99"),
            (3.0, "99.9"),
            (4.0, "99.99"),
            (5.0, "99.999"),
            (7.0, "max"),
        ]
        .iter()
        .filter(|(v, _)| *v <= x1)
        .map(|&(v, l)| (v, l.to_owned()))
        .collect(),
    };
    for (v, label) in x_ticks {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(v),
            H - BOTTOM + 14.0,
            escape(&label)
        );
    }
    // Lines and legend.
    for (i, (name, color, pts)) in lines.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{lx}\" y=\"18\" fill=\"{color}\">{}</text>",
            path.join(" "),
            escape(name),
            lx = W - RIGHT - 60.0 * (lines.len() - i) as f64,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SecondSummary;

    #[test]
    fn renders_charts_for_a_series() {
        let mut r = Report::new("fanout");
        r.command = "axon-loadtest fanout --payload <x>".into();
        r.latency = SeriesSummary {
            count: 3,
            p50_us: 100,
            max_us: 5_000,
            per_second: (0..3)
                .map(|i| SecondSummary {
                    second: i,
                    count: 1,
                    p50_us: 100,
                    p99_us: 900,
                    max_us: 5_000,
                })
                .collect(),
            distribution: vec![(0.0, 50), (50.0, 100), (99.0, 900), (100.0, 5_000)],
            ..SeriesSummary::default()
        };
        let page = render(&r);
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains("&lt;x&gt;"), "the command is escaped");
        assert!(page.contains("polyline"));
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
    }
}
