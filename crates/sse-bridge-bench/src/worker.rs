//! The worker side of the bench: takes jobs from the Redis Stream with its
//! own consumer group and sends each session's events the way PROTOCOL.md
//! asks of a worker — so any conforming gateway (ours, the Python reference)
//! can be driven. [`Mode`] picks how: a plain `PUBLISH` (live only),
//! `FCALL sse_bridge_v4_append` (logged in the session's Stream and published in
//! one call; sse-bridge only), or `FCALL sse_bridge_v4_append_batch` with the
//! events that queued up while the last call was in flight, as the worker
//! SDKs batch them. Anything the worker could not deliver — a
//! failed command, a refused append — is counted in its [`Faults`].
//!
//! Against a Redis Cluster (`--redis-cluster`, PROTOCOL §6) the worker reads
//! jobs and sends events through the cluster client, with the cluster's
//! names: `SPUBLISH sse_session:{<id>}` in Pub/Sub mode, and the same FCALL
//! on `sse_events:{<id>}` / `sse_session_meta:{<id>}` (which SPUBLISHes).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::{mpsc, watch};

use crate::clock::now_us;
use crate::conn::Conn;

/// How the worker hands each event to the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `PUBLISH sse_session:<id> <json>`: live only, as in the seed design
    /// (cluster: `SPUBLISH sse_session:{<id>} <json>`).
    #[default]
    Pubsub,
    /// `FCALL sse_bridge_v4_append`: appended to `sse_events:{id}` and
    /// published in one server-side call, under an attempt id per session.
    Resumable,
    /// Resumable, the SDKs' way: the session's events go through a queue,
    /// and each `FCALL sse_bridge_v4_append_batch` takes every event that
    /// queued up while the call before it was in flight.
    Batched,
}

impl Mode {
    /// The name on the command line and in the reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pubsub => "pubsub",
            Mode::Resumable => "resumable",
            Mode::Batched => "batched",
        }
    }
}

/// What the worker does with each session.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// `worker_ack`, `events` pieces as fast as possible, `FinalAnswerStreamEnd`.
    Burst { events: usize },
    /// The same, one piece every `interval`; with `spread`, each session
    /// ticks at its own phase instead of in step with the sessions started
    /// with it.
    Paced {
        events: usize,
        interval: Duration,
        spread: bool,
    },
    /// `worker_ack`, then nothing until released, then `FinalAnswerStreamEnd`.
    Hold,
}

/// Events the worker failed to deliver, with the first few reasons.
#[derive(Debug, Default)]
pub struct Faults {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Faults {
    const SAMPLES: usize = 5;

    fn record(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().expect("not poisoned");
        if samples.len() < Self::SAMPLES {
            samples.push(what);
        }
    }

    /// How many events failed, and the first few reasons.
    pub fn take(&self) -> (u64, Vec<String>) {
        let samples = std::mem::take(&mut *self.samples.lock().expect("not poisoned"));
        (self.count.load(Ordering::Relaxed), samples)
    }
}

/// A running bench worker; stops when dropped.
pub struct BenchWorker {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    faults: Arc<Faults>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl BenchWorker {
    /// `cluster`: `redis_url` is a Redis Cluster's comma-separated seeds.
    pub async fn start(
        redis_url: &str,
        cluster: bool,
        stream: &str,
        plan: Plan,
        mode: Mode,
    ) -> anyhow::Result<Self> {
        // Two connections (two cluster clients in cluster mode): the reader's
        // blocking XREADGROUP must not hold up the publishes behind it.
        let mut reader = Conn::open(redis_url, cluster).await?;
        let publisher = Conn::open(redis_url, cluster).await?;
        let group = format!("sse_bench_{}_{}", std::process::id(), now_us());
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(&group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut reader)
            .await
            .context("creating the bench consumer group")?;
        let (stop, stop_rx) = watch::channel(false);
        let (release, release_rx) = watch::channel(false);
        let faults = Arc::<Faults>::default();
        let sessions = Sessions {
            redis: publisher,
            cluster,
            plan,
            mode,
            release: release_rx,
            faults: faults.clone(),
        };
        let task = tokio::spawn(read_jobs(
            reader,
            stream.to_owned(),
            group,
            sessions,
            stop_rx,
        ));
        Ok(BenchWorker {
            stop,
            release,
            faults,
            task,
        })
    }

    /// Lets every held session finish (`Plan::Hold`).
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// Stops taking jobs; returns what [`Faults::take`] returns.
    pub async fn stop(self) -> anyhow::Result<(u64, Vec<String>)> {
        self.stop.send_replace(true);
        self.task.await??;
        Ok(self.faults.take())
    }
}

/// What every session the worker runs shares.
#[derive(Clone)]
struct Sessions {
    redis: Conn,
    /// Cluster names and sharded Pub/Sub.
    cluster: bool,
    plan: Plan,
    mode: Mode,
    release: watch::Receiver<bool>,
    faults: Arc<Faults>,
}

async fn read_jobs(
    mut reader: Conn,
    stream: String,
    group: String,
    sessions: Sessions,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = StreamReadOptions::default()
        .group(&group, "bench")
        .count(512)
        .block(100);
    while !*stop.borrow() {
        let reply: StreamReadReply = reader.xread_options(&[&stream], &[">"], &options).await?;
        let mut ids = Vec::new();
        for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
            let job: Option<String> = entry.get("job");
            ids.push(entry.id);
            let Some(session) = job.as_deref().and_then(session_id_of) else {
                eprintln!("bench worker: skipping an entry without a job");
                continue;
            };
            tokio::spawn(run_session(sessions.clone(), session));
        }
        if !ids.is_empty() {
            let _: () = reader.xack(&stream, &group, &ids).await?;
        }
    }
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg(&group)
        .query_async(&mut reader)
        .await?;
    Ok(())
}

fn session_id_of(job: &str) -> Option<String> {
    let job: serde_json::Value = serde_json::from_str(job).ok()?;
    Some(job.get("session_id")?.as_str()?.to_owned())
}

/// One session's events, in order: `worker_ack`, the plan's pieces,
/// `FinalAnswerStreamEnd`. Stops at the first event that was not delivered.
async fn run_session(mut ctx: Sessions, session: String) {
    let mut events = Emitter::new(ctx.redis, ctx.mode, ctx.cluster, &session);
    // Batched: the events queue up, a task of their own sends them.
    let queue = (ctx.mode == Mode::Batched).then(|| {
        let (queue, queued) = mpsc::unbounded_channel();
        // The same attempt: the events are made here, sent there.
        let emitter = events.clone();
        let (faults, session) = (ctx.faults.clone(), session.clone());
        tokio::spawn(async move {
            if let Err(fault) = emitter.drain(queued).await {
                faults.record(format!("session {session}: {fault}"));
            }
        });
        queue
    });
    let mut send = async |event_type: &str, payload: &str| {
        if let Some(queue) = &queue {
            let event = events.event(event_type, payload);
            // Closed: the sending task stopped at a fault it recorded.
            return queue.send((event_type.to_owned(), event)).is_ok();
        }
        match events.emit(event_type, payload).await {
            Ok(()) => true,
            Err(fault) => {
                ctx.faults.record(format!("session {session}: {fault}"));
                false
            }
        }
    };
    if !send("worker_ack", "{}").await {
        return;
    }
    let (pieces, mut ticker) = match ctx.plan {
        Plan::Burst { events } => (events, None),
        Plan::Paced {
            events,
            interval,
            spread,
        } => (events, Some(ticker(interval, spread, &session))),
        Plan::Hold => {
            let _ = ctx.release.wait_for(|released| *released).await;
            (0, None)
        }
    };
    for seq in 0..pieces {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let piece = format!(r#"{{"char":"x","seq":{seq},"t":{}}}"#, now_us());
        if !send("FinalAnswerStream", &piece).await {
            return;
        }
    }
    send("FinalAnswerStreamEnd", "{}").await;
}

/// Ticks every `every` from now — or, with `spread`, from an offset within
/// the first interval that the session's id picks, so that sessions started
/// together do not all send at the same instant.
fn ticker(every: Duration, spread: bool, session: &str) -> tokio::time::Interval {
    let offset = if spread {
        every.mul_f64(fraction_of(session))
    } else {
        Duration::ZERO
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// A number in [0, 1) picked evenly by `session`.
fn fraction_of(session: &str) -> f64 {
    let mut hasher = DefaultHasher::new();
    session.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends one session's events in the worker's [`Mode`].
#[derive(Clone)]
struct Emitter {
    redis: Conn,
    mode: Mode,
    /// `SPUBLISH` rather than `PUBLISH` (cluster mode).
    sharded: bool,
    channel: String,
    log_key: String,
    meta_key: String,
    folded_key: String,
    /// The `attempt` field this job run puts in every event (resumable).
    attempt_field: String,
    attempt: String,
}

/// Distinct attempt ids within one bench process.
static NEXT_ATTEMPT: AtomicU64 = AtomicU64::new(0);

impl Emitter {
    fn new(redis: Conn, mode: Mode, cluster: bool, session: &str) -> Self {
        let attempt = format!("{:016x}", NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed));
        let attempt_field = match mode {
            Mode::Pubsub => String::new(),
            Mode::Resumable | Mode::Batched => format!(r#","attempt":"{attempt}""#),
        };
        // Cluster: the id as a hash tag, so the session's channel, log and
        // metadata share a slot (PROTOCOL §6).
        let id = if cluster {
            format!("{{{session}}}")
        } else {
            session.to_owned()
        };
        Emitter {
            redis,
            mode,
            sharded: cluster,
            channel: format!("sse_session:{id}"),
            log_key: format!("sse_events:{id}"),
            meta_key: format!("sse_session_meta:{id}"),
            folded_key: format!("sse_folded:{id}"),
            attempt_field,
            attempt,
        }
    }

    /// The event's JSON (`payload` is its compact JSON).
    fn event(&self, event_type: &str, payload: &str) -> String {
        format!(
            r#"{{"event_type":"{event_type}","payload":{payload}{}}}"#,
            self.attempt_field
        )
    }

    /// Sends what `queued` brings (event type, JSON), each call taking all
    /// that queued up while the one before was in flight, until the session
    /// is done; `Err` at the first event not delivered.
    async fn drain(
        mut self,
        mut queued: mpsc::UnboundedReceiver<(String, String)>,
    ) -> Result<(), String> {
        const MAX_BATCH: usize = 256;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.send_batch(&batch).await?;
            batch.clear();
        }
        Ok(())
    }

    /// One `FCALL sse_bridge_v4_append_batch` (event type, JSON each).
    async fn send_batch(&mut self, batch: &[(String, String)]) -> Result<(), String> {
        let mut call = redis::cmd("FCALL");
        call.arg("sse_bridge_v4_append_batch")
            .arg(3)
            .arg(&self.log_key)
            .arg(&self.meta_key)
            .arg(&self.folded_key)
            .arg(&self.attempt)
            .arg("")
            .arg("");
        for (event_type, event) in batch {
            call.arg(event).arg(event_type);
        }
        let reply: Value = call
            .query_async(&mut self.redis)
            .await
            .map_err(|e| format!("FCALL sse_bridge_v4_append_batch failed: {e}"))?;
        let parts = match &reply {
            Value::Array(parts) => parts.as_slice(),
            _ => &[],
        };
        match parts {
            [Value::Array(ids), Value::BulkString(refusal), Value::Int(_)]
                if refusal.is_empty() && ids.len() == batch.len() =>
            {
                Ok(())
            }
            [_, Value::BulkString(refusal), _] => Err(format!(
                "batch refused ({})",
                String::from_utf8_lossy(refusal)
            )),
            _ => Err(format!("unexpected reply {reply:?}")),
        }
    }

    /// Delivers one event (`payload` is its compact JSON); `Err` says why not.
    async fn emit(&mut self, event_type: &str, payload: &str) -> Result<(), String> {
        let event = self.event(event_type, payload);
        match self.mode {
            Mode::Pubsub if self.sharded => {
                let sent: redis::RedisResult<i64> = redis::cmd("SPUBLISH")
                    .arg(&self.channel)
                    .arg(event)
                    .query_async(&mut self.redis)
                    .await;
                sent.map(drop).map_err(|e| format!("SPUBLISH failed: {e}"))
            }
            Mode::Pubsub => {
                let sent: redis::RedisResult<i64> = self.redis.publish(&self.channel, event).await;
                sent.map(drop).map_err(|e| format!("PUBLISH failed: {e}"))
            }
            // The session's queue sends them (`drain`).
            Mode::Batched => {
                let batch = [(event_type.to_owned(), event)];
                self.send_batch(&batch).await
            }
            Mode::Resumable => {
                let reply: Value = redis::cmd("FCALL")
                    .arg("sse_bridge_v4_append")
                    .arg(3)
                    .arg(&self.log_key)
                    .arg(&self.meta_key)
                    .arg(&self.folded_key)
                    .arg(event)
                    .arg(event_type)
                    .arg(&self.attempt)
                    .query_async(&mut self.redis)
                    .await
                    .map_err(|e| format!("FCALL sse_bridge_v4_append failed: {e}"))?;
                appended(&reply).map_err(|why| format!("{event_type}: {why}"))
            }
        }
    }
}

/// Reads `sse_bridge_v4_append`'s reply: `[1, log id, receivers]` (logged) and
/// `[2, "", receivers]` (published only) are deliveries; `[0, reason]` is a
/// refusal.
fn appended(reply: &Value) -> Result<(), String> {
    let parts = match reply {
        Value::Array(parts) => parts.as_slice(),
        _ => &[],
    };
    match parts {
        [Value::Int(1), Value::BulkString(id), Value::Int(_)] if !id.is_empty() => Ok(()),
        [Value::Int(2), _, Value::Int(_)] => Ok(()),
        [Value::Int(0), Value::BulkString(reason)] => {
            Err(format!("refused ({})", String::from_utf8_lossy(reason)))
        }
        _ => Err(format!("unexpected reply {reply:?}")),
    }
}
