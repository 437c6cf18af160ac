//! `sse-bridge-bench`: a load generator for any gateway that honours
//! PROTOCOL.md in its Redis mode (ours and the Python reference alike).
//!
//! It plays both ends: many HTTP clients that verify every session, and the
//! worker side (its own consumer group on the job stream, events published
//! on Redis Pub/Sub with their publish time — or, with `--mode resumable`,
//! appended to sse-bridge's session log and published by one
//! `FCALL sse_bridge_v4_append`). Each run appends one JSON line per scenario to
//! `--out`; a run with failed sessions or undelivered events exits non-zero.
//! With `--redis-cluster` it drives a gateway on a Redis Cluster: jobs and
//! events through the cluster client, cluster names and sharded Pub/Sub,
//! Redis CPU and clients summed over every node.
//!
//! # Layout
//! * `client` — POST, incremental SSE parsing, per-session verification.
//! * `worker` — jobs in from the Redis Stream, events out on Pub/Sub or
//!   through the session log.
//! * `conn` — the worker's Redis connection: single node or cluster client.
//! * `scenarios` — throughput, latency, hold, setup, memory.
//! * `held_load` — streams held by the tens of thousands (HTTP/2 or
//!   HTTP/1.1) under paced load: latency, CPU per event, RSS per stream;
//!   its client side in `held`, on hyper's connection API.
//! * `probe` — gateway RSS from `/proc`, Redis `CLIENT LIST`, `INFO` (per
//!   node in a cluster).
//! * `clock` — the shared monotonic clock behind latencies.

mod client;
mod clock;
mod conn;
mod held;
mod held_load;
mod probe;
mod report;
mod scenarios;
mod worker;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use scenarios::{Report, Target};
use worker::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "sse-bridge-bench",
    about = "Load generator for sse-bridge-compatible gateways"
)]
struct Cli {
    /// Gateway under test.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The Redis the gateway uses (with `--redis-cluster`: seed nodes,
    /// comma-separated).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// `--redis-url` is a Redis Cluster (the gateway runs with
    /// `--redis-cluster`): hash-tagged names, SPUBLISH, per-node probes.
    #[arg(long)]
    redis_cluster: bool,
    /// The job stream the gateway dispatches to.
    #[arg(long, default_value = "sse_jobs")]
    stream: String,
    /// Gateway process id (hold, held-load: its RSS and CPU).
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Name of the gateway in the report.
    #[arg(long, default_value = "ours")]
    label: String,
    /// How the bench's worker sends events: plain PUBLISH (any gateway), or
    /// FCALL sse_bridge_v4_append into the session log (sse-bridge only).
    #[arg(long, value_enum, default_value_t = Mode::Pubsub)]
    mode: Mode,
    /// Append each report as a JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N sessions × K events at full speed, bounded concurrency.
    Throughput {
        #[arg(long, default_value_t = 2000)]
        sessions: u64,
        #[arg(long, default_value_t = 100)]
        events: u64,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
    },
    /// Paced publishing at RATE events/s in total; latency percentiles.
    Latency {
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 400)]
        sessions: u64,
        #[arg(long, default_value_t = 100)]
        events: u64,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Give each session its own phase (report `latency-spread`):
        /// otherwise sessions started together send in step, in bursts.
        #[arg(long)]
        spread: bool,
    },
    /// Streams held open after the ack: RSS and Redis connections per stream.
    Hold {
        #[arg(long, default_value_t = 10_000)]
        streams: u64,
    },
    /// Streams held by the tens of thousands (HTTP/2 multiplexed, or
    /// HTTP/1.1 over several source addresses), then paced load over all of
    /// them, a phase per rate: p50/p99 latency, CPU per event, RSS per stream.
    HeldLoad(held_load::Args),
    /// N sessions × K events run to completion: the Redis memory they leave
    /// (INFO used_memory before and after, net of the job stream's growth).
    Memory {
        #[arg(long, default_value_t = 2000)]
        sessions: u64,
        #[arg(long, default_value_t = 100)]
        events: u64,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
    },
    /// POST → worker_ack received.
    Setup {
        #[arg(long, default_value_t = 1000)]
        sessions: u64,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
    },
    /// Markdown tables and ratios from a results file (no load).
    Summary {
        #[arg(long)]
        input: PathBuf,
        /// Raw Redis PUBLISH rate measured on the same machine.
        #[arg(long)]
        ceiling: Option<f64>,
    },
    /// PNG chart from a results file (no load).
    Chart {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        ceiling: Option<f64>,
        #[arg(
            long,
            default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
        )]
        font: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Thousands of sockets: lift the soft file limit to the hard one.
    rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let target = Target {
        url: cli.url,
        redis_url: cli.redis_url,
        cluster: cli.redis_cluster,
        stream: cli.stream,
        gateway_pid: cli.gateway_pid,
        mode: cli.mode,
    };
    let mut report = match cli.scenario {
        Scenario::Throughput {
            sessions,
            events,
            concurrency,
        } => scenarios::throughput(&target, sessions, events, concurrency).await?,
        Scenario::Latency {
            rate,
            sessions,
            events,
            concurrency,
            spread,
        } => scenarios::latency(&target, rate, sessions, events, concurrency, spread).await?,
        Scenario::Hold { streams } => scenarios::hold(&target, streams).await?,
        Scenario::HeldLoad(args) => {
            let mut report = held_load::run(&target, &args).await?;
            report.label = cli.label;
            print!("{}", held_load::markdown(&report));
            if let Some(path) = &cli.out {
                append_line(path, &report)?;
            }
            if let Some(failure) = report.failure() {
                anyhow::bail!("held-load failed: {failure}");
            }
            return Ok(());
        }
        Scenario::Memory {
            sessions,
            events,
            concurrency,
        } => scenarios::memory(&target, sessions, events, concurrency).await?,
        Scenario::Setup {
            sessions,
            concurrency,
        } => scenarios::setup(&target, sessions, concurrency).await?,
        Scenario::Summary { input, ceiling } => {
            print!(
                "{}",
                report::summary(&report::Results::load(&input)?, ceiling)
            );
            return Ok(());
        }
        Scenario::Chart {
            input,
            output,
            ceiling,
            font,
        } => {
            return report::chart(&report::Results::load(&input)?, ceiling, &font, &output);
        }
    };
    report.label = cli.label;
    report.mode = cli.mode;
    print_report(&report);
    if let Some(path) = &cli.out {
        append_line(path, &report)?;
    }
    if report.failed > 0 || report.worker_errors > 0 {
        anyhow::bail!(
            "{} of {} sessions failed, {} events not delivered by the worker: {:?}",
            report.failed,
            report.sessions,
            report.worker_errors,
            report.errors
        );
    }
    Ok(())
}

/// Appends `report` to `path` as one JSON line.
fn append_line(path: &Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(report)?)?;
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "{:<10} {:<10} {:<9} sessions={} failed={} worker_errors={} events={} elapsed={:.2}s events/s={:.0}",
        r.label,
        r.scenario,
        r.mode.name(),
        r.sessions,
        r.failed,
        r.worker_errors,
        r.events,
        r.elapsed_s,
        r.events_per_s
    );
    let l = &r.latency;
    if l.count > 0 {
        println!(
            "  latency µs: p50={} p90={} p99={} max={} (n={})",
            l.p50_us, l.p90_us, l.p99_us, l.max_us, l.count
        );
    }
    let c = &r.cpu;
    if let (Some(g), Some(rd), Some(b)) = (c.gateway_s, c.redis_s, c.bench_s) {
        println!(
            "  CPU s: gateway={g:.2} redis={rd:.2} bench={b:.2} (per event: {:.2} µs gateway, {:.2} µs Redis)",
            r.gateway_cpu_us_per_event.unwrap_or_default(),
            r.redis_cpu_us_per_event.unwrap_or_default()
        );
    }
    if let Some(nodes) = &c.redis_nodes {
        let shares: Vec<String> = nodes
            .iter()
            .map(|n| match n.cpu_s {
                Some(s) => format!("{}={s:.2}", n.node),
                None => format!("{}=?", n.node),
            })
            .collect();
        println!("  Redis CPU s per node: {}", shares.join(" "));
    }
    let s = &r.setup;
    println!(
        "  setup µs:   p50={} p90={} p99={} max={}",
        s.p50_us, s.p90_us, s.p99_us, s.max_us
    );
    if let (Some(streams), Some(rss)) = (r.held_streams, r.rss_per_stream_kib) {
        println!(
            "  held {streams} streams: {rss:.2} KiB RSS/stream, +{} Redis connections, {} subscriber connections",
            r.redis_connections_added.unwrap_or_default(),
            r.redis_subscriber_connections.unwrap_or_default()
        );
    }
    if let Some(m) = &r.redis_memory {
        println!(
            "  Redis used_memory: {} → {} bytes (job stream {:+}): {:.0} bytes/session, {:.1} bytes/event",
            m.used_memory_before,
            m.used_memory_after,
            m.job_stream_bytes_added,
            m.bytes_per_session,
            m.bytes_per_event
        );
    }
    for e in &r.errors {
        println!("  error: {e}");
    }
}
