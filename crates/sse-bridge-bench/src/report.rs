//! Turns the JSON lines of a run into the side-by-side tables and ratios of
//! BENCHMARKS.md, and a PNG chart. A line is one scenario of one gateway
//! (`label`) in one worker mode (`mode`; lines without it are `pubsub`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

/// The last report of each (label, mode, scenario) in a JSONL file.
pub struct Results {
    by_key: BTreeMap<(String, String, String), Value>,
}

/// One gateway in one worker mode: a column of a table, a bar of the chart.
#[derive(Debug, Clone, Copy)]
struct Series {
    title: &'static str,
    label: &'static str,
    mode: &'static str,
}

const OURS: Series = Series {
    title: "ours",
    label: "ours",
    mode: "pubsub",
};
const REFERENCE: Series = Series {
    title: "reference",
    label: "reference",
    mode: "pubsub",
};
const OURS_RESUMABLE: Series = Series {
    title: "ours resumable",
    label: "ours",
    mode: "resumable",
};
const OURS_BATCHED: Series = Series {
    title: "ours batched",
    label: "ours",
    mode: "batched",
};
/// The scenarios that load the gateway with events: throughput first.
const LOAD_SCENARIOS: [&str; 3] = ["throughput", "latency", "latency-spread"];
/// The logged modes' targets: events/s against Pub/Sub only, p99 at half
/// load, Redis CPU per event against Pub/Sub only.
const RESUMABLE_MIN_RATIO: f64 = 0.8;
const RESUMABLE_MAX_P99_MS: f64 = 2.0;
const RESUMABLE_MAX_REDIS_CPU_RATIO: f64 = 1.5;

impl Results {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut by_key = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).context("a results line is not JSON")?;
            let key = (
                v["label"].as_str().unwrap_or("?").to_owned(),
                v["mode"].as_str().unwrap_or("pubsub").to_owned(),
                v["scenario"].as_str().unwrap_or("?").to_owned(),
            );
            by_key.insert(key, v);
        }
        Ok(Results { by_key })
    }

    fn get(&self, series: Series, scenario: &str) -> Option<&Value> {
        let key = (
            series.label.to_owned(),
            series.mode.to_owned(),
            scenario.to_owned(),
        );
        self.by_key.get(&key)
    }

    fn num(&self, series: Series, scenario: &str, path: &[&str]) -> Option<f64> {
        let mut v = self.get(series, scenario)?;
        for key in path {
            v = v.get(key)?;
        }
        v.as_f64()
    }
}

/// One table row: scenario, metric, where the value is in a report, scale.
type Row = (&'static str, &'static str, &'static [&'static str], f64);

const ROWS: [Row; 21] = [
    ("throughput", "events/s delivered", &["events_per_s"], 1.0),
    ("throughput", "failed sessions", &["failed"], 1.0),
    (
        "throughput",
        "events the worker could not deliver",
        &["worker_errors"],
        1.0,
    ),
    (
        "throughput",
        "gateway CPU per event, µs",
        &["gateway_cpu_us_per_event"],
        1.0,
    ),
    (
        "throughput",
        "Redis CPU per event, µs",
        &["redis_cpu_us_per_event"],
        1.0,
    ),
    ("throughput", "CPU s: gateway", &["cpu", "gateway_s"], 1.0),
    ("throughput", "CPU s: Redis", &["cpu", "redis_s"], 1.0),
    (
        "throughput",
        "CPU s: load generator",
        &["cpu", "bench_s"],
        1.0,
    ),
    ("latency", "paced rate, events/s", &["target_rate"], 1.0),
    ("latency", "p50 ms", &["latency", "p50_us"], 1e-3),
    ("latency", "p90 ms", &["latency", "p90_us"], 1e-3),
    ("latency", "p99 ms", &["latency", "p99_us"], 1e-3),
    ("latency", "max ms", &["latency", "max_us"], 1e-3),
    (
        "latency-spread",
        "paced rate, events/s",
        &["target_rate"],
        1.0,
    ),
    ("latency-spread", "p50 ms", &["latency", "p50_us"], 1e-3),
    ("latency-spread", "p99 ms", &["latency", "p99_us"], 1e-3),
    ("setup", "POST→ack p50 ms", &["setup", "p50_us"], 1e-3),
    ("setup", "POST→ack p99 ms", &["setup", "p99_us"], 1e-3),
    ("hold", "streams held", &["held_streams"], 1.0),
    (
        "hold",
        "gateway RSS per stream, KiB",
        &["rss_per_stream_kib"],
        1.0,
    ),
    (
        "hold",
        "Redis subscriber connections",
        &["redis_subscriber_connections"],
        1.0,
    ),
];

/// Markdown tables and the ratios the targets are stated in.
pub fn summary(results: &Results, ceiling: Option<f64>) -> String {
    let mut out = table(results, [OURS, REFERENCE], &ROWS);
    if let (Some(ceiling), Some(ours)) =
        (ceiling, results.num(OURS, "throughput", &["events_per_s"]))
    {
        out.push_str(&format!(
            "\nRaw Redis PUBLISH ceiling (redis-benchmark): {ceiling:.0}/s; ours / ceiling = {:.0}%\n",
            100.0 * ours / ceiling
        ));
    }
    for (logged, how) in [
        (
            OURS_RESUMABLE,
            "every event through `FCALL sse_bridge_v4_append`",
        ),
        (
            OURS_BATCHED,
            "the events queued while a call was in flight through one `FCALL sse_bridge_v4_append_batch`",
        ),
    ] {
        if results.get(logged, "throughput").is_some() {
            out.push_str(&resumable_summary(results, logged, how));
        }
    }
    out
}

/// Ours with every event through the session log (`logged`: one of the
/// logged modes, sent `how`) beside Pub/Sub only, and the targets.
fn resumable_summary(results: &Results, logged: Series, how: &str) -> String {
    let pubsub_only = Series {
        title: "Pub/Sub only",
        ..OURS
    };
    let resumable = Series {
        title: logged.mode,
        ..logged
    };
    let columns = [resumable, pubsub_only];
    let rows: Vec<Row> = ROWS
        .into_iter()
        .filter(|row| LOAD_SCENARIOS.contains(&row.0))
        .collect();
    let mut out = format!("\n### {} mode (ours): {how}\n\n", logged.mode);
    out.push_str(&table(results, columns, &rows));
    out.push('\n');
    let [resumable, pubsub] = columns.map(|c| results.num(c, "throughput", &["events_per_s"]));
    if let (Some(resumable), Some(pubsub)) = (resumable, pubsub) {
        let ratio = resumable / pubsub;
        out.push_str(&format!(
            "- events/s, {} / Pub/Sub only: {:.0} % (target ≥ {:.0} %: {})\n",
            logged.mode,
            100.0 * ratio,
            100.0 * RESUMABLE_MIN_RATIO,
            verdict(ratio >= RESUMABLE_MIN_RATIO)
        ));
    }
    let cpu = columns.map(|c| results.num(c, "throughput", &["redis_cpu_us_per_event"]));
    if let [Some(logged_cpu), Some(pubsub_cpu)] = cpu {
        let ratio = logged_cpu / pubsub_cpu;
        out.push_str(&format!(
            "- Redis CPU per event, {} / Pub/Sub only: {ratio:.2}× (target ≤ {RESUMABLE_MAX_REDIS_CPU_RATIO}×: {})\n",
            logged.mode,
            verdict(ratio <= RESUMABLE_MAX_REDIS_CPU_RATIO)
        ));
    }
    for scenario in &LOAD_SCENARIOS[1..] {
        for series in columns.into_iter().rev() {
            out.push_str(&p99_verdict(results, series, scenario));
        }
    }
    out
}

/// `series`'s p99 in a latency `scenario` against the resumable target.
fn p99_verdict(results: &Results, series: Series, scenario: &str) -> String {
    let p99 = results.num(series, scenario, &["latency", "p99_us"]);
    let rate = results.num(series, scenario, &["target_rate"]);
    let (Some(p99), Some(rate)) = (p99, rate) else {
        return String::new();
    };
    let ms = p99 * 1e-3;
    format!(
        "- p99 {}, {scenario} at {rate:.0} events/s (half load): {ms:.2} ms (target < {RESUMABLE_MAX_P99_MS} ms: {})\n",
        series.title,
        verdict(ms < RESUMABLE_MAX_P99_MS)
    )
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// A markdown table of `rows` for two series, with their ratio.
fn table(results: &Results, columns: [Series; 2], rows: &[Row]) -> String {
    let [a, b] = columns.map(|c| c.title);
    let mut out =
        format!("| scenario | metric | {a} | {b} | {a} / {b} |\n|---|---|---:|---:|---:|\n");
    for &(scenario, metric, path, scale) in rows {
        let [first, second] = columns.map(|c| results.num(c, scenario, path).map(|v| v * scale));
        let fmt = |v: Option<f64>| {
            v.map_or("—".to_owned(), |v| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
        };
        let ratio = match (first, second) {
            (Some(x), Some(y)) if y != 0.0 => format!("{:.2}×", x / y),
            _ => "—".to_owned(),
        };
        out.push_str(&format!(
            "| {scenario} | {metric} | {} | {} | {ratio} |\n",
            fmt(first),
            fmt(second)
        ));
    }
    out
}

/// Two panels: latency percentiles (log scale) and events/s, for every
/// series the results hold (ours, ours resumable, the reference).
pub fn chart(
    results: &Results,
    ceiling: Option<f64>,
    font: &Path,
    output: &Path,
) -> anyhow::Result<()> {
    let font_bytes =
        std::fs::read(font).with_context(|| format!("reading font {}", font.display()))?;
    // plotters keeps registered fonts for the process lifetime.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font_bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{} is not a usable font", font.display()))?;

    let root = BitMapBackend::new(output, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(650);
    let series: Vec<(Series, RGBColor)> = [
        (OURS, RGBColor(31, 119, 180)),
        (OURS_RESUMABLE, RGBColor(44, 160, 44)),
        (OURS_BATCHED, RGBColor(148, 103, 189)),
        (REFERENCE, RGBColor(255, 127, 14)),
    ]
    .into_iter()
    .filter(|(s, _)| {
        results.get(*s, "throughput").is_some() || results.get(*s, "latency").is_some()
    })
    .collect();
    let width = 0.8 / series.len().max(1) as f64;

    let percentiles = [
        ("p50", "p50_us"),
        ("p90", "p90_us"),
        ("p99", "p99_us"),
        ("max", "max_us"),
    ];
    let mut latency = ChartBuilder::on(&left)
        .caption(
            "publish → client latency (paced at half of each max), ms",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.0f64, (0.01f64..1000.0f64).log_scale())?;
    latency
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ms (log)")
        .draw()?;
    // Category names inside the plot: numeric axes place their own ticks.
    let label_style = ("sans-serif", 16).into_font().color(&BLACK);
    latency.draw_series(percentiles.iter().enumerate().map(|(j, (name, _))| {
        Text::new(
            name.to_string(),
            (j as f64 + 0.4, 60.0),
            label_style.clone(),
        )
    }))?;
    for (i, (one, color)) in series.iter().enumerate() {
        let bars = percentiles.iter().enumerate().filter_map(|(j, (_, key))| {
            let ms = results.num(*one, "latency", &["latency", key])? / 1000.0;
            let x0 = j as f64 + 0.1 + width * i as f64;
            Some(Rectangle::new(
                [(x0, 0.01), (x0 + width * 0.95, ms.max(0.011))],
                color.filled(),
            ))
        });
        latency
            .draw_series(bars)?
            .label(one.title)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    let mut bars: Vec<(&str, f64, RGBColor)> = series
        .iter()
        .filter_map(|(one, color)| {
            Some((
                one.title,
                results.num(*one, "throughput", &["events_per_s"])?,
                *color,
            ))
        })
        .collect();
    if let Some(ceiling) = ceiling {
        bars.push(("Redis ceiling", ceiling, RGBColor(120, 120, 120)));
    }
    let top = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.15;
    let mut throughput = ChartBuilder::on(&right)
        .caption("events/s delivered to clients", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..bars.len() as f64, 0.0..top)?;
    throughput
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;
    throughput.draw_series(bars.iter().enumerate().map(|(i, (_, value, color))| {
        Rectangle::new(
            [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *value)],
            color.filled(),
        )
    }))?;
    // Name above value, two lines: four names side by side do not fit on one.
    let lines = bars.iter().enumerate().flat_map(|(i, (name, value, _))| {
        [
            (name.to_string(), value + top * 0.08),
            (format!("{:.0}k", value / 1000.0), value + top * 0.03),
        ]
        .map(|(text, y)| Text::new(text, (i as f64 + 0.12, y), label_style.clone()))
    });
    throughput.draw_series(lines)?;
    root.present()?;
    Ok(())
}
