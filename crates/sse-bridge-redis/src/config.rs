//! Configuration of the Redis backends: where Redis is and how patient to be.
//!
//! Every field is public and has a default via the `new(url)` constructors,
//! so callers set only what they need. Durations are tuned for a gateway on
//! the same network as Redis; raise them for a distant managed instance.

use std::time::Duration;

use sse_bridge_core::SubscriptionBound;
use sse_bridge_core::log::LogLimits;

/// Connection settings shared by [`crate::RedisBus`] and [`crate::RedisJobQueue`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS;
    /// with `cluster`, one or more seed nodes, comma-separated.
    pub url: String,
    /// A Redis Cluster: hash-tagged names and sharded Pub/Sub (PROTOCOL §6).
    pub cluster: bool,
    /// Prefix of the connection names set with `CLIENT SETNAME`:
    /// `{client_name}:sub`, `{client_name}:pub`, ... (default `sse-bridge`).
    pub client_name: String,
    /// What a subscription may queue before its subscriber is cut off as
    /// too slow (default 1024 messages, 16 MiB, messages up to 1 MiB).
    pub subscription: SubscriptionBound,
    /// Bound on establishing one connection (default 2 s).
    pub connect_timeout: Duration,
    /// Bound on one command's answer: PUBLISH, SUBSCRIBE, PING, XADD...
    /// (default 2 s).
    pub command_timeout: Duration,
    /// First delay between reconnect attempts, doubled up to `reconnect_max`
    /// (default 50 ms).
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts (default 2 s).
    pub reconnect_max: Duration,
    /// How often the subscriber connection is PINGed, so a peer that vanished
    /// without closing the socket is noticed (default 5 s).
    pub health_check_interval: Duration,
    /// PEM file of the CA that signed the server's certificate, for
    /// `rediss://` to a server with a private CA (default: the system's
    /// trust store).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// How long this gateway counts as following its sessions without
    /// renewing its presence (renewed every third of it): the follower
    /// counts of a gateway that crashed stop counting this long after, and
    /// another gateway takes its sessions over (default 15 s).
    pub presence_lease: Duration,
    /// Cap and TTL of the session logs this process creates (gateways write
    /// them into each session's metadata; workers' appends follow them).
    pub log: LogLimits,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            cluster: false,
            client_name: "sse-bridge".into(),
            subscription: SubscriptionBound::messages(1024),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            health_check_interval: Duration::from_secs(5),
            tls_ca_file: None,
            presence_lease: Duration::from_secs(15),
            log: LogLimits::default(),
        }
    }
}

impl RedisConfig {
    /// The URLs in `url` (one, or a cluster's seeds).
    pub fn seeds(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Settings of the Redis Streams job queue.
#[derive(Debug, Clone)]
pub struct RedisQueueConfig {
    pub redis: RedisConfig,
    /// Stream the jobs are appended to (default `sse_jobs`).
    pub stream: String,
    /// Split the queue into this many streams, `<stream>:0` … `<stream>:<n-1>`
    /// (default 1: the one stream `<stream>`), so that on a Redis Cluster
    /// the partitions spread over the shards. Dispatch goes round-robin;
    /// workers read and reclaim every partition.
    pub partitions: usize,
    /// Consumer group the workers read through (default `sse_workers`).
    pub group: String,
    /// Approximate cap on the stream's length, `XADD MAXLEN ~` (default 100 000).
    pub max_len: usize,
    /// A job delivered but neither acknowledged nor kept alive for this long
    /// is taken over by another worker (default 60 s).
    pub claim_idle: Duration,
    /// Longest single blocking read of `next_job` (default 2 s); bounds how
    /// late the check for abandoned jobs can run.
    pub block: Duration,
}

impl RedisQueueConfig {
    /// The stream of every partition.
    pub fn streams(&self) -> Vec<String> {
        match self.partitions {
            0 | 1 => vec![self.stream.clone()],
            n => (0..n).map(|i| format!("{}:{i}", self.stream)).collect(),
        }
    }

    pub fn new(url: impl Into<String>) -> Self {
        RedisQueueConfig {
            redis: RedisConfig::new(url),
            stream: "sse_jobs".into(),
            partitions: 1,
            group: "sse_workers".into(),
            max_len: 100_000,
            claim_idle: Duration::from_secs(60),
            block: Duration::from_secs(2),
        }
    }
}
