//! Kafka job queue of sse-bridge (PROTOCOL §1–2): jobs are messages of the
//! topic `react_sessions` (configurable), keyed by session id, valued by the
//! job's JSON.
//!
//! * [`KafkaDispatcher`] — the gateway's [`sse_bridge_core::JobDispatcher`]:
//!   an idempotent producer; a dispatch returns once the broker acknowledged
//!   the job, or fails after `delivery_timeout`.
//! * [`KafkaJobSource`] — the workers' [`sse_bridge_core::JobSource`]: a
//!   consumer-group member that commits a job's offset only once the job's
//!   session ended, although jobs end out of order (at-least-once).
//!
//! # Layout
//!
//! * [`config`] — [`KafkaConfig`], its defaults, and [`parse_property`] for
//!   `key=value` librdkafka properties given on the command line.
//! * `dispatcher` — the producer; `source` — the consumer and its acks;
//!   `poller` — the task that polls the consumer even while every job slot
//!   is busy, so the worker keeps taking part in rebalances.
//! * `offsets` — the offset tracker: the commit position per partition
//!   given out-of-order acks, and partition ownership across rebalances.
//! * `context` — the consumer's rebalance and commit callbacks;
//!   `logging` — librdkafka logs into `tracing`; `error` — librdkafka errors
//!   as [`sse_bridge_core::BrokerError`].
//! * [`mock`] — [`mock::MockKafka`], librdkafka's in-process mock broker on
//!   loopback, for tests (this crate's and the binary's) with no Kafka around.
//!
//! librdkafka is built from source (configure + make, no cmake) with TLS, so
//! `security.protocol=SASL_SSL` with SASL PLAIN or SCRAM works through
//! [`KafkaConfig::properties`]; GSSAPI (Kerberos) is not built in.

pub mod config;
mod context;
mod dispatcher;
mod error;
mod logging;
pub mod mock;
mod offsets;
mod poller;
mod source;

pub use config::{InvalidProperty, KafkaConfig, parse_property};
pub use dispatcher::KafkaDispatcher;
pub use source::KafkaJobSource;
