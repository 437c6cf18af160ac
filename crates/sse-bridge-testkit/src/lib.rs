//! Test support shared by the sse-bridge crates (never a runtime dependency).
//!
//! * [`sse`] — an HTTP client that reads SSE bodies the way the seed's
//!   browser client does (split on `\n\n`, keep `data: ` parts, JSON-parse).
//! * [`redis`] — the shared test Redis, unique names, bounded polling,
//!   `CLIENT LIST` counting, and a private `redis-server` to kill and restart.
//! * [`log`] — the behaviour every `EventLog` backend must share.
//! * [`process`] — the `sse-bridge` binary as a child process.
//! * [`cluster`] — a private Redis Cluster: start, topology, failover.

pub mod cluster;
pub mod log;
pub mod process;
pub mod redis;
pub mod sse;
