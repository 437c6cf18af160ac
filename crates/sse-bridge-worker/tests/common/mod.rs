//! The harness the integration tests share: a worker running a handler on
//! the embedded bus and queue, sessions recorded and subscribed like a
//! gateway does, and readers of the events.

// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sse_bridge_core::embedded::{EmbeddedBus, EmbeddedQueue};
use sse_bridge_core::log::{EventLog, LogLimits, SessionMeta};
use sse_bridge_core::protocol::OnDisconnect;
use sse_bridge_core::{
    Delivery, EventBus, Job, JobDispatcher, SessionId, SessionRequest, Subscription,
    SubscriptionBound,
};
use sse_bridge_worker::{JobHandler, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

/// The harness's liveness window: an attempt silent this long is stale.
pub const LIVE: Duration = Duration::from_millis(300);

pub struct Harness {
    pub bus: EmbeddedBus,
    pub queue: EmbeddedQueue,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub fn start(handler: impl JobHandler, options: WorkerOptions) -> Self {
        let options = WorkerOptions {
            shutdown_grace: Duration::from_millis(100),
            ..options
        };
        let limits = LogLimits {
            live: LIVE,
            ..LogLimits::default()
        };
        let bus = EmbeddedBus::with_log_limits(SubscriptionBound::messages(1024), limits);
        let queue = EmbeddedQueue::new(16);
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run_worker(
            Arc::new(queue.clone()),
            Arc::new(bus.clone()),
            Arc::new(handler),
            options,
            shutdown.clone(),
        ));
        Harness {
            bus,
            queue,
            shutdown,
            worker,
        }
    }

    /// Records and subscribes like a gateway, then dispatches a job for `query`.
    pub async fn session(&self, query: &str) -> (SessionId, Subscription) {
        self.session_body(serde_json::json!({ "user_query": query }))
            .await
    }

    /// Like [`Harness::session`], asked with `body`.
    pub async fn session_body(&self, body: Value) -> (SessionId, Subscription) {
        let (job, events) = self.recorded_body(body).await;
        self.queue.dispatch(&job).await.unwrap();
        (job.session_id, events)
    }

    /// A recorded, subscribed session whose job is not dispatched yet.
    pub async fn recorded(&self, query: &str) -> (Job, Subscription) {
        self.recorded_body(serde_json::json!({ "user_query": query }))
            .await
    }

    /// A recorded, subscribed session asked with `body`, not dispatched yet.
    pub async fn recorded_body(&self, body: Value) -> (Job, Subscription) {
        let id = SessionId::new();
        let meta = SessionMeta::new("anonymous", "native", OnDisconnect::Cancel);
        self.bus.create(id, &meta).await.unwrap();
        let events = self.bus.subscribe(&id.event_channel()).await.unwrap();
        (
            Job::new(id, SessionRequest::from_value(body).unwrap()),
            events,
        )
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.worker)
            .await
            .unwrap()
            .unwrap();
    }
}

pub async fn next_event(events: &mut Subscription) -> Value {
    match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        Ok(Delivery::Message(raw)) => serde_json::from_slice(&raw).unwrap(),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Events until (and including) a terminal one (`interrupt` too).
pub async fn until_terminal(events: &mut Subscription) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(events).await;
        let terminal = matches!(
            event["event_type"].as_str(),
            Some("FinalAnswerStreamEnd" | "error" | "interrupt")
        );
        seen.push(event);
        if terminal {
            return seen;
        }
    }
}

pub fn text_of(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["event_type"] == kind)
        .map(|e| e["payload"]["char"].as_str().unwrap())
        .collect()
}

/// The event types of `events`, in order.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect()
}
