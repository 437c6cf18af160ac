//! The agent-UI endpoints through real HTTP (PROTOCOL §5): AG-UI and the AI
//! SDK UI message stream from the same worker events, their request
//! validation, their replay/resume endpoints, and one log followed in any
//! format. The official client packages run against the binary in
//! `crates/sse-bridge/tests/agent_ui.rs`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::Job;
use sse_bridge_core::session::SessionConfig;

const LIMIT: Duration = Duration::from_secs(20);

async fn post(gw: &TestGateway, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn get(gw: &TestGateway, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", gw.url))
        .send()
        .await
        .unwrap()
}

/// The worker side, as the demo agent answers "What is 2+3?".
async fn answer(gw: &TestGateway, job: &Job) {
    let events = [
        ("worker_ack", json!({})),
        ("AgentThoughtStream", json!({"char": "T"})),
        (
            "AgentToolCallStart",
            json!({"tool_name": "calculator", "tool_input": {"expression": "2+3"}}),
        ),
        (
            "AgentToolCallEnd",
            json!({"tool_name": "calculator", "output": "5"}),
        ),
        ("FinalAnswerStream", json!({"char": "5"})),
        ("FinalAnswerStreamEnd", json!({})),
    ];
    for (event_type, payload) in events {
        gw.emit(job, event_type, payload).await;
    }
}

/// `data:` payloads of a whole body (JSON, or the AI SDK's `[DONE]` as a string).
async fn data_of(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let text = read_rest(response.bytes_stream(), LIMIT, "the stream").await;
    text.split_terminator("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into())))
        .collect()
}

fn types(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            f["type"]
                .as_str()
                .unwrap_or(f.as_str().unwrap_or_default())
                .to_owned()
        })
        .collect()
}

fn ag_ui_input(run_id: &str) -> Value {
    json!({
        "threadId": "thread-1", "runId": run_id, "state": {}, "tools": [], "context": [],
        "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "What is 2+3?"}]
    })
}

fn chat_body(chat_id: &str) -> Value {
    json!({
        "id": chat_id, "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "What is 2+3?"}]}]
    })
}

#[tokio::test]
async fn ag_ui_runs_stream_and_replay_whole() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let response = post(&gw, "/v1/ag-ui", ag_ui_input("run-1")).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let job = gw.take_job().await;
    assert_eq!(job.request.user_query(), "What is 2+3?");
    assert_eq!(
        job.request.as_object()["threadId"],
        "thread-1",
        "the input is kept"
    );
    answer(&gw, &job).await;
    let live = data_of(response).await;
    assert_eq!(
        live[0],
        json!({"type": "RUN_STARTED", "threadId": "thread-1", "runId": "run-1"})
    );
    assert_eq!(live.last().unwrap()["type"], "RUN_FINISHED");
    let result = live
        .iter()
        .find(|f| f["type"] == "TOOL_CALL_RESULT")
        .unwrap();
    assert_eq!(result["content"], "5");
    let replay = data_of(get(&gw, "/v1/ag-ui/runs/run-1/events").await).await;
    assert_eq!(replay, live, "a reloaded page gets the same run");
    assert_eq!(get(&gw, "/v1/ag-ui/runs/nope/events").await.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn bad_agent_ui_requests_are_refused_with_a_detail() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let mut no_user = ag_ui_input("r");
    no_user["messages"] = json!([{"id": "a", "role": "assistant", "content": "hi"}]);
    let cases = [
        (
            "/v1/ag-ui",
            json!({"runId": "r", "messages": []}),
            "threadId",
        ),
        ("/v1/ag-ui", no_user, "no user message"),
        ("/v1/ai-sdk/chat", json!({"messages": []}), "id is required"),
        (
            "/v1/ai-sdk/chat",
            json!({"id": "c", "messages": "x"}),
            "messages must be an array",
        ),
    ];
    for (path, body, expected) in cases {
        let response = post(&gw, path, body).await;
        assert_eq!(response.status(), 422, "{path}");
        let detail: Value = response.json().await.unwrap();
        assert!(
            detail["detail"].as_str().unwrap().contains(expected),
            "{detail}"
        );
    }
    let not_json = client()
        .post(format!("{}/v1/ag-ui", gw.url))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    assert_eq!(gw.bus.routed_channels(), 0, "nothing was started");
    gw.stop().await;
}

#[tokio::test]
async fn ai_sdk_chats_stream_and_resume_only_while_live() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    assert_eq!(
        get(&gw, "/v1/ai-sdk/chat/unknown/stream").await.status(),
        204
    );
    let response = post(&gw, "/v1/ai-sdk/chat", chat_body("chat-1")).await;
    assert_eq!(response.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    // Mid-message, reconnectToStream replays the message from its start.
    let resumed = get(&gw, "/v1/ai-sdk/chat/chat-1/stream").await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(resumed.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let resumed = tokio::spawn(data_of(resumed));
    for (event_type, payload) in [
        ("FinalAnswerStream", json!({"char": "5"})),
        ("FinalAnswerStreamEnd", json!({})),
    ] {
        gw.emit(&job, event_type, payload).await;
    }
    let live = data_of(response).await;
    assert_eq!(
        types(&live),
        [
            "start",
            "data-worker_ack",
            "start-step",
            "text-start",
            "text-delta",
            "text-end",
            "finish-step",
            "finish",
            "[DONE]"
        ]
    );
    assert_eq!(
        resumed.await.unwrap(),
        live,
        "the same message, same messageId"
    );
    assert_eq!(
        get(&gw, "/v1/ai-sdk/chat/chat-1/stream").await.status(),
        204,
        "no live message once it is complete"
    );
    gw.stop().await;
}

#[tokio::test]
async fn one_log_is_followed_in_any_format() {
    let gw = TestGateway::start(SessionConfig::default()).await;

    // Started through the AI SDK, followed natively with Last-Event-ID.
    let chat = post(&gw, "/v1/ai-sdk/chat", chat_body("chat-2")).await;
    let id = chat.headers()["x-session-id"].to_str().unwrap().to_owned();
    let job = gw.take_job().await;
    answer(&gw, &job).await;
    data_of(chat).await;
    let native = read_all_frames(follow(&client(), &gw.url, &id, None).await, LIMIT).await;
    assert_eq!(native.len(), 6);
    let after_tool = native[3].id.clone();
    let rest = read_all_frames(
        follow(&client(), &gw.url, &id, after_tool.as_deref()).await,
        LIMIT,
    )
    .await;
    assert_eq!(
        kinds(&rest.iter().map(|f| f.event.clone()).collect::<Vec<_>>()),
        ["FinalAnswerStream", "FinalAnswerStreamEnd"]
    );

    // Started natively, replayed as AG-UI and as the AI SDK stream.
    let (creator, job) = gw.open(json!({"user_query": "What is 2+3?"})).await;
    answer(&gw, &job).await;
    read_all(creator).await;
    let id = job.session_id.to_string();
    let ag_ui =
        data_of(get(&gw, &format!("/v1/react/sessions/{id}/events?format=ag-ui")).await).await;
    assert_eq!(
        ag_ui[0],
        json!({"type": "RUN_STARTED", "threadId": id, "runId": id})
    );
    assert_eq!(ag_ui.last().unwrap()["type"], "RUN_FINISHED");
    let ai_sdk = data_of(
        get(
            &gw,
            &format!("/v1/react/sessions/{id}/events?format=ai-sdk"),
        )
        .await,
    )
    .await;
    assert_eq!(ai_sdk.last().unwrap(), "[DONE]");
    let bad = get(&gw, &format!("/v1/react/sessions/{id}/events?format=xml")).await;
    assert_eq!(bad.status(), 422);
    gw.stop().await;
}

/// The demo agent's tour of the richer events (PROTOCOL §9), one run read
/// in each format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_richer_events_arrive_as_each_format_s_own_parts() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    gw.spawn_demo_worker();
    let ag_ui = data_of(
        post(
            &gw,
            "/v1/ag-ui",
            json!({
                "threadId": "t-research", "runId": "r-research",
                "messages": [{"id": "u1", "role": "user", "content": "research durable streams"}]
            }),
        )
        .await,
    )
    .await;
    let kinds = types(&ag_ui);
    for expected in [
        "STEP_STARTED",
        "STEP_FINISHED",
        "STATE_SNAPSHOT",
        "STATE_DELTA",
        "TOOL_CALL_ARGS",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "{expected} in {kinds:?}"
        );
    }
    let args: String = ag_ui
        .iter()
        .filter(|e| e["type"] == "TOOL_CALL_ARGS")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        args, r#"{"query":"sse-bridge durable streams"}"#,
        "streamed, never repeated"
    );
    let finished = ag_ui.last().unwrap();
    assert_eq!(finished["type"], "RUN_FINISHED");
    assert_eq!(finished["usage"][0]["inputTokens"], 42);
    assert_eq!(finished["usage"][0]["model"], "demo");

    let ai_sdk = data_of(post(&gw, "/v1/ai-sdk/chat", json!({
        "id": "c-research",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "research durable streams"}]}]
    })).await).await;
    let kinds = types(&ai_sdk);
    for expected in [
        "tool-input-start",
        "tool-input-delta",
        "tool-input-available",
        "source-url",
        "file",
        "data-progress",
        "data-notice",
        "data-state",
        "message-metadata",
    ] {
        assert!(
            kinds.contains(&expected.to_owned()),
            "{expected} in {kinds:?}"
        );
    }
    let states: Vec<&Value> = ai_sdk
        .iter()
        .filter(|c| c["type"] == "data-state")
        .map(|c| &c["data"])
        .collect();
    assert_eq!(
        states,
        [
            &json!({"status": "searching", "sources": 0}),
            &json!({"status": "writing", "sources": 1})
        ]
    );
    let transient = ai_sdk.iter().find(|c| c["type"] == "data-notice").unwrap();
    assert_eq!(transient["transient"], true);
    let usage = ai_sdk
        .iter()
        .find(|c| c["type"] == "message-metadata")
        .unwrap();
    assert_eq!(usage["messageMetadata"]["usage"]["inputTokens"], 42);
    gw.stop().await;
}
