//! The worker loop against the embedded bus and queue: ack first, demo agent
//! end to end, cancel, handler errors, skipped jobs, heartbeats.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use sse_bridge_core::log::EventLog;
use sse_bridge_core::protocol::{ErrorCode, Event, cancel_message};
use sse_bridge_core::{Delivery, EventBus, JobDispatcher};
use sse_bridge_worker::runner::HandlerError;
use sse_bridge_worker::{DemoAgent, JobHandler, SessionHandle, WorkerOptions};

mod common;

use common::{Harness, LIVE, kinds, next_event, text_of, until_terminal};

#[tokio::test]
async fn demo_agent_acks_thinks_calls_the_calculator_and_answers() {
    let harness = Harness::start(
        DemoAgent {
            piece_delay: Duration::ZERO,
        },
        WorkerOptions::default(),
    );
    let (_, mut events) = harness.session("What is (2+3)*4?").await;
    let seen = until_terminal(&mut events).await;
    let kinds = kinds(&seen);
    assert_eq!(kinds[0], "worker_ack");
    let start = kinds
        .iter()
        .position(|k| *k == "AgentToolCallStart")
        .unwrap();
    assert!(kinds[1..start].iter().all(|k| *k == "AgentThoughtStream"));
    assert_eq!(kinds[start + 1], "AgentToolCallEnd");
    assert_eq!(*kinds.last().unwrap(), "FinalAnswerStreamEnd");
    assert_eq!(
        seen[start]["payload"]["tool_input"]["expression"],
        "(2+3)*4"
    );
    assert_eq!(seen[start + 1]["payload"]["output"], "20");
    let call_id = seen[start]["payload"]["tool_call_id"].as_str().unwrap();
    assert!(call_id.starts_with("call-"), "{call_id}");
    assert_eq!(seen[start + 1]["payload"]["tool_call_id"], call_id);
    assert!(text_of(&seen, "AgentThoughtStream").contains("calculator"));
    assert_eq!(text_of(&seen, "FinalAnswerStream"), "(2+3)*4 = 20");
    harness.stop().await;
}

#[tokio::test]
async fn demo_agent_without_arithmetic_reads_the_clock() {
    let harness = Harness::start(
        DemoAgent {
            piece_delay: Duration::ZERO,
        },
        WorkerOptions::default(),
    );
    let (_, mut events) = harness.session("What day is it?").await;
    let seen = until_terminal(&mut events).await;
    let end = seen
        .iter()
        .find(|e| e["event_type"] == "AgentToolCallEnd")
        .unwrap();
    assert_eq!(end["payload"]["tool_name"], "utc_clock");
    let now = end["payload"]["output"].as_str().unwrap();
    assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    assert!(text_of(&seen, "FinalAnswerStream").contains(now));
    harness.stop().await;
}

/// Waits (at most 5 s) until a `Stuck` handler was dropped, i.e. stopped.
async fn wait_until_dropped(dropped: &AtomicUsize, what: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while dropped.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect(what);
}

/// Blocks until cancelled; counts starts and completed drops.
struct Stuck {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl JobHandler for Stuck {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        let _flag = DropFlag(self.dropped.clone());
        self.started.fetch_add(1, Ordering::SeqCst);
        session
            .publish("AgentThoughtStream", serde_json::json!({"char": "."}))
            .await?;
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test]
async fn cancel_on_the_control_channel_stops_the_handler() {
    let started = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let handler = Stuck {
        started: started.clone(),
        dropped: dropped.clone(),
    };
    let harness = Harness::start(
        handler,
        WorkerOptions {
            heartbeat: None,
            ..WorkerOptions::default()
        },
    );
    let (id, mut events) = harness.session("q").await;
    assert_eq!(next_event(&mut events).await["event_type"], "worker_ack");
    assert_eq!(
        next_event(&mut events).await["event_type"],
        "AgentThoughtStream"
    );
    harness
        .bus
        .publish(
            &id.control_channel(),
            Bytes::from(cancel_message("client_disconnected")),
        )
        .await
        .unwrap();
    wait_until_dropped(&dropped, "the handler was not stopped").await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    // Its control subscription is gone too.
    tokio::time::timeout(Duration::from_secs(5), async {
        while harness.bus.routed_channels() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("control subscription leaked");
    harness.stop().await;
}

struct Failing;

#[async_trait]
impl JobHandler for Failing {
    async fn handle(&self, _: &SessionHandle) -> Result<(), HandlerError> {
        Err("the model provider refused".into())
    }
}

#[tokio::test]
async fn handler_error_becomes_a_worker_error_event() {
    let harness = Harness::start(Failing, WorkerOptions::default());
    let (_, mut events) = harness.session("q").await;
    let seen = until_terminal(&mut events).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["payload"]["code"], "worker_error");
    assert_eq!(seen[1]["payload"]["error"], "the model provider refused");
    harness.stop().await;
}

/// Returns without publishing a terminal event.
struct Forgetful;

#[async_trait]
impl JobHandler for Forgetful {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        session
            .publish("FinalAnswerStream", serde_json::json!({"char": "4"}))
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_returns_without_a_terminal_event_ends_with_a_worker_error() {
    let harness = Harness::start(Forgetful, WorkerOptions::default());
    let (_, mut events) = harness.session("q").await;
    let seen = until_terminal(&mut events).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2]["event_type"], "error");
    assert_eq!(seen[2]["payload"]["code"], "worker_error");
    harness.stop().await;
}

#[tokio::test]
async fn job_of_an_ended_session_is_skipped_without_running_the_handler() {
    let started = Arc::new(AtomicUsize::new(0));
    let handler = Stuck {
        started: started.clone(),
        dropped: Arc::new(AtomicUsize::new(0)),
    };
    let harness = Harness::start(handler, WorkerOptions::default());
    let (job, _events) = harness.recorded("q").await;
    let gave_up = Event::error(ErrorCode::AckTimeout, "no worker in time");
    harness.bus.end(job.session_id, &gave_up).await.unwrap();
    harness.queue.dispatch(&job).await.unwrap();
    // A live session after it proves the first job was taken and skipped.
    let (_, mut live) = harness.session("q").await;
    assert_eq!(next_event(&mut live).await["event_type"], "worker_ack");
    assert_eq!(
        next_event(&mut live).await["event_type"],
        "AgentThoughtStream"
    );
    assert_eq!(started.load(Ordering::SeqCst), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_handler_whose_events_the_session_refuses_is_stopped() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let handler = Stuck {
        started: Arc::default(),
        dropped: dropped.clone(),
    };
    let options = WorkerOptions {
        heartbeat: Some(Duration::from_millis(20)),
        ..WorkerOptions::default()
    };
    let harness = Harness::start(handler, options);
    let (id, mut events) = harness.session("q").await;
    assert_eq!(next_event(&mut events).await["event_type"], "worker_ack");
    // Ended elsewhere (another gateway's timeout): no cancel message at all.
    let ended = Event::error(ErrorCode::IdleTimeout, "silent");
    harness.bus.end(id, &ended).await.unwrap();
    wait_until_dropped(&dropped, "the refused heartbeat did not stop the handler").await;
    harness.stop().await;
}

#[tokio::test]
async fn a_second_delivery_while_the_first_attempt_serves_waits_and_is_skipped_at_the_end() {
    let started = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let handler = Stuck {
        started: started.clone(),
        dropped: dropped.clone(),
    };
    let options = WorkerOptions {
        heartbeat: Some(Duration::from_millis(20)),
        ..WorkerOptions::default()
    };
    let harness = Harness::start(handler, options);
    let (job, mut events) = harness.recorded("q").await;
    harness.queue.dispatch(&job).await.unwrap();
    assert_eq!(next_event(&mut events).await["event_type"], "worker_ack");
    assert_eq!(
        next_event(&mut events).await["event_type"],
        "AgentThoughtStream"
    );
    // The queue delivers the same job again (a rebalance, a worker handing
    // its partitions over) while the first attempt heartbeats: it waits.
    harness.queue.dispatch(&job).await.unwrap();
    tokio::time::sleep(LIVE * 5).await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "the second delivery ran");
    let ended = Event::error(ErrorCode::IdleTimeout, "ended elsewhere");
    harness.bus.end(job.session_id, &ended).await.unwrap();
    wait_until_dropped(&dropped, "the first attempt was not stopped").await;
    let mut seen = Vec::new();
    while let Ok(Delivery::Message(raw)) =
        tokio::time::timeout(Duration::from_millis(1500), events.recv()).await
    {
        seen.push(serde_json::from_slice::<Value>(&raw).unwrap());
    }
    assert!(
        seen.iter().all(|e| e["event_type"] != "worker_ack"),
        "no second ack: {seen:?}"
    );
    assert_eq!(started.load(Ordering::SeqCst), 1, "the second delivery ran");
    harness.stop().await;
}

#[tokio::test]
async fn a_second_delivery_after_a_silent_attempt_answered_ends_the_session_instead_of_splicing() {
    let started = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let handler = Stuck {
        started: started.clone(),
        dropped: dropped.clone(),
    };
    // No heartbeats: after its first piece the attempt looks dead.
    let options = WorkerOptions {
        heartbeat: None,
        ..WorkerOptions::default()
    };
    let harness = Harness::start(handler, options);
    let (job, mut events) = harness.recorded("q").await;
    harness.queue.dispatch(&job).await.unwrap();
    assert_eq!(next_event(&mut events).await["event_type"], "worker_ack");
    assert_eq!(
        next_event(&mut events).await["event_type"],
        "AgentThoughtStream"
    );
    // The queue delivers the same job again (a reclaim after a crash).
    harness.queue.dispatch(&job).await.unwrap();
    let seen = until_terminal(&mut events).await;
    let last = seen.last().unwrap();
    assert_eq!(last["payload"]["code"], "worker_lost", "{seen:?}");
    assert!(
        seen.iter().all(|e| e["event_type"] != "worker_ack"),
        "no second ack: {seen:?}"
    );
    // The first attempt is stopped by the gateway's cancel in production;
    // here nobody sends one, so only the second attempt's fate is checked.
    assert_eq!(started.load(Ordering::SeqCst), 1, "the second delivery ran");
    harness.stop().await;
}

#[tokio::test]
async fn silent_handler_sends_heartbeats() {
    let handler = Stuck {
        started: Arc::default(),
        dropped: Arc::default(),
    };
    let options = WorkerOptions {
        heartbeat: Some(Duration::from_millis(20)),
        ..WorkerOptions::default()
    };
    let harness = Harness::start(handler, options);
    let (_, mut events) = harness.session("q").await;
    assert_eq!(next_event(&mut events).await["event_type"], "worker_ack");
    assert_eq!(
        next_event(&mut events).await["event_type"],
        "AgentThoughtStream"
    );
    for _ in 0..3 {
        assert_eq!(
            next_event(&mut events).await["event_type"],
            "worker_heartbeat"
        );
    }
    harness.stop().await;
}
