//! Human in the loop against the embedded bus and queue (PROTOCOL §8): a
//! run ends with `interrupt` and nothing after it; a job carrying resume
//! entries and the interrupts they answer continues the run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sse_bridge_core::{JobDispatcher, Subscription};
use sse_bridge_worker::interrupt::reason;
use sse_bridge_worker::runner::HandlerError;
use sse_bridge_worker::{Interrupt, JobHandler, Resumed, SessionHandle, WorkerOptions};

mod common;

use common::{Harness, kinds, until_terminal};

/// Fails if an event arrives within `quiet`.
async fn assert_no_more_events(events: &mut Subscription, quiet: Duration) {
    if let Ok(delivery) = tokio::time::timeout(quiet, events.recv()).await {
        panic!("expected no more events, got {delivery:?}");
    }
}

/// Asks for an account number on a fresh run; on a resumed one, records
/// what it was given and answers with it.
#[derive(Default)]
struct AsksForAnAccount {
    resumed: Arc<Mutex<Option<Resumed>>>,
    ended_after_interrupt: Arc<Mutex<Option<bool>>>,
}

#[async_trait]
impl JobHandler for AsksForAnAccount {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        let Some(resumed) = session.resumed()? else {
            let question = Interrupt::new(reason::INPUT_REQUIRED)
                .with_id("account")
                .message("Which account?")
                .response_schema(json!({"type": "string"}));
            session.interrupt([question]).await?;
            *self.ended_after_interrupt.lock().unwrap() = Some(session.has_ended());
            return Ok(());
        };
        let account = resumed.answer("account").map(|a| a.entry.payload.clone());
        *self.resumed.lock().unwrap() = Some(resumed);
        let answer = format!("Account {}.", account.unwrap_or_default());
        session
            .publish("FinalAnswerStream", json!({ "char": answer }))
            .await?;
        session.publish("FinalAnswerStreamEnd", json!({})).await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_interrupt_ends_the_run_and_nothing_follows_it() {
    let handler = AsksForAnAccount::default();
    let ended = handler.ended_after_interrupt.clone();
    let harness = Harness::start(handler, WorkerOptions::default());
    let (_, mut events) = harness
        .session_body(json!({"user_query": "pay", "thread_id": "t1"}))
        .await;
    let seen = until_terminal(&mut events).await;
    assert_eq!(kinds(&seen), ["worker_ack", "interrupt"]);
    assert_eq!(
        seen[1]["payload"],
        json!({"interrupts": [{"id": "account", "reason": "input_required",
                               "message": "Which account?", "response_schema": {"type": "string"}}]})
    );
    assert_no_more_events(&mut events, Duration::from_millis(300)).await;
    assert_eq!(*ended.lock().unwrap(), Some(true));
    harness.stop().await;
}

#[tokio::test]
async fn a_resumed_job_gives_the_handler_its_thread_parent_and_answers() {
    let handler = AsksForAnAccount::default();
    let resumed = handler.resumed.clone();
    let harness = Harness::start(handler, WorkerOptions::default());
    let (parent, mut events) = harness
        .session_body(json!({"user_query": "pay", "thread_id": "t1"}))
        .await;
    let asked = until_terminal(&mut events).await;
    let (mut job, mut events) = harness
        .recorded_body(json!({"thread_id": "t1", "resume": [
            {"interrupt_id": "account", "status": "resolved", "payload": "DE-42"}
        ]}))
        .await;
    job.parent_session_id = Some(parent);
    job.parent_request = json!({"user_query": "pay", "thread_id": "t1"})
        .as_object()
        .cloned();
    job.interrupts = Some(
        asked[1]["payload"]["interrupts"]
            .as_array()
            .unwrap()
            .clone(),
    );
    harness.queue.dispatch(&job).await.unwrap();
    let seen = until_terminal(&mut events).await;
    assert_eq!(seen[1]["payload"]["char"], "Account \"DE-42\".");
    assert_eq!(
        kinds(&seen),
        ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    );
    let resumed = resumed.lock().unwrap().take().unwrap();
    assert_eq!(resumed.thread_id.as_str(), "t1");
    assert_eq!(resumed.parent_session_id, Some(parent));
    assert_eq!(resumed.parent_query(), Some("pay"));
    let answer = resumed.answer("account").unwrap();
    let interrupt = answer.interrupt.as_ref().unwrap();
    assert_eq!(interrupt.message(), Some("Which account?"));
    harness.stop().await;
}
