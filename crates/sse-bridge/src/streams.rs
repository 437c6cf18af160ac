//! Durable Streams settings of `sse-bridge serve` and the store they build:
//! in memory with the embedded backend, Redis with `--redis-url`.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sse_bridge_core::EventLog;
use sse_bridge_core::streams::{MemoryStreams, StreamLimits, StreamStore, jobs};
use sse_bridge_gateway::streams::{StreamOptions, Streams};
use sse_bridge_redis::{RedisBus, RedisStreams};

/// `/v1/stream/*` (Durable Streams).
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// How long a Durable Streams long-poll waits for data before 204.
    #[arg(long, env = "SSE_BRIDGE_STREAM_LONG_POLL_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub stream_long_poll_timeout: Duration,

    /// How long a Durable Streams SSE response lasts before the gateway
    /// ends it (the client reconnects from its offset).
    #[arg(long, env = "SSE_BRIDGE_STREAM_SSE_DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub stream_sse_duration: Duration,

    /// Largest body of one append or create, in bytes (413 beyond).
    #[arg(long, env = "SSE_BRIDGE_STREAM_MAX_BODY", default_value_t = 4 << 20)]
    pub stream_max_body: usize,

    /// Bytes one stream retains; older data is dropped (reads of it: 410).
    #[arg(long, env = "SSE_BRIDGE_STREAM_MAX_BYTES", default_value_t = 64 << 20)]
    pub stream_max_bytes: usize,

    /// Bytes all streams hold together in memory (embedded backend; 507
    /// beyond). With Redis, bound Redis itself (`maxmemory`).
    #[arg(long, env = "SSE_BRIDGE_STREAM_MEMORY_BYTES", default_value_t = 512 << 20)]
    pub stream_memory_bytes: usize,

    /// Dispatch jobs to the jobs stream `/v1/stream/jobs`, which workers
    /// (`--worker-api-key`) read over HTTP, instead of the job queue.
    #[arg(long, env = "SSE_BRIDGE_HTTP_WORKERS")]
    pub http_workers: bool,
}

impl StreamArgs {
    fn limits(&self) -> StreamLimits {
        StreamLimits {
            max_stream_bytes: self.stream_max_bytes,
            max_total_bytes: self.stream_memory_bytes,
            ..StreamLimits::default()
        }
    }

    /// The streams' store and settings: in Redis when the bus is Redis,
    /// else in memory (announcing changes on `bus`).
    /// `queue` names the job queue, and so the jobs stream of HTTP workers.
    pub fn build(&self, bus: Arc<dyn EventLog>, redis: Option<RedisBus>, queue: &str) -> Streams {
        let store: Arc<dyn StreamStore> = match redis {
            Some(redis) => Arc::new(RedisStreams::new(redis, self.limits())),
            None => Arc::new(MemoryStreams::new(bus, self.limits())),
        };
        Streams {
            store,
            options: StreamOptions {
                long_poll_timeout: self.stream_long_poll_timeout,
                sse_duration: self.stream_sse_duration,
                max_body_bytes: self.stream_max_body,
                ..StreamOptions::default()
            },
            jobs_key: jobs::key(queue),
        }
    }
}
