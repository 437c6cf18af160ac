//! Human in the loop against the embedded bus and queue (PROTOCOL §8): a
//! run ends with `interrupt` and nothing after it; a job carrying resume
//! entries and the interrupts they answer continues the run — the SDK with
//! a handler of its own, then the demo agent's approval and client tool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sse_bridge_core::{JobDispatcher, SessionId, Subscription};
use sse_bridge_worker::interrupt::reason;
use sse_bridge_worker::runner::HandlerError;
use sse_bridge_worker::{DemoAgent, Interrupt, JobHandler, Resumed, SessionHandle, WorkerOptions};

mod common;

use common::{Harness, kinds, text_of, until_terminal};

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

fn demo() -> Harness {
    let agent = DemoAgent {
        piece_delay: Duration::ZERO,
    };
    Harness::start(agent, WorkerOptions::default())
}

/// The events of the demo's run on `query` in thread `t1`, up to its
/// interrupt, and the run's session id.
async fn interrupted(harness: &Harness, query: &str) -> (SessionId, Vec<Value>) {
    let (id, mut events) = harness
        .session_body(json!({"user_query": query, "thread_id": "t1"}))
        .await;
    let seen = until_terminal(&mut events).await;
    assert_eq!(*kinds(&seen).last().unwrap(), "interrupt", "{seen:?}");
    assert_no_more_events(&mut events, Duration::from_millis(200)).await;
    (id, seen)
}

/// The events of the run resuming `parent` (asked `query`, ended with
/// `interrupt`) with one entry, in a job as the gateway makes it.
async fn resume(
    harness: &Harness,
    parent: SessionId,
    query: &str,
    interrupt: &Value,
    status: &str,
    payload: Value,
) -> Vec<Value> {
    let interrupts = interrupt["payload"]["interrupts"].as_array().unwrap();
    let id = interrupts[0]["id"].as_str().unwrap();
    let (mut job, mut events) = harness
        .recorded_body(json!({"thread_id": "t1", "resume": [
            {"interrupt_id": id, "status": status, "payload": payload}
        ]}))
        .await;
    job.parent_session_id = Some(parent);
    job.parent_request = json!({"user_query": query, "thread_id": "t1"})
        .as_object()
        .cloned();
    job.interrupts = Some(interrupts.clone());
    harness.queue.dispatch(&job).await.unwrap();
    until_terminal(&mut events).await
}

#[tokio::test]
async fn the_demo_asks_before_it_sends_the_report() {
    let harness = demo();
    let (_, seen) = interrupted(&harness, "Please send the report").await;
    let start = seen
        .iter()
        .find(|e| e["event_type"] == "AgentToolCallStart")
        .unwrap();
    let call_id = start["payload"]["tool_call_id"].as_str().unwrap();
    assert!(call_id.starts_with("call-"), "{call_id}");
    assert_eq!(start["payload"]["tool_name"], "send_report");
    assert_eq!(start["payload"]["tool_input"], json!({"to": "finance"}));
    assert_eq!(start["payload"].get("executor"), None);
    let interrupts = &seen.last().unwrap()["payload"]["interrupts"];
    assert_eq!(interrupts.as_array().unwrap().len(), 1);
    let interrupt = &interrupts[0];
    assert!(interrupt["id"].as_str().unwrap().starts_with("int-"));
    assert_eq!(interrupt["reason"], "tool_call");
    assert_eq!(interrupt["tool_call_id"], call_id);
    assert_eq!(interrupt["message"], "Send the report to finance?");
    assert_eq!(
        interrupt["metadata"],
        json!({"tool_name": "send_report", "tool_input": {"to": "finance"}})
    );
    assert!(!kinds(&seen).contains(&"FinalAnswerStreamEnd"));
    harness.stop().await;
}

/// Resumes the demo's report approval with one entry: the parent's tool
/// call id, and the resumed run's events.
async fn report_decided(status: &str, payload: Value) -> (Value, Vec<Value>) {
    let harness = demo();
    let query = "send the report";
    let (parent, asked) = interrupted(&harness, query).await;
    let seen = resume(
        &harness,
        parent,
        query,
        asked.last().unwrap(),
        status,
        payload,
    )
    .await;
    harness.stop().await;
    let start = asked
        .iter()
        .find(|e| e["event_type"] == "AgentToolCallStart")
        .unwrap();
    (start["payload"]["tool_call_id"].clone(), seen)
}

#[tokio::test]
async fn an_approved_report_is_sent_under_the_same_tool_call() {
    let (call_id, seen) = report_decided("resolved", json!({"approved": true})).await;
    let kinds = kinds(&seen);
    assert_eq!(kinds[..2], ["worker_ack", "AgentToolCallEnd"]);
    assert!(!kinds.contains(&"AgentToolCallStart"), "{kinds:?}");
    assert_eq!(
        seen[1]["payload"],
        json!({"tool_call_id": call_id, "tool_name": "send_report", "output": {"sent": true}})
    );
    assert_eq!(
        text_of(&seen, "FinalAnswerStream"),
        "Sent the report to finance."
    );
    assert_eq!(*kinds.last().unwrap(), "FinalAnswerStreamEnd");
}

#[tokio::test]
async fn a_denied_report_ends_its_tool_call_denied_with_the_reason() {
    let (call_id, seen) = report_decided(
        "resolved",
        json!({"approved": false, "reason": "not today"}),
    )
    .await;
    assert_eq!(kinds(&seen)[..2], ["worker_ack", "AgentToolCallEnd"]);
    assert!(!kinds(&seen).contains(&"AgentToolCallStart"));
    assert_eq!(
        seen[1]["payload"],
        json!({"tool_call_id": call_id, "tool_name": "send_report", "denied": true, "error": "not today"})
    );
    assert_eq!(
        text_of(&seen, "FinalAnswerStream"),
        "Okay, I did not send the report. Reason: not today."
    );
}

#[tokio::test]
async fn a_cancelled_approval_is_a_denial() {
    let (call_id, seen) = report_decided("cancelled", Value::Null).await;
    assert_eq!(
        seen[1]["payload"],
        json!({"tool_call_id": call_id, "tool_name": "send_report", "denied": true, "error": "denied"})
    );
    assert!(!kinds(&seen).contains(&"AgentToolCallStart"));
    assert_eq!(
        text_of(&seen, "FinalAnswerStream"),
        "Okay, I did not send the report."
    );
}

#[tokio::test]
async fn the_browser_time_is_a_client_tool_whose_output_the_answer_uses() {
    let harness = demo();
    let query = "What time is it?";
    let (parent, asked) = interrupted(&harness, query).await;
    let start = asked
        .iter()
        .find(|e| e["event_type"] == "AgentToolCallStart")
        .unwrap();
    assert_eq!(start["payload"]["executor"], "client");
    assert_eq!(start["payload"]["tool_name"], "browser_time");
    let interrupt = &asked.last().unwrap()["payload"]["interrupts"][0];
    assert_eq!(interrupt["reason"], "tool_call");
    assert_eq!(interrupt["tool_call_id"], start["payload"]["tool_call_id"]);
    assert_eq!(interrupt["metadata"]["tool_name"], "browser_time");
    let seen = resume(
        &harness,
        parent,
        query,
        asked.last().unwrap(),
        "resolved",
        json!("10:42"),
    )
    .await;
    let kinds = kinds(&seen);
    assert!(
        !kinds.contains(&"AgentToolCallStart") && !kinds.contains(&"AgentToolCallEnd"),
        "{kinds:?}"
    );
    assert_eq!(
        text_of(&seen, "FinalAnswerStream"),
        "Your browser says it is 10:42."
    );
    assert_eq!(*kinds.last().unwrap(), "FinalAnswerStreamEnd");
    harness.stop().await;
}

#[tokio::test]
async fn a_resume_of_something_the_demo_never_asked_is_a_worker_error() {
    let harness = demo();
    let parent = SessionId::new();
    let foreign = json!({"payload": {"interrupts": [{"id": "i9", "reason": "confirmation"}]}});
    let seen = resume(&harness, parent, "q", &foreign, "resolved", json!(true)).await;
    let last = seen.last().unwrap();
    assert_eq!(last["payload"]["code"], "worker_error", "{seen:?}");
    harness.stop().await;
}
