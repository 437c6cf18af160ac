//! Human in the loop through real HTTP (PROTOCOL §8): threads, interrupts,
//! resume — checked atomically (422 / 409 / 410 / 404, nothing dispatched
//! then), in every format, replayed, across backends. Every scenario runs
//! on the embedded log and on the real Redis.
//!
//! The tests play the worker with the Rust SDK's `publish_event`, so each
//! event goes through the session log exactly as a real worker's does.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_core::{EventLog, Job, JobSource};
use sse_bridge_gateway::Auth;
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::redis::{REDIS_URL, unique};
use sse_bridge_worker::publish_event;

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    async fn bus(self) -> Arc<dyn EventLog> {
        match self {
            Backend::Embedded => Arc::new(EmbeddedBus::new(4096)),
            Backend::Redis => {
                let mut config = RedisConfig::new(REDIS_URL);
                config.client_name = unique("t-threads");
                Arc::new(RedisBus::connect(config).await.expect("Redis"))
            }
        }
    }

    /// A gateway where `alice` (`key-a`) and `bob` (`key-b`) may call.
    async fn gateway(self, config: SessionConfig) -> TestGateway {
        TestGateway::start_on(self.bus().await, config, |state| {
            state.auth = Auth::default()
                .with_api_keys(["alice=key-a", "bob=key-b"])
                .unwrap();
        })
        .await
    }
}

on_both_backends!(
    an_interrupted_run_is_resumed_on_its_thread,
    resumes_must_answer_exactly_the_open_interrupts_once,
    an_expired_interrupt_can_only_be_cancelled,
    an_interrupt_from_a_stale_attempt_is_dropped,
    ag_ui_runs_end_with_the_interrupt_outcome_live_and_replayed,
    ai_sdk_approvals_resume_the_same_message,
);

/// Asserts that no job was dispatched.
async fn no_job(gw: &TestGateway) {
    let next = tokio::time::timeout(Duration::from_millis(300), gw.queue.next_job()).await;
    assert!(next.is_err(), "a refused run dispatched a job");
}

/// Alice's run on `thread` that ends with `interrupts`; its job.
async fn interrupted_run(gw: &TestGateway, thread: &str, interrupts: Value) -> Job {
    let body = json!({"user_query": "send the report", "thread_id": thread});
    let response = send_as(gw, "key-a", "POST", "/v1/react/sessions", Some(body)).await;
    assert_eq!(response.status(), 200);
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job,
        "AgentToolCallStart",
        json!({"tool_call_id": "call-1", "tool_name": "send_report", "tool_input": {"to": "finance"}}),
    )
    .await;
    gw.emit(&job, "interrupt", json!({ "interrupts": interrupts }))
        .await;
    let read = read_all_within(response, LIMIT).await;
    assert_eq!(read.last_type(), "interrupt", "{:?}", read.events);
    job
}

async fn thread_view(gw: &TestGateway, token: &str, thread: &str) -> (u16, Value) {
    let response = send_as(gw, token, "GET", &format!("/v1/threads/{thread}"), None).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn approve(id: &str) -> Value {
    json!({"interrupt_id": id, "status": "resolved", "payload": {"approved": true}})
}

async fn an_interrupted_run_is_resumed_on_its_thread(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let thread = unique("thread");
    let first = interrupted_run(
        &gw,
        &thread,
        json!([{"id": "i1", "reason": "tool_call", "tool_call_id": "call-1", "message": "Send the report to finance?"}]),
    )
    .await;
    assert_eq!(first.request.as_object()["thread_id"], thread);

    let (status, view) = thread_view(&gw, "key-a", &thread).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["runs"][0]["session_id"], first.session_id.to_string());
    assert_eq!(view["runs"][0]["status"], "interrupted");
    assert_eq!(view["interrupts"][0]["id"], "i1");
    assert_eq!(
        view["interrupts"][0]["message"],
        "Send the report to finance?"
    );
    // Another principal does not see it.
    assert_eq!(thread_view(&gw, "key-b", &thread).await.0, 404);

    let resume = json!({"thread_id": thread, "resume": [approve("i1")]});
    let response = send_as(&gw, "key-a", "POST", "/v1/react/sessions", Some(resume)).await;
    assert_eq!(response.status(), 200);
    let second = gw.take_job().await;
    assert_eq!(second.parent_session_id, Some(first.session_id));
    assert_eq!(
        second.parent_request.as_ref().unwrap()["user_query"],
        "send the report"
    );
    assert_eq!(
        second.interrupts.as_ref().unwrap()[0]["tool_call_id"],
        "call-1"
    );
    let request = second.request.as_object();
    assert_eq!(
        request["user_query"], "send the report",
        "the parent's query"
    );
    assert_eq!(request["resume"], json!([approve("i1")]));
    gw.emit(&second, "worker_ack", json!({})).await;
    gw.emit(
        &second,
        "AgentToolCallEnd",
        json!({"tool_call_id": "call-1", "tool_name": "send_report", "output": {"sent": true}}),
    )
    .await;
    gw.emit(&second, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all_within(response, LIMIT).await;
    assert_eq!(read.last_type(), "FinalAnswerStreamEnd");

    let (_, view) = thread_view(&gw, "key-a", &thread).await;
    let statuses: Vec<&str> = view["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interrupted", "completed"]);
    assert_eq!(view["interrupts"], json!([]));
    gw.stop().await;
}

async fn resumes_must_answer_exactly_the_open_interrupts_once(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let thread = unique("thread");
    interrupted_run(
        &gw,
        &thread,
        json!([{"id": "i1", "reason": "confirmation"}, {"id": "i2", "reason": "input_required"}]),
    )
    .await;
    let post = |token: &'static str, resume: Value| {
        let body = json!({"thread_id": thread, "resume": resume});
        let gw = &gw;
        async move { send_as(gw, token, "POST", "/v1/react/sessions", Some(body)).await }
    };
    let only_one = post("key-a", json!([approve("i1")])).await;
    assert_eq!(only_one.status(), 422);
    let detail = only_one.json::<Value>().await.unwrap()["detail"].clone();
    assert!(
        detail.as_str().unwrap().contains("\"i2\" is not answered"),
        "{detail}"
    );
    assert_eq!(
        post(
            "key-a",
            json!([approve("i1"), approve("i2"), approve("i3")])
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        post("key-b", json!([approve("i1"), approve("i2")]))
            .await
            .status(),
        404
    );
    let unknown_thread = json!({"thread_id": unique("nothing"), "resume": [approve("i1")]});
    let response = send_as(
        &gw,
        "key-a",
        "POST",
        "/v1/react/sessions",
        Some(unknown_thread),
    )
    .await;
    assert_eq!(response.status(), 404);
    no_job(&gw).await;

    // Two resumes at once: exactly one wins.
    let both = json!([approve("i1"), approve("i2")]);
    let (a, b) = tokio::join!(post("key-a", both.clone()), post("key-a", both.clone()));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let winner = gw.take_job().await;
    assert!(winner.parent_session_id.is_some());
    no_job(&gw).await;
    assert_eq!(post("key-a", both).await.status(), 409);
    no_job(&gw).await;
    gw.stop().await;
}

async fn an_expired_interrupt_can_only_be_cancelled(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let thread = unique("thread");
    interrupted_run(
        &gw,
        &thread,
        json!([{"id": "late", "reason": "confirmation", "expires_at": "2020-01-01T00:00:00Z"}]),
    )
    .await;
    let resolve = json!({"thread_id": thread, "resume": [approve("late")]});
    let response = send_as(&gw, "key-a", "POST", "/v1/react/sessions", Some(resolve)).await;
    assert_eq!(response.status(), 410);
    no_job(&gw).await;
    let cancel =
        json!({"thread_id": thread, "resume": [{"interrupt_id": "late", "status": "cancelled"}]});
    let response = send_as(&gw, "key-a", "POST", "/v1/react/sessions", Some(cancel)).await;
    assert_eq!(response.status(), 200);
    let job = gw.take_job().await;
    assert_eq!(job.request.as_object()["resume"][0]["status"], "cancelled");
    gw.stop().await;
}

async fn an_interrupt_from_a_stale_attempt_is_dropped(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let thread = unique("thread");
    let body = json!({"user_query": "q", "thread_id": thread});
    let response = send_as(&gw, "key-a", "POST", "/v1/react/sessions", Some(body)).await;
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    let stale = publish_event(
        gw.bus.as_ref(),
        job.session_id,
        Some("b"),
        "interrupt",
        json!({"interrupts": [{"id": "x", "reason": "confirmation"}]}),
    )
    .await;
    assert!(
        stale.is_err(),
        "a foreign attempt's interrupt was taken: {stale:?}"
    );
    gw.emit(&job, "FinalAnswerStream", json!({"char": "ok"}))
        .await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all_within(response, LIMIT).await;
    assert_eq!(
        kinds(&read.events),
        ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    );
    let (_, view) = thread_view(&gw, "key-a", &thread).await;
    assert_eq!(view["runs"][0]["status"], "completed");
    assert_eq!(view["interrupts"], json!([]));
    gw.stop().await;
}

/// The `data:` JSON of an SSE body (AG-UI events, UI message chunks), and
/// `[DONE]` as a string.
async fn chunks(response: reqwest::Response) -> Vec<Value> {
    let body = tokio::time::timeout(LIMIT, response.text())
        .await
        .unwrap()
        .unwrap();
    body.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or(Value::String(data.to_owned())))
        .collect()
}

fn types(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| {
            c["type"]
                .as_str()
                .unwrap_or(c.as_str().unwrap_or("?"))
                .to_owned()
        })
        .collect()
}

async fn ag_ui_runs_end_with_the_interrupt_outcome_live_and_replayed(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let (thread, run) = (unique("agui-thread"), unique("agui-run"));
    let input = json!({"threadId": thread, "runId": run, "messages": [{"id": "u1", "role": "user", "content": "send it"}]});
    let response = send_as(&gw, "key-a", "POST", "/v1/ag-ui", Some(input)).await;
    assert_eq!(response.status(), 200);
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(
        &job,
        "AgentToolCallStart",
        json!({"tool_call_id": "call-1", "tool_name": "send_report", "tool_input": {}}),
    )
    .await;
    gw.emit(&job,
        "interrupt",
        json!({"interrupts": [{"id": "i1", "reason": "tool_call", "tool_call_id": "call-1", "message": "Send?", "response_schema": {"type": "object"}}]}),
    )
    .await;
    let live = chunks(response).await;
    let finished = live.last().unwrap();
    assert_eq!(finished["type"], "RUN_FINISHED");
    assert_eq!(
        finished["outcome"],
        json!({"type": "interrupt", "interrupts": [{"id": "i1", "reason": "tool_call", "toolCallId": "call-1", "message": "Send?", "responseSchema": {"type": "object"}}]})
    );
    let start = live
        .iter()
        .find(|c| c["type"] == "TOOL_CALL_START")
        .unwrap();
    assert_eq!(start["toolCallId"], "call-1", "the worker's id");
    let replay = send_as(
        &gw,
        "key-a",
        "GET",
        &format!("/v1/ag-ui/runs/{run}/events"),
        None,
    )
    .await;
    assert_eq!(
        chunks(replay).await,
        live,
        "a replay ends with the same interrupt"
    );

    // The frontend tool's result as a tool message plus the resume entry.
    let resume = json!({"threadId": thread, "runId": unique("agui-run"), "messages": [
        {"id": "u1", "role": "user", "content": "send it"},
        {"id": "r1", "role": "tool", "toolCallId": "call-1", "content": "done in the browser"}
    ]});
    let response = send_as(&gw, "key-a", "POST", "/v1/ag-ui", Some(resume)).await;
    assert_eq!(response.status(), 200);
    let job = gw.take_job().await;
    assert_eq!(
        job.request.as_object()["resume"],
        json!([{"interrupt_id": "i1", "status": "resolved", "payload": "done in the browser"}])
    );
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    assert_eq!(
        chunks(response).await.last().unwrap()["type"],
        "RUN_FINISHED"
    );
    gw.stop().await;
}

async fn ai_sdk_approvals_resume_the_same_message(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let chat = unique("chat");
    let user =
        json!({"id": "u1", "role": "user", "parts": [{"type": "text", "text": "send the report"}]});
    let body = json!({"id": chat, "messages": [user]});
    let response = send_as(&gw, "key-a", "POST", "/v1/ai-sdk/chat", Some(body)).await;
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job, "AgentToolCallStart", json!({"tool_call_id": "call-1", "tool_name": "send_report", "tool_input": {"to": "finance"}})).await;
    gw.emit(
        &job,
        "interrupt",
        json!({"interrupts": [{"id": "ap-1", "reason": "tool_call", "tool_call_id": "call-1"}]}),
    )
    .await;
    let live = chunks(response).await;
    assert_eq!(
        types(&live),
        [
            "start",
            "data-worker_ack",
            "start-step",
            "tool-input-available",
            "tool-approval-request",
            "finish-step",
            "finish",
            "[DONE]"
        ]
    );
    assert_eq!(
        live[4],
        json!({"type": "tool-approval-request", "approvalId": "ap-1", "toolCallId": "call-1"})
    );
    let message_id = live[0]["messageId"].as_str().unwrap().to_owned();

    // addToolApprovalResponse, then the automatic send: the last message
    // is the assistant's, its tool part answered.
    let assistant = json!({"id": message_id, "role": "assistant", "parts": [
        {"type": "dynamic-tool", "toolName": "send_report", "toolCallId": "call-1", "state": "approval-responded",
         "input": {"to": "finance"}, "approval": {"id": "ap-1", "approved": true}}
    ]});
    let body = json!({"id": chat, "messages": [user, assistant]});
    let response = send_as(&gw, "key-a", "POST", "/v1/ai-sdk/chat", Some(body.clone())).await;
    assert_eq!(response.status(), 200);
    let job = gw.take_job().await;
    assert_eq!(
        job.request.as_object()["resume"],
        json!([{"interrupt_id": "ap-1", "status": "resolved", "payload": {"approved": true}}])
    );
    assert_eq!(job.request.user_query(), "send the report");
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(
        &job,
        "AgentToolCallEnd",
        json!({"tool_call_id": "call-1", "tool_name": "send_report", "output": {"sent": true}}),
    )
    .await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    let resumed = chunks(response).await;
    assert_eq!(
        resumed[0],
        json!({"type": "start", "messageId": message_id}),
        "the same message goes on"
    );
    let output = resumed
        .iter()
        .find(|c| c["type"] == "tool-output-available")
        .unwrap();
    assert_eq!(output["toolCallId"], "call-1");
    assert!(
        !types(&resumed).contains(&"tool-input-available".to_owned()),
        "no duplicated tool call"
    );
    // The same approval again: already answered.
    let again = send_as(&gw, "key-a", "POST", "/v1/ai-sdk/chat", Some(body)).await;
    assert_eq!(again.status(), 409);
    gw.stop().await;
}

/// A thread's record is Redis's: a new gateway sees it, and it expires
/// `thread_ttl` after its last run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_survives_a_gateway_restart_and_expires_after_its_ttl() {
    let config = SessionConfig {
        thread_ttl: Duration::from_secs(2),
        ..SessionConfig::default()
    };
    let thread = unique("thread");
    let gw = Backend::Redis.gateway(config).await;
    interrupted_run(
        &gw,
        &thread,
        json!([{"id": "i1", "reason": "confirmation"}]),
    )
    .await;
    gw.stop().await;

    let gw = Backend::Redis.gateway(config).await;
    let (status, view) = thread_view(&gw, "key-a", &thread).await;
    assert_eq!(status, 200);
    assert_eq!(view["interrupts"][0]["id"], "i1");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(thread_view(&gw, "key-a", &thread).await.0, 404);
    gw.stop().await;
}

/// The demo agent through the gateway: "send the report" asks for approval,
/// the resume continues the same tool call; "what time is it" hands a tool
/// to the client and answers with its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_agent_asks_and_continues_when_resumed() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    gw.spawn_demo_worker();
    for (query, answer, expected) in [
        (
            "please send the report",
            json!({"approved": true}),
            "Sent the report to finance.",
        ),
        (
            "send the report",
            json!({"approved": false, "reason": "not today"}),
            "Okay, I did not send the report. Reason: not today.",
        ),
        (
            "what time is it?",
            json!("10:42"),
            "Your browser says it is 10:42.",
        ),
    ] {
        let thread = unique("demo");
        let body = json!({"user_query": query, "thread_id": thread});
        let asked = read_all_within(post_session(&client(), &gw.url, body).await, LIMIT).await;
        assert_eq!(asked.last_type(), "interrupt", "{:?}", asked.events);
        let start = asked
            .events
            .iter()
            .find(|e| e["event_type"] == "AgentToolCallStart")
            .unwrap();
        let interrupt = &asked.events.last().unwrap()["payload"]["interrupts"][0];
        assert_eq!(interrupt["tool_call_id"], start["payload"]["tool_call_id"]);
        let resume = json!({"thread_id": thread, "resume": [{"interrupt_id": interrupt["id"], "status": "resolved", "payload": answer}]});
        let done = read_all_within(post_session(&client(), &gw.url, resume).await, LIMIT).await;
        assert_eq!(
            done.text("FinalAnswerStream"),
            expected,
            "{:?}",
            done.events
        );
        assert!(
            !kinds(&done.events).contains(&"AgentToolCallStart"),
            "the resumed run must not start the call again"
        );
        if start["payload"]["executor"] != "client" {
            let end = done
                .events
                .iter()
                .find(|e| e["event_type"] == "AgentToolCallEnd")
                .unwrap();
            assert_eq!(
                end["payload"]["tool_call_id"],
                start["payload"]["tool_call_id"]
            );
        }
    }
    gw.stop().await;
}
