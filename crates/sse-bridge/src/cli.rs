//! Command line and environment: every option has an `SSE_BRIDGE_*` variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sse_bridge_core::session::SessionConfig;

#[derive(Debug, Parser)]
#[command(name = "sse-bridge", version, about = "Streams AI-worker events to HTTP clients as Server-Sent Events")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (with the in-process broker and demo worker by default).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SSE_BRIDGE_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SSE_BRIDGE_BODY_LIMIT", default_value_t = sse_bridge_gateway::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Give up on subscribing and dispatching a new session after this long (→ 503).
    #[arg(long, env = "SSE_BRIDGE_START_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub start_timeout: Duration,

    /// At shutdown, wait this long for clients to read their last event.
    #[arg(long, env = "SSE_BRIDGE_SHUTDOWN_DRAIN", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_drain: Duration,

    /// Jobs the in-process queue holds for the worker before refusing (→ 503).
    #[arg(long, env = "SSE_BRIDGE_EMBEDDED_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub embedded_queue_capacity: usize,

    /// Messages buffered per session before a slow client is cut off (`slow_consumer`).
    #[arg(long, env = "SSE_BRIDGE_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    pub subscriber_buffer: usize,

    #[command(flatten)]
    pub session: SessionArgs,

    #[command(flatten)]
    pub worker: WorkerArgs,
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
            ..SessionConfig::default()
        }
    }
}

/// The demo worker's settings.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Pause after each streamed character of the demo agent (0 for none).
    #[arg(long, env = "SSE_BRIDGE_DEMO_DELAY", default_value = "15ms", value_parser = humantime::parse_duration)]
    pub demo_delay: Duration,

    /// Jobs the worker runs at once.
    #[arg(long, env = "SSE_BRIDGE_WORKER_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
}
