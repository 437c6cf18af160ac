//! Turns the JSON lines of a run into the side-by-side tables and ratios of
//! BENCHMARKS.md, and a PNG chart.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;

/// The last report of each (label, scenario) in a JSONL file.
pub struct Results {
    by_key: BTreeMap<(String, String), Value>,
}

impl Results {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut by_key = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).context("a results line is not JSON")?;
            let key = (
                v["label"].as_str().unwrap_or("?").to_owned(),
                v["scenario"].as_str().unwrap_or("?").to_owned(),
            );
            by_key.insert(key, v);
        }
        Ok(Results { by_key })
    }

    fn get(&self, label: &str, scenario: &str) -> Option<&Value> {
        self.by_key.get(&(label.to_owned(), scenario.to_owned()))
    }

    fn num(&self, label: &str, scenario: &str, path: &[&str]) -> Option<f64> {
        let mut v = self.get(label, scenario)?;
        for key in path {
            v = v.get(key)?;
        }
        v.as_f64()
    }
}

/// Markdown tables and the ratios the targets are stated in.
pub fn summary(results: &Results, ceiling: Option<f64>) -> String {
    let labels = ["ours", "reference"];
    let mut out = String::new();
    out.push_str(
        "| scenario | metric | ours | reference | ours / reference |\n|---|---|---:|---:|---:|\n",
    );
    let rows: [(&str, &str, &[&str], f64); 16] = [
        ("throughput", "events/s delivered", &["events_per_s"], 1.0),
        ("throughput", "failed sessions", &["failed"], 1.0),
        (
            "throughput",
            "gateway CPU per event, µs",
            &["gateway_cpu_us_per_event"],
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
    for (scenario, metric, path, scale) in rows {
        let [ours, reference] = labels.map(|l| results.num(l, scenario, path).map(|v| v * scale));
        let fmt = |v: Option<f64>| {
            v.map_or("—".to_owned(), |v| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
        };
        let ratio = match (ours, reference) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
            _ => "—".to_owned(),
        };
        out.push_str(&format!(
            "| {scenario} | {metric} | {} | {} | {ratio} |\n",
            fmt(ours),
            fmt(reference)
        ));
    }
    if let (Some(ceiling), Some(ours)) = (
        ceiling,
        results.num("ours", "throughput", &["events_per_s"]),
    ) {
        out.push_str(&format!(
            "\nRaw Redis PUBLISH ceiling (redis-benchmark): {ceiling:.0}/s; ours / ceiling = {:.0}%\n",
            100.0 * ours / ceiling
        ));
    }
    out
}

/// Two panels: latency percentiles (log scale) and events/s, both gateways.
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
    let labels = [
        ("ours", RGBColor(31, 119, 180)),
        ("reference", RGBColor(255, 127, 14)),
    ];

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
    for (i, (label, color)) in labels.iter().enumerate() {
        let bars = percentiles.iter().enumerate().filter_map(|(j, (_, key))| {
            let ms = results.num(label, "latency", &["latency", key])? / 1000.0;
            let x0 = j as f64 + 0.1 + 0.4 * i as f64;
            Some(Rectangle::new(
                [(x0, 0.01), (x0 + 0.38, ms.max(0.011))],
                color.filled(),
            ))
        });
        latency
            .draw_series(bars)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    let mut bars: Vec<(&str, f64, RGBColor)> = labels
        .iter()
        .filter_map(|(label, color)| {
            Some((
                *label,
                results.num(label, "throughput", &["events_per_s"])?,
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
    throughput.draw_series(bars.iter().enumerate().map(|(i, (name, value, _))| {
        let text = format!("{name}: {:.0}k", value / 1000.0);
        Text::new(
            text,
            (i as f64 + 0.15, value + top * 0.04),
            label_style.clone(),
        )
    }))?;
    root.present()?;
    Ok(())
}
