//! [`RedisJobQueue`]: the job queue on a Redis Stream and a consumer group.
//!
//! * Dispatch: `XADD <stream> MAXLEN ~ <max_len> * job <json>`.
//! * Workers: `XREADGROUP GROUP <group> <consumer> COUNT 1 BLOCK .. STREAMS
//!   <stream> >` on a dedicated connection (a blocking read would stall every
//!   other command pipelined behind it).
//! * A taken job stays in the group's pending list until its session ended
//!   and [`JobAck::ack`] sent `XACK`. Meanwhile a keepalive re-claims it for
//!   its owner every `claim_idle / 3`, so only jobs of a *dead* worker ever
//!   look idle. `next_job` sweeps the pending list with `XAUTOCLAIM` every
//!   `claim_idle / 2` and takes over entries idle for `claim_idle`.
//! * An entry that is not a valid job is logged, acknowledged and skipped.
//! * Partitions (`RedisQueueConfig::partitions` > 1, for a Redis Cluster):
//!   dispatch goes round-robin over `<stream>:0..n`; a worker keeps one
//!   blocking read in flight per partition, each on its own connection (a
//!   cluster cannot read streams of different slots in one command), and
//!   takes whichever answers first — the others stay in flight, so nothing
//!   they are handed is lost. Sweeps visit the partitions in turn.
//!
//! A `next_job` cancelled during its blocking read may lose the entry Redis
//! just handed out; it is then reclaimed like a crashed worker's job. So a
//! stopping worker calls `stop_reading` and lets the read in progress
//! answer (at most `block`): `next_job` then returns what it was handed, or
//! `None`. (With partitions, entries the other partitions' reads were handed
//! meanwhile wait for `claim_idle`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{Cmd, Value};
use sse_bridge_core::queue::{JobAck, JobDispatcher, JobSource, ReceivedJob};
use sse_bridge_core::{BrokerError, Job};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RedisQueueConfig;
use crate::conn::Commands;

/// The stream entry field holding the job's JSON.
const JOB_FIELD: &str = "job";
/// Shortest blocking read: `BLOCK 0` would mean "forever".
const MIN_BLOCK: Duration = Duration::from_millis(10);

/// Refreshes an entry's idle time only while `consumer` still owns it, so a
/// worker that was presumed dead never steals its job back.
const KEEPALIVE_SCRIPT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
";

/// Job queue on Redis Streams. Cheap to clone; clones share one consumer name.
#[derive(Clone)]
pub struct RedisJobQueue {
    shared: Arc<Shared>,
}

struct Shared {
    config: RedisQueueConfig,
    /// The partitions' streams (one: the configured stream).
    streams: Vec<String>,
    /// The partition the next dispatch goes to.
    next_partition: AtomicUsize,
    /// XADD, XACK, XAUTOCLAIM, keepalives, PING.
    commands: Arc<Commands>,
    /// Where new entries come from.
    reader: NewEntries,
    consumer: String,
    /// Serialises reads (one blocking read per connection at a time) and
    /// holds the sweep's progress.
    sweep: Mutex<Sweep>,
    /// [`JobSource::stop_reading`] was called.
    stopping: std::sync::atomic::AtomicBool,
}

/// Where the sweep stands: partition by partition, each from a cursor.
struct Sweep {
    partition: usize,
    cursor: String,
    next_at: Instant,
}

/// The blocking reads of new entries.
enum NewEntries {
    /// One stream: one read at a time on a dedicated connection.
    Single(Commands),
    /// Several: a task per partition keeps a read in flight on its own
    /// connection and hands what it got over, in arrival order. Started by
    /// the first `next_job`: a gateway, which only dispatches, never reads.
    Partitioned(tokio::sync::OnceCell<PartitionReaders>),
}

/// The running partition readers and what they hand over.
struct PartitionReaders {
    entries: Mutex<mpsc::Receiver<(usize, StreamId)>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PartitionReaders {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PartitionReaders {
    async fn start(shared: &Shared) -> Result<PartitionReaders, BrokerError> {
        let config = &shared.config;
        let redis = &config.redis;
        // The read blocks for up to `block` before Redis answers.
        let read_timeout = config.block + redis.command_timeout;
        let (tx, rx) = mpsc::channel(1);
        let mut tasks = Vec::with_capacity(shared.streams.len());
        for (partition, stream) in shared.streams.iter().enumerate() {
            let read = PartitionRead {
                conn: Commands::connect(redis, "jobs-read", read_timeout, None).await?,
                stream: stream.clone(),
                group: config.group.clone(),
                consumer: shared.consumer.clone(),
                block: config.block,
            };
            tasks.push(tokio::spawn(read.run(partition, tx.clone())));
        }
        Ok(PartitionReaders {
            entries: Mutex::new(rx),
            tasks,
        })
    }
}

impl RedisJobQueue {
    /// Connects and creates the consumer group (and the stream) if missing.
    pub async fn connect(config: RedisQueueConfig) -> Result<RedisJobQueue, BrokerError> {
        let redis = &config.redis;
        let commands = Commands::connect(redis, "jobs", redis.command_timeout, None).await?;
        let streams = config.streams();
        let consumer = consumer_name();
        // Groups first: the partition readers start reading at once.
        for stream in &streams {
            create_group(&commands, stream, &config.group).await?;
        }
        let reader = if streams.len() == 1 {
            // The read blocks for up to `block` before Redis answers.
            let read_timeout = config.block + redis.command_timeout;
            NewEntries::Single(Commands::connect(redis, "jobs-read", read_timeout, None).await?)
        } else {
            NewEntries::Partitioned(tokio::sync::OnceCell::new())
        };
        Ok(RedisJobQueue {
            shared: Arc::new(Shared {
                consumer,
                next_partition: AtomicUsize::new(0),
                commands: Arc::new(commands),
                reader,
                sweep: Mutex::new(Sweep {
                    partition: 0,
                    cursor: "0-0".into(),
                    next_at: Instant::now(),
                }),
                streams,
                config,
                stopping: Default::default(),
            }),
        })
    }

    /// This process's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// One XAUTOCLAIM step if a sweep is due; `None` when nothing was taken.
    async fn sweep_step(
        &self,
        sweep: &mut Sweep,
    ) -> Result<Option<(usize, StreamId)>, BrokerError> {
        let config = &self.shared.config;
        if Instant::now() < sweep.next_at {
            return Ok(None);
        }
        let partition = sweep.partition;
        let stream = &self.shared.streams[partition];
        let autoclaim = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(&config.group)
            .arg(&self.shared.consumer)
            .arg(millis(config.claim_idle))
            .arg(&sweep.cursor)
            .arg("COUNT")
            .arg(1)
            .to_owned();
        let reply: StreamAutoClaimReply = self
            .query_group(&self.shared.commands, stream, &autoclaim)
            .await?;
        if reply.next_stream_id == "0-0" {
            // This partition is swept: the next one, or a pause after the last.
            sweep.partition = (partition + 1) % self.shared.streams.len();
            if sweep.partition == 0 {
                sweep.next_at = Instant::now() + config.claim_idle / 2;
            }
        }
        sweep.cursor = reply.next_stream_id;
        let claimed = reply.claimed.into_iter().next();
        if let Some(entry) = &claimed {
            tracing::info!(%stream, id = %entry.id, "reclaimed a job abandoned by another worker");
        }
        Ok(claimed.map(|entry| (partition, entry)))
    }

    /// Waits for a new entry, waking in time for the next sweep.
    async fn read_new(&self, sweep: &Sweep) -> Result<Option<(usize, StreamId)>, BrokerError> {
        let config = &self.shared.config;
        let until_sweep = sweep.next_at.saturating_duration_since(Instant::now());
        let block = config.block.min(until_sweep).max(MIN_BLOCK);
        match &self.shared.reader {
            NewEntries::Single(reader) => {
                let stream = &self.shared.streams[0];
                let read = xreadgroup(&config.group, &self.shared.consumer, block, stream);
                let reply: Option<StreamReadReply> =
                    self.query_group(reader, stream, &read).await?;
                Ok(reply
                    .and_then(|r| r.keys.into_iter().flat_map(|k| k.ids).next())
                    .map(|entry| (0, entry)))
            }
            NewEntries::Partitioned(readers) => {
                let shared = &self.shared;
                let readers = readers
                    .get_or_try_init(|| PartitionReaders::start(shared))
                    .await?;
                let mut entries = readers.entries.lock().await;
                match tokio::time::timeout(block, entries.recv()).await {
                    Ok(Some(entry)) => Ok(Some(entry)),
                    Ok(None) => Err(BrokerError::Closed),
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// Runs a group command on `stream`; recreates the group once if it
    /// vanished (stream deleted, or a Redis without persistence restarted).
    async fn query_group<T: redis::FromRedisValue>(
        &self,
        conn: &Commands,
        stream: &str,
        cmd: &Cmd,
    ) -> Result<T, BrokerError> {
        match conn.query(cmd).await {
            Err(BrokerError::Rejected(message)) if message.contains("NOGROUP") => {
                tracing::warn!(%stream, "consumer group missing, recreating it");
                create_group(&self.shared.commands, stream, &self.shared.config.group).await?;
                conn.query(cmd).await
            }
            other => other,
        }
    }

    /// Turns an entry into a job, or acknowledges and skips it if malformed.
    async fn accept(
        &self,
        partition: usize,
        entry: StreamId,
    ) -> Result<Option<ReceivedJob>, BrokerError> {
        let config = &self.shared.config;
        let stream = &self.shared.streams[partition];
        let job = match entry.map.get(JOB_FIELD) {
            Some(Value::BulkString(raw)) => Job::from_json(raw).map_err(|e| e.to_string()),
            Some(_) => Err(format!("field `{JOB_FIELD}` is not a string")),
            None => Err(format!("no field `{JOB_FIELD}`")),
        };
        match job {
            Ok(job) => Ok(Some(ReceivedJob {
                job,
                ack: Box::new(RedisAck::new(&self.shared, stream, entry.id)),
            })),
            Err(reason) => {
                tracing::warn!(%stream, id = %entry.id, %reason, "skipping malformed job entry");
                xack(&self.shared.commands, stream, &config.group, &entry.id).await?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl JobDispatcher for RedisJobQueue {
    async fn dispatch(&self, job: &Job) -> Result<(), BrokerError> {
        let config = &self.shared.config;
        let partition = self.shared.next_partition.fetch_add(1, Ordering::Relaxed);
        let xadd = redis::cmd("XADD")
            .arg(&self.shared.streams[partition % self.shared.streams.len()])
            .arg("MAXLEN")
            .arg("~")
            .arg(config.max_len)
            .arg("*")
            .arg(JOB_FIELD)
            .arg(job.to_json())
            .to_owned();
        self.shared.commands.query::<String>(&xadd).await.map(drop)
    }

    async fn check_ready(&self) -> Result<(), BrokerError> {
        let limit = self.shared.config.redis.command_timeout;
        let ping = redis::cmd("PING");
        tokio::time::timeout(limit, self.shared.commands.query::<()>(&ping))
            .await
            .map_err(|_| BrokerError::Timeout(limit))?
    }
}

#[async_trait]
impl JobSource for RedisJobQueue {
    async fn next_job(&self) -> Result<Option<ReceivedJob>, BrokerError> {
        loop {
            let mut sweep = self.shared.sweep.lock().await;
            let entry = match self.sweep_step(&mut sweep).await? {
                Some(entry) => Some(entry),
                None => self.read_new(&sweep).await?,
            };
            drop(sweep);
            match entry {
                Some((partition, entry)) => {
                    if let Some(job) = self.accept(partition, entry).await? {
                        return Ok(Some(job));
                    }
                }
                // The read answered empty: a stopping worker reads no more.
                None if self.shared.stopping.load(Ordering::Acquire) => return Ok(None),
                None => {}
            }
        }
    }

    fn stop_reading(&self) -> bool {
        self.shared.stopping.store(true, Ordering::Release);
        true
    }
}

/// Acknowledges one entry; keeps it claimed until then.
struct RedisAck {
    commands: Arc<Commands>,
    stream: String,
    group: String,
    id: String,
    keepalive: JoinHandle<()>,
}

impl RedisAck {
    fn new(shared: &Shared, stream: &str, id: String) -> Self {
        let keepalive = tokio::spawn(keep_claimed(
            shared.commands.clone(),
            shared.config.clone(),
            stream.to_owned(),
            shared.consumer.clone(),
            id.clone(),
        ));
        RedisAck {
            commands: shared.commands.clone(),
            stream: stream.to_owned(),
            group: shared.config.group.clone(),
            id,
            keepalive,
        }
    }
}

impl Drop for RedisAck {
    fn drop(&mut self) {
        // Dropped unacknowledged: let the job become reclaimable.
        self.keepalive.abort();
    }
}

#[async_trait]
impl JobAck for RedisAck {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.keepalive.abort();
        xack(&self.commands, &self.stream, &self.group, &self.id).await
    }
}

/// Refreshes the entry's idle time until aborted or until it changed owner.
async fn keep_claimed(
    commands: Arc<Commands>,
    config: RedisQueueConfig,
    stream: String,
    consumer: String,
    id: String,
) {
    let period = (config.claim_idle / 3).max(MIN_BLOCK);
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    let script = redis::cmd("EVAL")
        .arg(KEEPALIVE_SCRIPT)
        .arg(1)
        .arg(&stream)
        .arg(&config.group)
        .arg(&consumer)
        .arg(&id)
        .to_owned();
    loop {
        ticks.tick().await;
        match commands.query::<i64>(&script).await {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(%id, "job was taken over by another worker");
                return;
            }
            // Redis unreachable: try again next tick, the job is still ours.
            Err(err) => tracing::debug!(%id, %err, "job keepalive failed"),
        }
    }
}

async fn xack(commands: &Commands, stream: &str, group: &str, id: &str) -> Result<(), BrokerError> {
    let xack = redis::cmd("XACK").arg(stream).arg(group).arg(id).to_owned();
    commands.query::<u64>(&xack).await.map(drop)
}

/// Creates the group reading from the stream's start, so jobs dispatched
/// before the first worker started are not skipped. Idempotent.
async fn create_group(commands: &Commands, stream: &str, group: &str) -> Result<(), BrokerError> {
    let create = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .to_owned();
    match commands.query::<()>(&create).await {
        Err(BrokerError::Rejected(message)) if message.contains("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// One partition's reader: keeps a blocking read in flight and hands each
/// entry over (waiting until `next_job` takes it).
struct PartitionRead {
    conn: Commands,
    stream: String,
    group: String,
    consumer: String,
    block: Duration,
}

impl PartitionRead {
    async fn run(self, partition: usize, entries: mpsc::Sender<(usize, StreamId)>) {
        let read = xreadgroup(&self.group, &self.consumer, self.block, &self.stream);
        loop {
            match self.conn.query::<Option<StreamReadReply>>(&read).await {
                Ok(reply) => {
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        if entries.send((partition, entry)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(BrokerError::Rejected(message)) if message.contains("NOGROUP") => {
                    tracing::warn!(stream = %self.stream, "consumer group missing, recreating it");
                    let _ = create_group(&self.conn, &self.stream, &self.group).await;
                }
                Err(error) => {
                    tracing::warn!(stream = %self.stream, %error, "cannot read jobs; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// `XREADGROUP … COUNT 1 BLOCK <block> STREAMS <stream> >`.
fn xreadgroup(group: &str, consumer: &str, block: Duration, stream: &str) -> Cmd {
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(millis(block))
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .to_owned()
}

/// `hostname-pid-random`: unique per queue instance, readable in XINFO.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
