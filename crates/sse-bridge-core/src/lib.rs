//! sse-bridge core: everything between "a session was requested" and "its
//! events were framed for the client", independent of HTTP and of any broker.
//!
//! # Layout
//!
//! The data path, in order:
//!
//! * [`protocol`] — the wire contract parsed once: [`SessionId`],
//!   [`SessionRequest`] (the POST body), [`Job`] (dispatched), [`Event`]
//!   (published by workers), error codes.
//! * [`queue`] — [`JobDispatcher`] (gateway → workers) and [`JobSource`]
//!   (workers pull) traits: the job goes out here.
//! * [`bus`] — the [`EventBus`] trait and the [`bus::Router`] every backend
//!   uses to hand channel messages to [`Subscription`]s: events come in here.
//! * [`session`] — [`session::start`] (subscribe, then dispatch) and the
//!   lifecycle state machine ([`session::SessionMachine`]: ack handshake,
//!   timeouts, tolerant parsing) driven over a subscription into a body stream.
//! * [`log`] — the [`EventLog`]: a durable log per session (append +
//!   publish in one step, the attempt rule, gateway-decided ends), what
//!   following, resuming and link recovery read.
//! * [`format`] — output formats: an [`format::Encoder`] per stream turns
//!   events into native, AG-UI or AI SDK frames.
//! * [`sse`] — `id:`/`data:` framing: events go out to the client here.
//! * [`thread`] — threads, interrupts and resume (PROTOCOL §8): the thread
//!   record, the pure rule deciding each change, the [`thread::ThreadStore`].
//! * [`streams`] — Durable Streams: the store trait, the producer rule,
//!   offsets and JSON mode, and the in-memory store.
//! * [`embedded`] — in-process bus and queue, the single-binary default.
//!   Redis and Kafka backends live in their own crates behind the same traits.
//! * [`pipe`] — the queue between the bus, a session's driver and its
//!   response body: nearly free while empty, which a held stream mostly is.
//! * [`metrics`] — metric names; [`error`] — [`BrokerError`].

pub mod bus;
pub mod embedded;
pub mod error;
pub mod format;
pub mod log;
pub mod metrics;
pub mod pipe;
pub mod protocol;
pub mod queue;
pub mod session;
pub mod sse;
pub mod streams;
pub mod thread;

pub use bus::{Delivery, EventBus, Subscription, SubscriptionBound};
pub use error::BrokerError;
pub use log::{EventLog, LogId};
pub use protocol::{ErrorCode, Event, Job, SessionId, SessionRequest};
pub use queue::{JobAck, JobDispatcher, JobSource, ReceivedJob};
