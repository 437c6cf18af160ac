//! Command line and environment: every option has an `SSE_BRIDGE_*` variable.
//! A config file (`--config`, layered under both by [`crate::config`]) can
//! set the options of `serve` and `worker` too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sse_bridge_core::SubscriptionBound;
use sse_bridge_core::log::LogLimits;
use sse_bridge_core::session::SessionConfig;

#[derive(Debug, Parser)]
#[command(
    name = "sse-bridge",
    version,
    about = "Streams AI-worker events to HTTP clients as Server-Sent Events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start; boxing buys nothing
pub enum Command {
    /// Run the gateway (with the in-process broker and demo worker by default).
    Serve(ServeArgs),
    /// Run the demo agent as a worker against Redis (and Redis or Kafka jobs).
    Worker(WorkerCommandArgs),
    /// Publish one event on a session's channel (for scripts and debugging).
    Publish(PublishArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

impl Command {
    /// The config file this subcommand was given, if it takes one.
    pub fn config_file(&self) -> Option<&Path> {
        match self {
            Command::Serve(args) | Command::Config(ConfigCommand::Print(args)) => {
                args.config_file.path.as_deref()
            }
            Command::Worker(args) => args.config_file.path.as_deref(),
            Command::Publish(_) => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings `serve` would run with — its config file,
    /// environment and these flags layered — as TOML, each with where its
    /// value came from; secrets redacted.
    Print(ServeArgs),
}

/// The TOML file under the environment and the flags.
#[derive(Debug, Args)]
pub struct ConfigFileArg {
    /// TOML file of settings: the keys are the long options in snake_case
    /// (`ack_timeout = "10s"`); environment variables and flags override it.
    #[arg(
        id = "config",
        long = "config",
        env = "SSE_BRIDGE_CONFIG",
        value_name = "FILE"
    )]
    pub path: Option<PathBuf>,
}

/// Which job queue carries jobs from gateways to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueKind {
    /// In-process queue: gateway and worker in one process.
    Embedded,
    /// Redis Stream read through a consumer group.
    Redis,
    /// Kafka topic read through a consumer group.
    Kafka,
}

/// Where events and jobs travel.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Redis for events (Pub/Sub) and, by default, jobs (Streams).
    /// Without it everything stays in this process. With `--redis-cluster`:
    /// one or more seed nodes, comma-separated.
    #[arg(long, env = "SSE_BRIDGE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// `--redis-url` is a Redis Cluster: hash-tagged names, sharded Pub/Sub.
    #[arg(long, env = "SSE_BRIDGE_REDIS_CLUSTER")]
    pub redis_cluster: bool,

    /// PEM file of a private CA that signed the Redis server's certificate
    /// (for `rediss://`; default: the system trust store).
    #[arg(long, env = "SSE_BRIDGE_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<std::path::PathBuf>,

    /// How long a gateway's streams count as following their sessions
    /// without it renewing its presence in Redis (every third of this): after
    /// a gateway crashed, its follower counts lapse this long after and
    /// another gateway cancels its abandoned sessions as their departures
    /// would have.
    #[arg(long, env = "SSE_BRIDGE_PRESENCE_LEASE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub presence_lease: std::time::Duration,

    /// Name of this process's Redis connections in CLIENT LIST (suffixed
    /// `:sub`, `:pub`, `:jobs`, ...); default `sse-bridge-gateway` / `sse-bridge-worker`.
    #[arg(long, env = "SSE_BRIDGE_REDIS_CLIENT_NAME")]
    pub redis_client_name: Option<String>,

    /// Job queue; default `redis` when --redis-url is set, else `embedded`.
    #[arg(long, env = "SSE_BRIDGE_QUEUE", value_enum)]
    pub queue: Option<QueueKind>,

    /// Redis Stream of jobs.
    #[arg(long, env = "SSE_BRIDGE_REDIS_STREAM", default_value = "sse_jobs")]
    pub redis_stream: String,

    /// Consumer group of the workers (Redis Stream and Kafka).
    #[arg(long, env = "SSE_BRIDGE_GROUP", default_value = "sse_workers")]
    pub group: String,

    /// Approximate cap of the Redis job stream (XADD MAXLEN ~).
    #[arg(
        long,
        env = "SSE_BRIDGE_REDIS_STREAM_MAX_LEN",
        default_value_t = 100_000
    )]
    pub redis_stream_max_len: usize,

    /// Split the Redis job stream into this many partitions
    /// (`<stream>:0` … `<stream>:<n-1>`) so they spread over a cluster's
    /// shards; gateways and workers must agree on it.
    #[arg(long, env = "SSE_BRIDGE_REDIS_STREAM_PARTITIONS", default_value_t = 1)]
    pub redis_stream_partitions: usize,

    /// Reclaim a Redis job from a worker silent this long (crashed).
    #[arg(long, env = "SSE_BRIDGE_REDIS_CLAIM_IDLE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub redis_claim_idle: Duration,

    /// Kafka bootstrap servers, `host:port,...`.
    #[arg(long, env = "SSE_BRIDGE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Kafka topic of jobs.
    #[arg(long, env = "SSE_BRIDGE_KAFKA_TOPIC", default_value = "react_sessions")]
    pub kafka_topic: String,

    /// A job not acknowledged by Kafka within this time fails the request (503).
    #[arg(long, env = "SSE_BRIDGE_KAFKA_DELIVERY_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub kafka_delivery_timeout: Duration,

    /// librdkafka property `key=value`, repeatable (acks, compression.type,
    /// linger.ms, security.protocol, sasl.*, ssl.*). Env: comma-separated.
    #[arg(
        long = "kafka-property",
        env = "SSE_BRIDGE_KAFKA_PROPERTIES",
        value_delimiter = ','
    )]
    pub kafka_properties: Vec<String>,

    /// This worker's stable identity in the Kafka consumer group (static
    /// membership, `group.instance.id`): restarted with the same id within
    /// `session.timeout.ms`, it gets its partitions back without a
    /// rebalance. Unique per worker process; unset: a dynamic member.
    #[arg(long, env = "SSE_BRIDGE_WORKER_ID")]
    pub worker_id: Option<String>,
}

impl BrokerArgs {
    pub fn queue_kind(&self) -> QueueKind {
        self.queue.unwrap_or(if self.redis_url.is_some() {
            QueueKind::Redis
        } else {
            QueueKind::Embedded
        })
    }
}

#[derive(Debug, Args)]
pub struct WorkerCommandArgs {
    #[command(flatten)]
    pub config_file: ConfigFileArg,

    #[command(flatten)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Redis the gateways listen on (with `--redis-cluster`: seed nodes,
    /// comma-separated).
    #[arg(long, env = "SSE_BRIDGE_REDIS_URL")]
    pub redis_url: String,

    /// `--redis-url` is a Redis Cluster.
    #[arg(long, env = "SSE_BRIDGE_REDIS_CLUSTER")]
    pub redis_cluster: bool,

    /// PEM file of a private CA for `rediss://`.
    #[arg(long, env = "SSE_BRIDGE_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<std::path::PathBuf>,

    /// Session id (from the `x-session-id` response header or the job).
    #[arg(long)]
    pub session: sse_bridge_core::SessionId,

    /// Attempt id the event belongs to (the `attempt` its `worker_ack`
    /// carried); omit for a worker that sends none.
    #[arg(long)]
    pub attempt: Option<String>,

    /// Event type, e.g. `AgentThoughtStream`.
    #[arg(long = "type")]
    pub event_type: String,

    /// Payload as JSON.
    #[arg(long, default_value = "{}")]
    pub payload: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config_file: ConfigFileArg,

    /// Address to listen on.
    #[arg(long, env = "SSE_BRIDGE_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// PEM certificate chain (leaf first): serve HTTPS (HTTP/2 and
    /// HTTP/1.1 by ALPN) on `--listen`; reloaded on SIGHUP.
    #[arg(long, env = "SSE_BRIDGE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SSE_BRIDGE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SSE_BRIDGE_BODY_LIMIT", default_value_t = sse_bridge_gateway::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Live sessions at once; more are refused with 503.
    #[arg(long, env = "SSE_BRIDGE_MAX_SESSIONS", default_value_t = 50_000)]
    pub max_sessions: usize,

    /// Live streams (sessions and followers) per principal; more get 429.
    #[arg(long, env = "SSE_BRIDGE_MAX_SESSIONS_PER_PRINCIPAL")]
    pub max_sessions_per_principal: Option<usize>,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub streams: crate::streams::StreamArgs,

    /// Allow browser pages on this origin to call the API (CORS), repeatable;
    /// `*` allows any origin. Env: comma-separated.
    #[arg(
        long = "cors-allow-origin",
        env = "SSE_BRIDGE_CORS_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,

    /// Give up on subscribing and dispatching a new session after this long (→ 503).
    #[arg(long, env = "SSE_BRIDGE_START_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub start_timeout: Duration,

    /// Drop a client that has not sent a whole request head and body this
    /// long after its first byte (slowloris).
    #[arg(long, env = "SSE_BRIDGE_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// At shutdown, wait this long for clients to read their last event.
    #[arg(long, env = "SSE_BRIDGE_SHUTDOWN_DRAIN", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_drain: Duration,

    /// Jobs the in-process queue holds for the worker before refusing (→ 503).
    #[arg(
        long,
        env = "SSE_BRIDGE_EMBEDDED_QUEUE_CAPACITY",
        default_value_t = 10_000
    )]
    pub embedded_queue_capacity: usize,

    /// Messages buffered per session before a slow client is cut off (`slow_consumer`).
    #[arg(long, env = "SSE_BRIDGE_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    pub subscriber_buffer: usize,

    #[command(flatten)]
    pub session: SessionArgs,

    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Also run the demo worker in this process when the queue is external
    /// (with the embedded queue it always runs: nothing else can take jobs).
    #[arg(long, env = "SSE_BRIDGE_WITH_WORKER")]
    pub with_worker: bool,

    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// Who may call the session endpoints. Off unless a key or a JWT key is given.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// An API key `NAME=KEY` (the bearer token is KEY, the principal `key:NAME`),
    /// repeatable. Env: comma-separated.
    #[arg(
        long = "api-key",
        env = "SSE_BRIDGE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A file of API keys, one `NAME=KEY` per line (`#` comments).
    #[arg(long, env = "SSE_BRIDGE_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,

    /// Accept JWTs signed with this HS256 secret (principal = `jwt:<iss>:<sub>`).
    #[arg(long, env = "SSE_BRIDGE_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// Accept JWTs signed with the RS256 key of this PEM public key file
    /// (instead of an HS256 secret).
    #[arg(
        long,
        env = "SSE_BRIDGE_JWT_RS256_PUBLIC_KEY",
        conflicts_with = "jwt_hs256_secret"
    )]
    pub jwt_rs256_public_key: Option<std::path::PathBuf>,

    /// Required `aud` of JWTs.
    #[arg(long, env = "SSE_BRIDGE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` of JWTs.
    #[arg(long, env = "SSE_BRIDGE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// A worker API key `NAME=KEY` (principal `worker:NAME`): it may publish
    /// sessions' events and read the jobs stream over HTTP (`/v1/stream/*`),
    /// even while client authentication is off. Repeatable; env: comma-separated.
    #[arg(
        long = "worker-api-key",
        env = "SSE_BRIDGE_WORKER_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub worker_api_keys: Vec<String>,

    /// A JWT whose `scope` holds this scope has the worker role (principal
    /// `worker:jwt:<iss>:<sub>`).
    #[arg(long, env = "SSE_BRIDGE_WORKER_JWT_SCOPE")]
    pub worker_jwt_scope: Option<String>,

    /// `/metrics` wants a token too (when auth is on).
    #[arg(long, env = "SSE_BRIDGE_METRICS_REQUIRE_AUTH")]
    pub metrics_require_auth: bool,
}

impl AuthArgs {
    pub fn build(&self) -> anyhow::Result<sse_bridge_gateway::Auth> {
        use anyhow::Context;
        use sse_bridge_gateway::auth::JwtKey;
        let from_file = match &self.api_keys_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => String::new(),
        };
        let file_keys = from_file
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let keys = self.api_keys.iter().map(String::as_str).chain(file_keys);
        let mut auth = sse_bridge_gateway::Auth::default().with_api_keys(keys)?;
        let (audience, issuer) = (self.jwt_audience.as_deref(), self.jwt_issuer.as_deref());
        if let Some(secret) = &self.jwt_hs256_secret {
            auth = auth.with_jwt(JwtKey::Hs256Secret(secret.as_bytes()), audience, issuer)?;
        }
        if let Some(path) = &self.jwt_rs256_public_key {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            auth = auth.with_jwt(JwtKey::Rs256PublicPem(&pem), audience, issuer)?;
        }
        auth = auth.with_worker_api_keys(self.worker_api_keys.iter().map(String::as_str))?;
        if let Some(scope) = &self.worker_jwt_scope {
            auth = auth.with_worker_scope(scope);
        }
        auth.guard_metrics = self.metrics_require_auth;
        Ok(auth)
    }
}

/// The session lifecycle timings (PROTOCOL §3).
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Wait this long for the worker's `worker_ack`.
    #[arg(long, env = "SSE_BRIDGE_ACK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,

    /// Send `: ping` after this long without output.
    #[arg(long, env = "SSE_BRIDGE_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// End a session whose worker is silent this long (`idle_timeout`).
    #[arg(long, env = "SSE_BRIDGE_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// End any session older than this (`session_timeout`).
    #[arg(long, env = "SSE_BRIDGE_MAX_DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_duration: Duration,

    /// Heartbeat interval workers promise; three missed → `worker_lost`.
    #[arg(long, env = "SSE_BRIDGE_WORKER_HEARTBEAT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub worker_heartbeat: Duration,

    /// Skip worker messages larger than this many bytes.
    #[arg(long, env = "SSE_BRIDGE_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,

    /// Bytes of frames a stream may hold for a client that reads slowly;
    /// more end it with `slow_consumer`.
    #[arg(long, env = "SSE_BRIDGE_SESSION_BUFFER_BYTES", default_value_t = SessionConfig::default().buffer_bytes)]
    pub session_buffer_bytes: usize,

    /// Close a connection whose client accepts no bytes for this long.
    #[arg(long, env = "SSE_BRIDGE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Events a session may forward; more end it with `too_many_events`.
    #[arg(long, env = "SSE_BRIDGE_MAX_EVENTS", default_value_t = SessionConfig::default().max_events)]
    pub max_events: u64,

    /// After the last client of a logged session left, cancel its worker
    /// only if nobody resumed it within this time.
    #[arg(long, env = "SSE_BRIDGE_CANCEL_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub cancel_grace: Duration,

    /// Bytes of events kept per session log: half as appended, half folded
    /// (a long run's oldest text pieces merged, so it still replays whole);
    /// past both, the oldest folded events are dropped and a replay that
    /// needs them gets `history_lost`.
    #[arg(long, env = "SSE_BRIDGE_LOG_MAX_BYTES", default_value_t = LogLimits::default().max_bytes)]
    pub log_max_bytes: usize,

    /// A session log and its metadata expire this long after their last write.
    #[arg(long, env = "SSE_BRIDGE_LOG_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub log_ttl: Duration,

    /// A thread's record (its runs, its open interrupts) expires this long
    /// after its last run: an interrupt can be answered until then.
    #[arg(long, env = "SSE_BRIDGE_THREAD_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub thread_ttl: Duration,
}

impl SessionArgs {
    pub fn config(&self) -> SessionConfig {
        SessionConfig {
            ack_timeout: self.ack_timeout,
            heartbeat: self.heartbeat,
            idle_timeout: self.idle_timeout,
            max_duration: self.max_duration,
            worker_heartbeat: self.worker_heartbeat,
            max_event_bytes: self.max_event_bytes,
            cancel_grace: self.cancel_grace,
            max_events: self.max_events,
            buffer_bytes: self.session_buffer_bytes,
            write_timeout: self.write_timeout,
            thread_ttl: self.thread_ttl,
        }
    }

    /// What a session's subscription may queue between the bus and its
    /// driver: `messages`, and the stream's byte budget (at least one
    /// largest event).
    pub fn subscription_bound(&self, messages: usize) -> SubscriptionBound {
        SubscriptionBound {
            messages,
            bytes: self.session_buffer_bytes.max(self.max_event_bytes),
            message_bytes: self.max_event_bytes,
        }
    }

    pub fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_bytes: self.log_max_bytes,
            ttl: self.log_ttl,
            // An attempt is live until the gateway would call it lost.
            live: self.worker_heartbeat * 3,
        }
    }
}

/// The demo worker's settings.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Pause after each streamed character of the demo agent (0 for none).
    #[arg(long, env = "SSE_BRIDGE_DEMO_DELAY", default_value = "10ms", value_parser = humantime::parse_duration)]
    pub demo_delay: Duration,

    /// Jobs the worker runs at once.
    #[arg(long, env = "SSE_BRIDGE_WORKER_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
}
