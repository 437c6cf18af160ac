//! Redis backends of sse-bridge.
//!
//! * [`RedisBus`] — the [`sse_bridge_core::EventBus`] on Redis Pub/Sub: one
//!   subscriber connection per process multiplexes every session's channel
//!   and survives Redis restarts (reconnect, resubscribe, link signalled to
//!   the sessions).
//! * [`RedisJobQueue`] — [`sse_bridge_core::JobDispatcher`] and
//!   [`sse_bridge_core::JobSource`] on a Redis Stream read through a consumer
//!   group, with abandoned jobs reclaimed from crashed workers.
//!
//! # Layout
//!
//! * [`config`] — [`RedisConfig`], [`RedisQueueConfig`] and their defaults.
//! * `bus` — [`RedisBus`]; `subscriber` — the task owning its subscriber
//!   connection (the reconnect logic lives there).
//! * `log` — the session log ([`sse_bridge_core::EventLog`] for [`RedisBus`]):
//!   a Stream and a metadata hash per session, written by the Redis
//!   functions of `functions.lua` ([`FUNCTIONS`]).
//! * `presence` — follower counts per gateway process, expiring with a
//!   lease, so a crashed gateway's streams stop counting and another gateway
//!   takes its sessions over.
//! * `threads` — the thread records of PROTOCOL §8 (one hash per thread,
//!   written by compare-and-set).
//! * `queue` — [`RedisJobQueue`].
//! * `cluster` — Redis Cluster mode: slot routing, one subscriber connection
//!   per master, sharded Pub/Sub; `keyspace` — a session's Redis names in
//!   either mode.
//! * `conn` — URL/TLS handling, named self-healing connections, backoff;
//!   `error` — redis errors as [`sse_bridge_core::BrokerError`].
//!
//! `rediss://` URLs use rustls with the ring provider (cargo feature `tls`,
//! on by default). The subscriber connection speaks RESP3: Redis 6 or newer.

mod bus;
mod cluster;
pub mod config;
mod conn;
mod error;
mod keyspace;
mod log;
mod presence;
mod queue;
mod streams;
mod subscriber;
mod threads;

pub use bus::RedisBus;
pub use config::{RedisConfig, RedisQueueConfig};
pub use log::FUNCTIONS;
pub use queue::RedisJobQueue;
pub use streams::{RedisStreams, STREAM_FUNCTIONS};
