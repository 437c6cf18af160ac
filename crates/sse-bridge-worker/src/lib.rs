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
//! * `outbox` — every event of a [`SessionHandle`] goes through its
//!   session's outbox, in order; those sent ([`SessionHandle::send`]) while
//!   an append is in flight go together in one batch.
//! * [`tool_call`] — [`ToolCall`]: tool calls with ids, started and ended
//!   (output, error, or denied) through the [`SessionHandle`].
//! * Human in the loop (PROTOCOL §8): [`interrupt`] — [`Interrupt`] and
//!   [`SessionHandle::interrupt`], the terminal event of a run that waits
//!   for outside input; [`resume`] — [`Resumed`], what the run that
//!   continues it was answered; [`approval`] — [`SessionHandle::ask_approval`]
//!   and the [`Approval`] it gets back; [`client_tool`] —
//!   [`SessionHandle::call_client_tool`] and the client's output.
//! * [`demo`] — [`DemoAgent`], a small ReAct-style agent with two real tools
//!   (a calculator and a UTC clock), used by `sse-bridge serve` and
//!   `sse-bridge worker`.
//!   [`demo::calculator`] is its arithmetic tool.

pub mod approval;
pub mod client_tool;
pub mod demo;
pub mod interrupt;
mod outbox;
pub mod publish;
pub mod resume;
pub mod runner;
pub mod tool_call;

pub use approval::{Approval, Decision};
pub use client_tool::ClientToolResult;
pub use demo::DemoAgent;
pub use interrupt::{Interrupt, InterruptError};
pub use publish::{PublishError, publish_event};
pub use resume::{Answer, ResumeError, Resumed};
pub use runner::{JobHandler, SessionHandle, WorkerOptions, run_worker};
pub use tool_call::ToolCall;
