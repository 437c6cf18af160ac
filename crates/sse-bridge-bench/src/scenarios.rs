//! The scenarios (throughput, latency, setup, hold, and memory: what
//! completed sessions leave in Redis). Each drives real sessions end to end
//! through the gateway under test and counts every session that was not
//! exactly right as a failure, and every event the worker side could not
//! deliver (a refused log append included) as a worker error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::client::{http_client, run_session};
use crate::conn::Conn;
use crate::probe::{self, RedisNodes};
use crate::worker::{BenchWorker, Mode, Plan};

/// Where the gateway under test and its Redis are.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// One Redis, or (with `cluster`) a Redis Cluster's comma-separated seeds.
    pub redis_url: String,
    pub cluster: bool,
    pub stream: String,
    /// Gateway process, for RSS (hold scenario).
    pub gateway_pid: Option<u32>,
    /// How the bench's worker sends events.
    pub mode: Mode,
}

/// p50/p90/p99/max in microseconds.
#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl From<&Histogram<u64>> for Percentiles {
    fn from(h: &Histogram<u64>) -> Self {
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// One scenario's result (one JSON line in `--out`).
#[derive(Debug, Serialize, Default)]
pub struct Report {
    pub scenario: &'static str,
    pub label: String,
    pub mode: Mode,
    pub sessions: u64,
    pub failed: u64,
    /// Events the worker could not deliver (failed commands, refused appends).
    pub worker_errors: u64,
    pub events: u64,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    pub latency: Percentiles,
    pub setup: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// CPU seconds spent during the scenario by each process.
    pub cpu: probe::CpuSplit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_cpu_us_per_event: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cpu_us_per_event: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_streams: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_stream_kib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_connections_added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_subscriber_connections: Option<u64>,
    /// What the sessions of the memory scenario left in Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_memory: Option<MemoryDelta>,
    pub errors: Vec<String>,
}

/// Redis `used_memory` (summed over a cluster's nodes) before and after a
/// run of completed sessions, and the job stream's share of the growth.
#[derive(Debug, Serialize, Default)]
pub struct MemoryDelta {
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    /// Growth of the job stream (`MEMORY USAGE <stream>`): not per-session
    /// state, it is capped by `--redis-stream-max-len`.
    pub job_stream_bytes_added: i64,
    /// (after − before − job stream growth) / sessions.
    pub bytes_per_session: f64,
    /// The same per event delivered.
    pub bytes_per_event: f64,
}

/// Aggregate of many sessions.
struct Tally {
    latency: Histogram<u64>,
    setup: Histogram<u64>,
    ok: u64,
    failed: u64,
    events: u64,
    errors: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            setup: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ok: 0,
            failed: 0,
            events: 0,
            errors: Vec::new(),
        }
    }

    fn into_report(self, scenario: &'static str, elapsed: Duration) -> Report {
        Report {
            scenario,
            sessions: self.ok + self.failed,
            failed: self.failed,
            events: self.events,
            elapsed_s: elapsed.as_secs_f64(),
            events_per_s: self.events as f64 / elapsed.as_secs_f64(),
            latency: (&self.latency).into(),
            setup: (&self.setup).into(),
            errors: self.errors,
            ..Report::default()
        }
    }
}

/// Runs `total` sessions, `concurrency` at a time, each expecting `pieces`.
async fn run_sessions(
    target: &Target,
    total: u64,
    concurrency: usize,
    pieces: u64,
    acked: Arc<AtomicU64>,
    deadline: Duration,
) -> Tally {
    let client = http_client();
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::new()));
    let lanes = (0..concurrency.max(1)).map(|_| {
        let (client, url, next, tally, acked) = (
            client.clone(),
            target.url.clone(),
            next.clone(),
            tally.clone(),
            acked.clone(),
        );
        tokio::spawn(async move {
            let mut local = Tally::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let on_ack = || {
                    acked.fetch_add(1, Ordering::Relaxed);
                };
                match run_session(&client, &url, pieces, &mut local.latency, on_ack).await {
                    Ok(timing) => {
                        local.ok += 1;
                        local.events += timing.events;
                        local.setup.saturating_record(timing.setup_us);
                    }
                    Err(error) => {
                        local.failed += 1;
                        if local.errors.len() < 5 {
                            local.errors.push(error);
                        }
                    }
                }
            }
            let mut tally = tally.lock().await;
            tally.latency.add(&local.latency).expect("same bounds");
            tally.setup.add(&local.setup).expect("same bounds");
            tally.ok += local.ok;
            tally.failed += local.failed;
            tally.events += local.events;
            tally.errors.extend(local.errors.into_iter().take(5));
        })
    });
    let lanes: Vec<_> = lanes.collect();
    let all = futures::future::join_all(lanes);
    if tokio::time::timeout(deadline, all).await.is_err() {
        let mut tally = tally.lock().await;
        tally
            .errors
            .push(format!("scenario did not finish within {deadline:?}"));
        tally.failed += total.saturating_sub(tally.ok + tally.failed);
    }
    Arc::try_unwrap(tally)
        .ok()
        .map(Mutex::into_inner)
        .unwrap_or_else(|| {
            let mut t = Tally::new();
            t.failed = total;
            t.errors.push("lanes still running at the deadline".into());
            t
        })
}

/// How long any scenario may take before its unfinished sessions count as failed.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(600);

/// Runs `sessions` sessions of `pieces` events each against a bench worker
/// following `plan`, and reports them as `scenario` with the CPU split.
async fn run_with_worker(
    target: &Target,
    scenario: &'static str,
    plan: Plan,
    sessions: u64,
    concurrency: usize,
    pieces: u64,
) -> anyhow::Result<Report> {
    let worker = start_worker(target, plan).await?;
    let mut redis = RedisNodes::connect(&target.redis_url, target.cluster).await?;
    let cpu = probe::CpuMeter::start(target.gateway_pid, redis.pids().await, redis.is_cluster());
    let started = Instant::now();
    let acked = Arc::default();
    let tally = run_sessions(
        target,
        sessions,
        concurrency,
        pieces,
        acked,
        SCENARIO_DEADLINE,
    )
    .await;
    let mut report = tally.into_report(scenario, started.elapsed());
    report.cpu = cpu.stop();
    let per_event = |cpu_s: Option<f64>| cpu_s.map(|s| s * 1e6 / report.events.max(1) as f64);
    report.gateway_cpu_us_per_event = per_event(report.cpu.gateway_s);
    report.redis_cpu_us_per_event = per_event(report.cpu.redis_s);
    stop_worker(worker, &mut report).await?;
    Ok(report)
}

async fn start_worker(target: &Target, plan: Plan) -> anyhow::Result<BenchWorker> {
    BenchWorker::start(
        &target.redis_url,
        target.cluster,
        &target.stream,
        plan,
        target.mode,
    )
    .await
}

/// Stops `worker` and adds its faults to `report`.
async fn stop_worker(worker: BenchWorker, report: &mut Report) -> anyhow::Result<()> {
    let (faults, samples) = worker.stop().await?;
    report.worker_errors = faults;
    report
        .errors
        .extend(samples.into_iter().map(|s| format!("worker: {s}")));
    Ok(())
}

/// N sessions × K events at full speed.
pub async fn throughput(
    target: &Target,
    sessions: u64,
    events: u64,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let plan = Plan::Burst {
        events: events as usize,
    };
    run_with_worker(target, "throughput", plan, sessions, concurrency, events).await
}

/// Paced publishing at `rate` events/s in total across `concurrency` sessions.
/// The sessions of a batch start together and tick in step — every tick a
/// burst of up to `concurrency` events — unless `spread` gives each its own
/// phase (reported as `latency-spread`): the same rate, arriving evenly.
pub async fn latency(
    target: &Target,
    rate: f64,
    sessions: u64,
    events: u64,
    concurrency: usize,
    spread: bool,
) -> anyhow::Result<Report> {
    let interval = Duration::from_secs_f64(concurrency as f64 / rate);
    let plan = Plan::Paced {
        events: events as usize,
        interval,
        spread,
    };
    let scenario = if spread { "latency-spread" } else { "latency" };
    let mut report = run_with_worker(target, scenario, plan, sessions, concurrency, events).await?;
    report.target_rate = Some(rate);
    Ok(report)
}

/// POST → `worker_ack` received, with a short session behind it.
pub async fn setup(target: &Target, sessions: u64, concurrency: usize) -> anyhow::Result<Report> {
    let plan = Plan::Burst { events: 1 };
    run_with_worker(target, "setup", plan, sessions, concurrency, 1).await
}

/// `streams` sessions held open after their ack: memory and Redis connections per stream.
pub async fn hold(target: &Target, streams: u64) -> anyhow::Result<Report> {
    let pid = target
        .gateway_pid
        .context("the hold scenario needs --gateway-pid")?;
    let mut redis = RedisNodes::connect(&target.redis_url, target.cluster).await?;
    let worker = start_worker(target, Plan::Hold).await?;
    let (clients_before, _) = redis.clients().await?;
    let rss_before = probe::rss_kib(pid)?;

    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run = {
        let (target, acked) = (target.clone(), acked.clone());
        tokio::spawn(async move {
            run_sessions(
                &target,
                streams,
                streams as usize,
                0,
                acked,
                SCENARIO_DEADLINE,
            )
            .await
        })
    };
    let all_acked = async {
        while acked.load(Ordering::Relaxed) < streams {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let held = tokio::time::timeout(Duration::from_secs(180), all_acked)
        .await
        .is_ok();
    // Let allocations settle before sampling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_held = probe::rss_kib(pid)?;
    let (clients_held, subscribers) = redis.clients().await?;
    worker.release();
    let tally = run.await?;
    let mut report = tally.into_report("hold", started.elapsed());
    if !held {
        report.errors.push(format!(
            "only {} of {streams} streams were acked",
            acked.load(Ordering::Relaxed)
        ));
    }
    report.held_streams = Some(acked.load(Ordering::Relaxed));
    report.rss_per_stream_kib = Some(rss_held.saturating_sub(rss_before) as f64 / streams as f64);
    report.redis_connections_added = Some(clients_held.saturating_sub(clients_before));
    report.redis_subscriber_connections = Some(subscribers);
    stop_worker(worker, &mut report).await?;
    Ok(report)
}

/// `sessions` sessions of `events` pieces each, run to completion: the Redis
/// memory they leave behind (their logs in resumable mode; the gateway's
/// metadata in either mode, and for a live-only session the one-entry log
/// that marks it `history_lost`), per session and per event, net of the job
/// stream's growth. Expects nothing else to write to that Redis meanwhile.
pub async fn memory(
    target: &Target,
    sessions: u64,
    events: u64,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let mut redis = RedisNodes::connect(&target.redis_url, target.cluster).await?;
    let mut jobs = Conn::open(&target.redis_url, target.cluster).await?;
    let before = redis.used_memory().await?;
    let jobs_before = stream_bytes(&mut jobs, &target.stream).await?;
    let plan = Plan::Burst {
        events: events as usize,
    };
    let mut report = run_with_worker(target, "memory", plan, sessions, concurrency, events).await?;
    // The gateway ends its sessions in Redis after the last byte reached the
    // client, and the worker's connections close as it stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = redis.used_memory().await?;
    let jobs_added = stream_bytes(&mut jobs, &target.stream).await? as i64 - jobs_before as i64;
    let net = after as f64 - before as f64 - jobs_added as f64;
    report.redis_memory = Some(MemoryDelta {
        used_memory_before: before,
        used_memory_after: after,
        job_stream_bytes_added: jobs_added,
        bytes_per_session: net / report.sessions.max(1) as f64,
        bytes_per_event: net / report.events.max(1) as f64,
    });
    Ok(report)
}

/// `MEMORY USAGE <key> SAMPLES 0` (every entry counted), 0 when it does not exist.
async fn stream_bytes(redis: &mut Conn, key: &str) -> anyhow::Result<u64> {
    let bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(redis)
        .await
        .context("MEMORY USAGE of the job stream")?;
    Ok(bytes.unwrap_or(0))
}
