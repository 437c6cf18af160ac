//! A session's outbox against the real Redis log: what a handler sends
//! while an append is in flight goes in one call, and the gateway reads
//! the batch as one message of events, each with its own log id, in order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sse_bridge_core::embedded::EmbeddedQueue;
use sse_bridge_core::protocol::SessionRequest;
use sse_bridge_core::{Delivery, EventBus, EventLog, Job, JobDispatcher};
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_worker::runner::HandlerError;
use sse_bridge_worker::{JobHandler, SessionHandle, WorkerOptions, run_worker};
use tokio_util::sync::CancellationToken;

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const PIECES: usize = 200;

/// Sends its pieces without waiting for the log, then ends the session.
struct Streamer;

#[async_trait]
impl JobHandler for Streamer {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        for n in 0..PIECES {
            session
                .send("FinalAnswerStream", json!({ "char": n.to_string() }))
                .await?;
        }
        session.publish("FinalAnswerStreamEnd", json!({})).await?;
        Ok(())
    }
}

#[tokio::test]
async fn sends_made_while_an_append_is_in_flight_go_in_one_call_and_arrive_in_order() {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = format!("t-outbox-{}", std::process::id());
    let bus = RedisBus::connect(config)
        .await
        .expect("Redis at 127.0.0.1:6379");
    // Created as a gateway creates it: its metadata says it reads batches.
    let id = sse_bridge_testkit::log::created(&bus).await;
    let mut live = bus.subscribe(&id.event_channel()).await.unwrap();
    let queue = EmbeddedQueue::new(4);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        Arc::new(queue.clone()),
        Arc::new(bus.clone()),
        Arc::new(Streamer),
        WorkerOptions::default(),
        shutdown.clone(),
    ));
    let request = SessionRequest::from_value(json!({"user_query": "q"})).unwrap();
    queue.dispatch(&Job::new(id, request)).await.unwrap();

    let (mut messages, mut events) = (0, Vec::new());
    while events
        .last()
        .is_none_or(|(kind, _, _)| kind != "FinalAnswerStreamEnd")
    {
        let delivery = tokio::time::timeout(Duration::from_secs(10), live.recv())
            .await
            .expect("the session's events in time");
        let Delivery::Message(raw) = delivery else {
            panic!("{delivery:?}")
        };
        messages += 1;
        let batch: Vec<serde_json::Value> = match sse_bridge_core::protocol::batch(&raw) {
            Some(batch) => batch
                .iter()
                .map(|e| serde_json::from_str(e.get()).unwrap())
                .collect(),
            None => vec![serde_json::from_slice(&raw).unwrap()],
        };
        for event in batch {
            events.push((
                event["event_type"].as_str().unwrap().to_owned(),
                event["payload"]["char"].as_str().map(str::to_owned),
                event["log_id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    shutdown.cancel();
    worker.await.unwrap();

    let pieces: Vec<String> = events.iter().filter_map(|(_, c, _)| c.clone()).collect();
    let expected: Vec<String> = (0..PIECES).map(|n| n.to_string()).collect();
    assert_eq!(pieces, expected, "every piece once, in order");
    assert_eq!(events.len(), PIECES + 2, "worker_ack, the pieces, the end");
    let ids: Vec<sse_bridge_core::log::LogId> = events
        .iter()
        .map(|(_, _, id)| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "log ids increase");
    // One call (and one message) per event would be 202 messages; sends
    // made while a call is in flight share the next one.
    assert!(
        messages <= (PIECES + 2) / 4,
        "{messages} messages for {} events",
        events.len()
    );
}

/// Sends after its end, then reports what `flush` said — unless the
/// runner, cancelled by the refusal, drops it first (its guard says so).
struct SendsAfterTheEnd(tokio::sync::mpsc::UnboundedSender<String>);

struct Dropped(tokio::sync::mpsc::UnboundedSender<String>);
impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = self.0.send("dropped".to_owned());
    }
}

#[async_trait]
impl JobHandler for SendsAfterTheEnd {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        let _guard = Dropped(self.0.clone());
        session.publish("FinalAnswerStreamEnd", json!({})).await?;
        session
            .send("FinalAnswerStream", json!({"char": "late"}))
            .await?;
        let flushed = session.flush().await;
        let report = match &flushed {
            Ok(()) => "flushed".to_owned(),
            Err(error) => format!("{error} (cancelled: {})", session.is_cancelled()),
        };
        let _ = self.0.send(report);
        flushed.map_err(Into::into)
    }
}

#[tokio::test]
async fn a_refused_send_stops_the_session_and_nothing_after_the_end_is_logged() {
    let bus = RedisBus::connect(RedisConfig::new(REDIS_URL))
        .await
        .unwrap();
    let id = sse_bridge_testkit::log::created(&bus).await;
    let (reports, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let queue = EmbeddedQueue::new(4);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        Arc::new(queue.clone()),
        Arc::new(bus.clone()),
        Arc::new(SendsAfterTheEnd(reports)),
        WorkerOptions::default(),
        shutdown.clone(),
    ));
    let request = SessionRequest::from_value(json!({"user_query": "q"})).unwrap();
    queue.dispatch(&Job::new(id, request)).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), reported.recv())
        .await
        .unwrap()
        .unwrap();
    // The refusal cancels the session: the runner drops the handler, or
    // the handler's flush returns first with the refusal.
    assert!(
        [
            "dropped",
            "the session refused the event: the session has ended (cancelled: true)"
        ]
        .contains(&report.as_str()),
        "{report}"
    );
    let page = bus
        .read(
            id,
            None,
            sse_bridge_core::log::PageLimit {
                entries: 10,
                bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.entries.len(),
        2,
        "worker_ack and the end, nothing after"
    );
    shutdown.cancel();
    worker.await.unwrap();
}
