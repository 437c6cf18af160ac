//! The worker side of sse-bridge: what runs a session's job and publishes
//! its events.
//!
//! # Layout
//!
//! * [`publish`] — [`publish_event`], the one call a worker needs, over any
//!   [`EventLog`](sse_bridge_core::EventLog) (embedded, Redis): appended to
//!   the session log and published in one step.
//! * [`runner`] — [`run_worker`]: pulls jobs from a
//!   [`JobSource`](sse_bridge_core::JobSource), runs a [`JobHandler`] per job
//!   with bounded concurrency, stops it on `cancel`, keeps the gateway's idle
//!   timer fed with `worker_heartbeat`, acks the job when the session ended.
//! * [`hitl`] — human in the loop: [`hitl::ToolCall`]s with ids, the
//!   `interrupt` that ends a run ([`SessionHandle::interrupt`],
//!   [`SessionHandle::ask_approval`], [`SessionHandle::call_client_tool`])
//!   and the answers of the run that resumes it ([`SessionHandle::resumed`]).
//! * [`demo`] — [`DemoAgent`], a small ReAct-style agent with two real tools
//!   (a calculator and a UTC clock), used by `sse-bridge serve` and
//!   `sse-bridge worker`.
//!   [`demo::calculator`] is its arithmetic tool.

pub mod demo;
pub mod hitl;
pub mod publish;
pub mod runner;

pub use demo::DemoAgent;
pub use publish::{PublishError, publish_event};
pub use runner::{JobHandler, SessionHandle, WorkerOptions, run_worker};
