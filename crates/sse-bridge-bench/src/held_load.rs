//! The held-load scenario: N streams held open at once — HTTP/2: a few
//! hundred connections; HTTP/1.1: a connection each, spread over loopback
//! source addresses — all on the gateway's one Redis subscriber connection,
//! then paced load spread round-robin over every one of them, one phase per
//! rate in `--rates`.
//!
//! Per phase: the rate asked and achieved, publish → receive latency
//! percentiles, events lost (published, not received within the grace
//! period), gateway / Redis / bench CPU per event delivered, and gateway
//! RSS. Once: RSS per held stream, Redis subscriber connections (one
//! expected) and how many channels the busiest one holds. "How fast at
//! p99 < target" is the highest rate of a phase that met it without loss.
//!
//! The streams open at a bounded rate (`--ramp-per-second`, and at most
//! [`MAX_PENDING_OPENS`] waiting for their ack): a burst of tens of
//! thousands overloads the gateway's session bookkeeping. The bench worker
//! acks each session and holds it (`Plan::Hold`); the paced publisher
//! sends on the sessions' channels itself, a pipeline of PUBLISH per
//! millisecond tick on a fixed schedule (event k is due at k / rate), each
//! event carrying its publish time. At the end the worker sends every
//! session `FinalAnswerStreamEnd`. Every wait is bounded: the ramp by a
//! deadline from its rate, each phase by a multiple of its length, the end
//! by a fixed wait.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::clock::now_us;
use crate::conn::Conn;
use crate::held::{self, Dialer, Gateway, H2_STREAMS_PER_CONNECTION, Link, Protocol, Streams};
use crate::probe::{self, CpuMeter, CpuSplit, RedisNodes};
use crate::scenarios::{Percentiles, Target};
use crate::worker::{BenchWorker, Mode, Plan};

/// The scenario's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Streams held open at once.
    #[arg(long, default_value_t = 10_000)]
    pub streams: u64,
    #[arg(long, value_enum, default_value_t = Protocol::H2)]
    pub protocol: Protocol,
    /// HTTP/2 connections the streams share (at least streams / 256, the
    /// gateway's limit per connection); HTTP/1.1 opens one per stream.
    #[arg(long, default_value_t = 100)]
    pub connections: u64,
    /// Paced phases, events/s in total over all streams, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20000")]
    pub rates: Vec<f64>,
    /// Length of each paced phase.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Connections bind in turn to 127.0.0.2 … 127.0.0.(1+K); 0: the
    /// kernel's choice. Keeps HTTP/1.1 clear of one address's ephemeral ports.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=250))]
    pub source_addresses: u8,
    /// Streams opened per second during the ramp.
    #[arg(long, default_value_t = 2000.0)]
    pub ramp_per_second: f64,
    /// After a phase's last publish, wait this long for its events to arrive.
    #[arg(long, default_value_t = 5.0)]
    pub grace_seconds: f64,
    /// The p99 a phase must stay under to count as sustained, ms.
    #[arg(long, default_value_t = 100.0)]
    pub target_p99_ms: f64,
}

/// Streams opened but not acked yet, at most: the ramp waits beyond.
pub const MAX_PENDING_OPENS: u64 = 2_000;
/// File descriptors beyond the sockets of the streams (Redis, runtime, stdio).
const FD_HEADROOM: u64 = 100;
/// The pacing and ramp schedule's tick.
const TICK: Duration = Duration::from_millis(1);
/// The ramp may take this long beyond twice its planned length.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long the streams may take to end after the release.
const END_WAIT: Duration = Duration::from_secs(120);
/// How long the last pipelines of a phase may take to answer.
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// Between phases, and before RSS is read once the streams are held.
const SETTLE: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long the gateway's CPU is sampled with the streams held and idle.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);

/// One paced phase's result.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// Events/s asked.
    pub rate: f64,
    /// Events sent / time spent sending them.
    pub achieved_rate: f64,
    /// Events received / time until the last arrived (or the grace ran out).
    pub delivered_rate: f64,
    /// PUBLISH commands Redis accepted.
    pub published: u64,
    /// Of those, PUBLISH that reached no subscriber (0 receivers).
    pub unrouted: u64,
    /// PUBLISH that failed (counted as undelivered, not as published).
    pub publish_errors: u64,
    pub received: u64,
    /// Published but not received within the grace period.
    pub lost: u64,
    pub publish_s: f64,
    pub elapsed_s: f64,
    pub latency: Percentiles,
    pub cpu: CpuSplit,
    pub gateway_cpu_us_per_event: Option<f64>,
    pub redis_cpu_us_per_event: Option<f64>,
    pub bench_cpu_us_per_event: Option<f64>,
    pub gateway_rss_kib: Option<u64>,
    /// p99 under the target, nothing lost, and at least 95 % of the rate sent.
    pub sustained: bool,
}

/// The whole run: one JSON line in `--out`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub label: String,
    /// When the run started, Unix seconds.
    pub started_at: u64,
    pub protocol: Protocol,
    /// Streams asked for.
    pub streams: u64,
    /// Streams acked by the end of the ramp.
    pub held_streams: u64,
    pub connections: u64,
    pub source_addresses: u8,
    pub ramp_per_second: f64,
    pub ramp_s: f64,
    /// POST → `worker_ack`.
    pub setup: Percentiles,
    pub gateway_rss_before_kib: u64,
    pub gateway_rss_held_kib: u64,
    pub rss_per_stream_kib: f64,
    pub redis_connections_added: u64,
    pub redis_subscriber_connections: u64,
    /// Channels of the subscribed connection holding the most.
    pub largest_subscription: u64,
    /// Gateway CPU while the streams are held and nothing is published, %
    /// of a core (timers, pings): the floor under each phase's CPU.
    pub gateway_idle_cpu_percent: Option<f64>,
    pub seconds_per_phase: f64,
    pub target_p99_ms: f64,
    pub phases: Vec<PhaseReport>,
    /// The highest rate of a sustained phase.
    pub max_sustained_rate: Option<f64>,
    pub ended_streams: u64,
    pub failed_streams: u64,
    /// Over the whole run, after every stream ended: published − received.
    pub lost_events: u64,
    pub publish_errors: u64,
    pub worker_errors: u64,
    pub errors: Vec<String>,
}

impl Report {
    /// Why the run failed, if it did.
    pub fn failure(&self) -> Option<String> {
        let late: u64 = self.phases.iter().map(|p| p.lost).sum();
        let whole = self.held_streams == self.streams
            && self.failed_streams == 0
            && self.lost_events == 0
            && late == 0
            && self.publish_errors == 0
            && self.worker_errors == 0;
        (!whole).then(|| {
            format!(
                "{} of {} streams held, {} failed, {} events lost ({} not within a phase's grace), \
                 {} publish errors, {} worker errors: {:?}",
                self.held_streams,
                self.streams,
                self.failed_streams,
                self.lost_events,
                late,
                self.publish_errors,
                self.worker_errors,
                self.errors
            )
        })
    }
}

/// Holds the streams, runs the paced phases, ends the streams.
pub async fn run(target: &Target, args: &Args) -> anyhow::Result<Report> {
    let pid = check(target, args)?;
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gateway = Gateway::resolve(&target.url).await?;
    let dialer = Arc::new(Dialer::new(gateway.clone(), args.source_addresses)?);
    let mut redis = RedisNodes::connect(&target.redis_url, false).await?;
    let redis_pids = redis.pids().await;
    let worker = BenchWorker::start(
        &target.redis_url,
        false,
        &target.stream,
        Plan::Hold,
        Mode::Pubsub,
    )
    .await?;
    let links = Links::open(args, &dialer).await?;
    let (clients_before, _) = redis.clients().await?;
    let rss_before = probe::rss_kib(pid)?;
    let streams = Arc::new(Streams::new(gateway, args.rates.len()));
    let mut tasks = JoinSet::new();

    let ramp = ramp(&streams, &links, args, &mut tasks).await;
    tokio::time::sleep(SETTLE).await;
    let held = streams.acked();
    let rss_held = probe::rss_kib(pid)?;
    let (clients_held, _) = redis.clients().await?;
    let subscriptions = redis.subscriptions().await?;
    let idle = CpuMeter::start(Some(pid), Vec::new(), false);
    tokio::time::sleep(IDLE_SAMPLE).await;
    let idle = idle.stop().gateway_s;
    let mut report = Report {
        scenario: "held-load",
        label: String::new(),
        started_at,
        protocol: args.protocol,
        streams: args.streams,
        held_streams: held,
        connections: links.connections(args.streams),
        source_addresses: args.source_addresses,
        ramp_per_second: args.ramp_per_second,
        ramp_s: ramp.as_secs_f64(),
        setup: (&streams.setup()).into(),
        gateway_rss_before_kib: rss_before,
        gateway_rss_held_kib: rss_held,
        rss_per_stream_kib: rss_held.saturating_sub(rss_before) as f64 / held.max(1) as f64,
        redis_connections_added: clients_held.saturating_sub(clients_before),
        redis_subscriber_connections: subscriptions.len() as u64,
        largest_subscription: subscriptions.iter().copied().max().unwrap_or(0),
        gateway_idle_cpu_percent: idle.map(|s| 100.0 * s / IDLE_SAMPLE.as_secs_f64()),
        seconds_per_phase: args.seconds,
        target_p99_ms: args.target_p99_ms,
        phases: Vec::new(),
        max_sustained_rate: None,
        ended_streams: 0,
        failed_streams: 0,
        lost_events: 0,
        publish_errors: 0,
        worker_errors: 0,
        errors: Vec::new(),
    };
    if held < args.streams {
        report.errors.push(format!(
            "only {held} of {} streams were acked after {:.1} s of ramp",
            args.streams,
            ramp.as_secs_f64()
        ));
    }
    eprintln!(
        "held-load: {held} streams held; gateway RSS {:.1} MiB ({:.2} KiB per stream)",
        rss_held as f64 / 1024.0,
        report.rss_per_stream_kib
    );

    let channels = streams.channels();
    if channels.is_empty() {
        report
            .errors
            .push("no stream was acked: no paced phase".into());
    } else {
        let mut publisher = Publisher::open(&target.redis_url, channels).await?;
        let meter = Meter { pid, redis_pids };
        for (index, &rate) in args.rates.iter().enumerate() {
            let failed_before = streams.failed();
            let phase = run_phase(index, rate, args, &mut publisher, &streams, &meter).await;
            eprintln!(
                "held-load: {rate:.0}/s: p50 {:.1} ms, p99 {:.1} ms, {} lost",
                phase.latency.p50_us as f64 / 1e3,
                phase.latency.p99_us as f64 / 1e3,
                phase.lost
            );
            report.phases.push(phase);
            if streams.failed() > failed_before {
                report.errors.push(format!(
                    "streams failed during the {rate:.0}/s phase: later phases skipped"
                ));
                break;
            }
            tokio::time::sleep(SETTLE).await;
        }
        report.errors.extend(publisher.errors());
    }

    worker.release();
    finish(&streams, &mut tasks).await;
    drop(links);
    let (faults, samples) = worker.stop().await?;
    report.worker_errors = faults;
    report
        .errors
        .extend(samples.into_iter().map(|s| format!("worker: {s}")));
    report.ended_streams = streams.ended();
    report.failed_streams = streams.failed();
    let published: u64 = report.phases.iter().map(|p| p.published).sum();
    report.lost_events = published.saturating_sub(streams.received());
    report.publish_errors = report.phases.iter().map(|p| p.publish_errors).sum();
    report.max_sustained_rate = report
        .phases
        .iter()
        .filter(|p| p.sustained)
        .map(|p| p.rate)
        .reduce(f64::max);
    report.errors.extend(streams.errors());
    Ok(report)
}

/// Refuses what cannot work, before anything is opened; the gateway's pid.
fn check(target: &Target, args: &Args) -> anyhow::Result<u32> {
    let pid = target
        .gateway_pid
        .context("held-load needs --gateway-pid (the gateway's RSS and CPU)")?;
    anyhow::ensure!(
        !target.cluster && target.mode == Mode::Pubsub,
        "held-load publishes live-only events with PUBLISH on one Redis: \
         no --redis-cluster, --mode pubsub"
    );
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(
        !args.rates.is_empty() && args.rates.iter().all(|r| r.is_finite() && *r > 0.0),
        "--rates must be positive events/s"
    );
    anyhow::ensure!(
        args.seconds > 0.0 && args.ramp_per_second > 0.0 && args.grace_seconds >= 0.0,
        "--seconds and --ramp-per-second must be positive, --grace-seconds not negative"
    );
    let sockets = match args.protocol {
        Protocol::H2 => {
            let needed = args.streams.div_ceil(H2_STREAMS_PER_CONNECTION);
            anyhow::ensure!(
                args.connections >= needed,
                "HTTP/2: the gateway allows {H2_STREAMS_PER_CONNECTION} streams per connection, \
                 so {} streams need --connections {needed} or more",
                args.streams
            );
            args.connections
        }
        Protocol::H1 => args.streams,
    };
    check_open_files(sockets + FD_HEADROOM, pid, args.protocol)?;
    Ok(pid)
}

/// Both ends hold a socket per connection: this process (its soft limit,
/// already raised to the hard one) and the gateway must allow `needed`.
fn check_open_files(needed: u64, pid: u32, protocol: Protocol) -> anyhow::Result<()> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).context("RLIMIT_NOFILE")?;
    let advice = match protocol {
        Protocol::H1 => format!(
            "HTTP/1.1 holds one socket per stream, so at most {} streams per process here; \
             use --protocol h2 for more",
            soft.saturating_sub(FD_HEADROOM)
        ),
        Protocol::H2 => "use fewer --connections".to_owned(),
    };
    anyhow::ensure!(
        needed <= soft,
        "{needed} file descriptors needed, but RLIMIT_NOFILE is {soft} (hard limit {hard}, \
         which only CAP_SYS_RESOURCE can raise): {advice}"
    );
    if let Some(gateway) = probe::open_files_limit(pid) {
        anyhow::ensure!(
            needed <= gateway,
            "the gateway (pid {pid}) may open {gateway} files, {needed} needed: \
             start it after `ulimit -n {hard}`; {advice}"
        );
    }
    Ok(())
}

/// What the streams are opened over.
enum Links {
    /// The HTTP/2 connections, stream i on connection i mod C.
    H2(Vec<hyper::client::conn::http2::SendRequest<String>>),
    /// A new HTTP/1.1 connection per stream.
    H1(Arc<Dialer>),
}

impl Links {
    async fn open(args: &Args, dialer: &Arc<Dialer>) -> anyhow::Result<Links> {
        if args.protocol == Protocol::H1 {
            return Ok(Links::H1(dialer.clone()));
        }
        let mut senders = Vec::new();
        for i in 0..args.connections {
            let sender = dialer
                .open_h2()
                .await
                .with_context(|| format!("HTTP/2 connection {i}"))?;
            senders.push(sender);
        }
        Ok(Links::H2(senders))
    }

    fn link(&self, stream: u64) -> Link {
        match self {
            Links::H2(senders) => {
                Link::H2(senders[(stream % senders.len() as u64) as usize].clone())
            }
            Links::H1(dialer) => Link::H1(dialer.clone()),
        }
    }

    /// Connections `streams` streams use (HTTP/1.1: one each).
    fn connections(&self, streams: u64) -> u64 {
        match self {
            Links::H2(senders) => senders.len() as u64,
            Links::H1(_) => streams,
        }
    }
}

/// Opens `--streams` streams at `--ramp-per-second`, at most
/// [`MAX_PENDING_OPENS`] unacked at a time, and waits for their acks;
/// bounded by twice the planned ramp plus [`ACK_WAIT`]. The time it took.
async fn ramp(
    streams: &Arc<Streams>,
    links: &Links,
    args: &Args,
    tasks: &mut JoinSet<()>,
) -> Duration {
    let (total, rate) = (args.streams, args.ramp_per_second);
    let limit = Duration::from_secs_f64(2.0 * total as f64 / rate) + ACK_WAIT;
    let started = Instant::now();
    let mut ticker = tick_every(TICK);
    let mut progress = Progress::new();
    let mut opened = 0;
    let settled = || streams.acked() + streams.failed();
    while settled() < total && started.elapsed() < limit {
        ticker.tick().await;
        let room = MAX_PENDING_OPENS.saturating_sub(opened - settled().min(opened));
        let batch = due(started.elapsed(), rate, total)
            .saturating_sub(opened)
            .min(room);
        for _ in 0..batch {
            tasks.spawn(held::hold(streams.clone(), links.link(opened)));
            opened += 1;
        }
        if progress.due() {
            eprintln!(
                "held-load: ramp {:.0} s: {opened} opened, {} acked, {} failed",
                started.elapsed().as_secs_f64(),
                streams.acked(),
                streams.failed()
            );
        }
    }
    started.elapsed()
}

/// How many of `total` things paced at `rate` per second are due
/// `elapsed` into their schedule.
fn due(elapsed: Duration, rate: f64, total: u64) -> u64 {
    ((elapsed.as_secs_f64() * rate) as u64).min(total)
}

fn tick_every(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    // The schedule is computed from the elapsed time: late ticks catch up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker
}

/// A line on stderr every [`PROGRESS_EVERY`].
struct Progress {
    next: Instant,
}

impl Progress {
    fn new() -> Self {
        Progress {
            next: Instant::now() + PROGRESS_EVERY,
        }
    }

    fn due(&mut self) -> bool {
        let due = Instant::now() >= self.next;
        if due {
            self.next += PROGRESS_EVERY;
        }
        due
    }
}

/// Whose CPU a phase measures.
struct Meter {
    pid: u32,
    redis_pids: Vec<(String, Option<u32>)>,
}

/// One phase at `rate`: `--seconds` × rate events paced over every held
/// stream, then up to `--grace-seconds` for them to arrive.
async fn run_phase(
    index: usize,
    rate: f64,
    args: &Args,
    publisher: &mut Publisher,
    streams: &Streams,
    meter: &Meter,
) -> PhaseReport {
    let total = (rate * args.seconds).round() as u64;
    let tally = streams.phase(index);
    let cpu = CpuMeter::start(Some(meter.pid), meter.redis_pids.clone(), false);
    let started = Instant::now();
    let sent = publisher.pace(index, rate, total, args.seconds).await;
    let routed = sent.published - sent.unrouted;
    let grace_end = Instant::now() + Duration::from_secs_f64(args.grace_seconds);
    while tally.received() < routed && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = cpu.stop();
    let elapsed = started.elapsed().as_secs_f64();
    let received = tally.received();
    let latency: Percentiles = (&tally.latency()).into();
    let per_event = |s: Option<f64>| s.map(|s| s * 1e6 / received.max(1) as f64);
    let lost = sent.published.saturating_sub(received);
    let sustained = lost == 0
        && sent.errors == 0
        && (latency.p99_us as f64) < args.target_p99_ms * 1e3
        && sent.events as f64 >= 0.95 * total as f64;
    PhaseReport {
        rate,
        achieved_rate: sent.events as f64 / sent.publish_s.max(1e-9),
        delivered_rate: received as f64 / elapsed.max(1e-9),
        published: sent.published,
        unrouted: sent.unrouted,
        publish_errors: sent.errors,
        received,
        lost,
        publish_s: sent.publish_s,
        elapsed_s: elapsed,
        latency,
        gateway_cpu_us_per_event: per_event(cpu.gateway_s),
        redis_cpu_us_per_event: per_event(cpu.redis_s),
        bench_cpu_us_per_event: per_event(cpu.bench_s),
        cpu,
        gateway_rss_kib: probe::rss_kib(meter.pid).ok(),
        sustained,
    }
}

/// Lets the streams end after the release, within [`END_WAIT`]; those
/// still open then are aborted and counted as failed.
async fn finish(streams: &Streams, tasks: &mut JoinSet<()>) {
    let drained = tokio::time::timeout(END_WAIT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        let left = tasks.len() as u64;
        tasks.shutdown().await;
        for _ in 0..left {
            streams.fail(format!(
                "the stream had not ended {END_WAIT:?} after FinalAnswerStreamEnd was sent"
            ));
        }
    }
}

/// What one phase's publishing did.
struct Sent {
    /// Events sent (in pipelines that answered or failed).
    events: u64,
    published: u64,
    unrouted: u64,
    errors: u64,
    publish_s: f64,
}

/// PUBLISH counts of the pipelines in flight; what was sent and not
/// counted published failed (or never answered).
#[derive(Default)]
struct Replies {
    published: AtomicU64,
    unrouted: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Replies {
    fn record(&self, count: u64, reply: redis::RedisResult<Vec<i64>>) {
        match reply {
            Ok(receivers) => {
                let unrouted = receivers.iter().filter(|r| **r == 0).count() as u64;
                self.published
                    .fetch_add(receivers.len() as u64, Ordering::Relaxed);
                self.unrouted.fetch_add(unrouted, Ordering::Relaxed);
            }
            Err(error) => {
                let mut samples = self.samples.lock().expect("not poisoned");
                if samples.len() < 5 {
                    samples.push(format!("a PUBLISH pipeline of {count} failed: {error}"));
                }
            }
        }
    }
}

/// The paced publisher: event k of the run goes to held session k mod M
/// as its piece number k div M, so every session sees 0, 1, 2, … in order.
struct Publisher {
    conn: Conn,
    channels: Arc<[String]>,
    next: u64,
    replies: Arc<Replies>,
}

impl Publisher {
    async fn open(redis_url: &str, channels: Vec<String>) -> anyhow::Result<Self> {
        Ok(Publisher {
            conn: Conn::open(redis_url, false).await?,
            channels: channels.into(),
            next: 0,
            replies: Arc::default(),
        })
    }

    /// Sends `total` events at `rate` per second: each tick, one pipeline
    /// of the events due by then; replies are counted as they come, within
    /// [`REPLY_WAIT`] after the last. Gives up sending after 2 × `seconds`
    /// plus 10 s (a stalled bench), sending fewer.
    async fn pace(&mut self, phase: usize, rate: f64, total: u64, seconds: f64) -> Sent {
        let before = self.counts();
        let limit = Duration::from_secs_f64(2.0 * seconds + 10.0);
        let mut inflight = JoinSet::new();
        let mut ticker = tick_every(TICK);
        let started = Instant::now();
        let mut sent = 0;
        while sent < total && started.elapsed() < limit {
            ticker.tick().await;
            let now_due = due(started.elapsed(), rate, total);
            if now_due > sent {
                let count = now_due - sent;
                let pipe = batch(&self.channels, &mut self.next, phase, count);
                let (mut conn, replies) = (self.conn.clone(), self.replies.clone());
                inflight.spawn(async move {
                    replies.record(count, pipe.query_async(&mut conn).await);
                });
                sent = now_due;
            }
            while inflight.try_join_next().is_some() {}
        }
        let publish_s = started.elapsed().as_secs_f64();
        let answered = tokio::time::timeout(REPLY_WAIT, async {
            while inflight.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !answered {
            inflight.shutdown().await;
        }
        let after = self.counts();
        let published = after.0 - before.0;
        Sent {
            events: sent,
            published,
            unrouted: after.1 - before.1,
            // Unanswered pipelines count as failed.
            errors: sent - published,
            publish_s,
        }
    }

    /// (published, unrouted) so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.replies.published.load(Ordering::Relaxed),
            self.replies.unrouted.load(Ordering::Relaxed),
        )
    }

    fn errors(&self) -> Vec<String> {
        self.replies.samples.lock().expect("not poisoned").clone()
    }
}

/// The `count` events from number `next` on (advanced past them), one
/// PUBLISH each, stamped with their publish time: now.
fn batch(channels: &[String], next: &mut u64, phase: usize, count: u64) -> redis::Pipeline {
    let sessions = channels.len() as u64;
    let t = now_us();
    let mut pipe = redis::pipe();
    for _ in 0..count {
        let (k, seq) = (*next, *next / sessions);
        *next += 1;
        let event = format!(
            r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"x","seq":{seq},"t":{t},"phase":{phase}}}}}"#
        );
        pipe.cmd("PUBLISH")
            .arg(&channels[(k % sessions) as usize])
            .arg(event);
    }
    pipe
}

/// The report as markdown: the held streams, then a row per phase.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "### held-load, {} over {}: {} of {} streams held\n\n",
        r.label,
        match r.protocol {
            Protocol::H2 => format!("HTTP/2 ({} connections)", r.connections),
            Protocol::H1 => format!(
                "HTTP/1.1 (a connection per stream, {} source addresses)",
                r.source_addresses
            ),
        },
        r.held_streams,
        r.streams
    );
    out.push_str(&format!(
        "- ramp {:.1} s at {:.0} streams/s; POST → ack p50 {:.1} ms, p99 {:.1} ms\n\
         - gateway RSS {:.1} MiB held ({:+.1} MiB, {:.2} KiB per stream); idle CPU {} % of a core\n\
         - Redis: {} subscriber connection(s), the largest on {} channels; {:+} connections while held\n\n",
        r.ramp_s,
        r.ramp_per_second,
        r.setup.p50_us as f64 / 1e3,
        r.setup.p99_us as f64 / 1e3,
        r.gateway_rss_held_kib as f64 / 1024.0,
        (r.gateway_rss_held_kib as f64 - r.gateway_rss_before_kib as f64) / 1024.0,
        r.rss_per_stream_kib,
        r.gateway_idle_cpu_percent
            .map_or("—".to_owned(), |p| format!("{p:.1}")),
        r.redis_subscriber_connections,
        r.largest_subscription,
        r.redis_connections_added
    ));
    out.push_str(
        "| rate asked | sent/s | delivered/s | lost | p50 ms | p90 ms | p99 ms | max ms \
         | gateway CPU s | gateway µs/event | Redis µs/event | bench µs/event | gateway RSS MiB | sustained |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for p in &r.phases {
        out.push_str(&phase_row(p));
    }
    out.push_str(&match r.max_sustained_rate {
        Some(rate) => format!(
            "\nHighest rate with p99 < {} ms and nothing lost: {rate:.0} events/s\n",
            r.target_p99_ms
        ),
        None => format!(
            "\nNo phase kept p99 < {} ms without loss\n",
            r.target_p99_ms
        ),
    });
    out
}

fn phase_row(p: &PhaseReport) -> String {
    let ms = |us: u64| format!("{:.1}", us as f64 / 1e3);
    let opt = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.2}"));
    format!(
        "| {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        p.rate,
        p.achieved_rate,
        p.delivered_rate,
        p.lost,
        ms(p.latency.p50_us),
        ms(p.latency.p90_us),
        ms(p.latency.p99_us),
        ms(p.latency.max_us),
        opt(p.cpu.gateway_s),
        opt(p.gateway_cpu_us_per_event),
        opt(p.redis_cpu_us_per_event),
        opt(p.bench_cpu_us_per_event),
        p.gateway_rss_kib
            .map_or("—".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
        if p.sustained { "yes" } else { "no" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_fixed_and_capped() {
        assert_eq!(due(Duration::ZERO, 20_000.0, 400_000), 0);
        assert_eq!(due(Duration::from_millis(1), 20_000.0, 400_000), 20);
        assert_eq!(due(Duration::from_millis(1500), 20_000.0, 400_000), 30_000);
        assert_eq!(due(Duration::from_secs(25), 20_000.0, 400_000), 400_000);
    }

    #[test]
    fn events_go_round_robin_with_per_session_sequence_numbers() {
        let channels: Vec<String> = (0..3).map(|i| format!("sse_session:{i}")).collect();
        let mut next = 0;
        let packed =
            String::from_utf8_lossy(&batch(&channels, &mut next, 1, 4).get_packed_pipeline())
                .into_owned();
        assert_eq!(next, 4);
        let order: Vec<&str> = packed
            .split("\r\n")
            .filter(|part| part.starts_with("sse_session:"))
            .collect();
        assert_eq!(
            order,
            [
                "sse_session:0",
                "sse_session:1",
                "sse_session:2",
                "sse_session:0"
            ]
        );
        assert!(
            packed.contains(r#""seq":1,"#),
            "the fourth event is session 0's second"
        );
        assert!(packed.contains(r#""phase":1}"#));
    }
}
