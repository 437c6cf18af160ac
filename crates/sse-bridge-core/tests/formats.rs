//! The output formats as the official clients judge them: for any sequence
//! of worker events (proptest) — the seed's vocabulary, tool calls with ids
//! and client tools (PROTOCOL §8), the richer events of §9 — ending in an
//! answer, an error or an interrupt, the AG-UI stream obeys the AG-UI
//! verifier's ordering rules and the AI SDK stream the UI message stream's
//! part rules, and the text that goes in (reasoning, answer) comes out
//! unchanged. The
//! checkers below restate the clients' rules (`@ag-ui/client` 1.0.0
//! `verifyEvents`, `ai` 7 `processUIMessageStream`); the interop tests run
//! the clients themselves.

use std::collections::HashSet;

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{Value, json};
use sse_bridge_core::format::{AgUi, AiSdk, Encoder};
use sse_bridge_core::protocol::Event;

#[derive(Debug, Clone)]
enum Step {
    Ack,
    Thought(String),
    ToolStart(&'static str),
    ToolEnd(&'static str),
    Answer(String),
    Other,
    /// A call with the worker's id (`client`: the client runs it).
    ToolStartId(&'static str, bool),
    /// The end of a call with an id: output, error or denied.
    ToolEndId(&'static str, u8),
    ToolInput(&'static str, String),
    AgentStepStart(&'static str),
    AgentStepEnd(&'static str),
    State(u8),
    StatePatch(u8),
    Source,
    File,
    Data(bool),
    Usage,
}

fn step() -> impl Strategy<Value = Step> {
    let tool = prop_oneof![Just("calculator"), Just("utc_clock")];
    let id = prop_oneof![Just("c1"), Just("c2"), Just("c3")];
    let name = prop_oneof![Just("plan"), Just("act")];
    prop_oneof![
        Just(Step::Ack),
        "[a-z \n\"]{0,3}".prop_map(Step::Thought),
        tool.clone().prop_map(Step::ToolStart),
        tool.prop_map(Step::ToolEnd),
        "[a-z \n\"]{0,3}".prop_map(Step::Answer),
        Just(Step::Other),
        (id.clone(), any::<bool>()).prop_map(|(id, client)| Step::ToolStartId(id, client)),
        (id.clone(), 0..3u8).prop_map(|(id, kind)| Step::ToolEndId(id, kind)),
        (id, "[a-z{}\":]{0,3}").prop_map(|(id, delta)| Step::ToolInput(id, delta)),
        name.clone().prop_map(Step::AgentStepStart),
        name.prop_map(Step::AgentStepEnd),
        (0..3u8).prop_map(Step::State),
        (0..3u8).prop_map(Step::StatePatch),
        Just(Step::Source),
        Just(Step::File),
        any::<bool>().prop_map(Step::Data),
        Just(Step::Usage),
    ]
}

fn event(step: &Step) -> Event {
    match step {
        Step::Ack => Event::new("worker_ack", json!({})),
        Step::Thought(c) => Event::new("AgentThoughtStream", json!({ "char": c })),
        Step::ToolStart(t) => Event::new(
            "AgentToolCallStart",
            json!({"tool_name": t, "tool_input": {"expression": "1+1"}}),
        ),
        Step::ToolEnd(t) => Event::new("AgentToolCallEnd", json!({"tool_name": t, "output": "2"})),
        Step::Answer(c) => Event::new("FinalAnswerStream", json!({ "char": c })),
        Step::Other => Event::new("Progress", json!({"pct": 50})),
        Step::ToolStartId(id, client) => {
            let mut payload =
                json!({"tool_call_id": id, "tool_name": "search", "tool_input": {"q": 1}});
            if *client {
                payload["executor"] = json!("client");
            }
            Event::new("AgentToolCallStart", payload)
        }
        Step::ToolEndId(id, kind) => Event::new(
            "AgentToolCallEnd",
            match kind {
                0 => json!({"tool_call_id": id, "tool_name": "search", "output": {"hits": 1}}),
                1 => json!({"tool_call_id": id, "tool_name": "search", "error": "timeout"}),
                _ => {
                    json!({"tool_call_id": id, "tool_name": "search", "denied": true, "error": "denied"})
                }
            },
        ),
        Step::ToolInput(id, delta) => Event::new(
            "AgentToolCallInputStream",
            json!({"tool_call_id": id, "tool_name": "search", "delta": delta}),
        ),
        Step::AgentStepStart(name) => Event::new("AgentStepStart", json!({ "name": name })),
        Step::AgentStepEnd(name) => Event::new("AgentStepEnd", json!({ "name": name })),
        Step::State(n) => Event::new("StateSnapshot", json!({"state": {"n": n}})),
        Step::StatePatch(n) => Event::new(
            "StateDelta",
            json!({"patch": [{"op": "add", "path": "/n", "value": n}]}),
        ),
        Step::Source => Event::new(
            "Source",
            json!({"id": "s1", "url": "https://example.com", "title": "Example"}),
        ),
        Step::File => Event::new(
            "File",
            json!({"media_type": "image/png", "url": "https://example.com/a.png"}),
        ),
        Step::Data(transient) => Event::new(
            "Data",
            json!({"name": "weather", "id": "w1", "data": {"t": 20}, "transient": transient}),
        ),
        Step::Usage => Event::new(
            "Usage",
            json!({"input_tokens": 10, "output_tokens": 5, "model": "demo"}),
        ),
    }
}

/// How a generated run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Answer,
    Error,
    /// An interrupt; naming a tool call id the run started, if any.
    Interrupt,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![Just(End::Answer), Just(End::Error), Just(End::Interrupt)]
}

/// Drops the ends of calls with ids that the run did not start before (a
/// resumed run's ends reach an earlier run's calls: not this stream's rules).
fn coherent(steps: Vec<Step>) -> Vec<Step> {
    let mut started = HashSet::new();
    steps
        .into_iter()
        .filter(|step| match step {
            Step::ToolStartId(id, _) => {
                started.insert(*id);
                true
            }
            Step::ToolEndId(id, _) => started.contains(id),
            _ => true,
        })
        .collect()
}

fn terminal_of(end: End, steps: &[Step]) -> Event {
    match end {
        End::Answer => terminal(true),
        End::Error => terminal(false),
        End::Interrupt => {
            let call = steps.iter().rev().find_map(|s| match s {
                Step::ToolStartId(id, _) => Some(*id),
                _ => None,
            });
            let mut interrupt = json!({"id": "i1", "reason": "confirmation", "message": "ok?"});
            if let Some(call) = call {
                interrupt["tool_call_id"] = json!(call);
                interrupt["reason"] = json!("tool_call");
            }
            Event::new("interrupt", json!({ "interrupts": [interrupt] }))
        }
    }
}

fn terminal(success: bool) -> Event {
    if success {
        Event::new("FinalAnswerStreamEnd", json!({}))
    } else {
        Event::new("error", json!({"error": "boom", "code": "worker_error"}))
    }
}

fn encode(encoder: &mut dyn Encoder, steps: &[Step], success: bool) -> Vec<String> {
    let end = if success { End::Answer } else { End::Error };
    encode_to(encoder, steps, end)
}

fn encode_to(encoder: &mut dyn Encoder, steps: &[Step], end: End) -> Vec<String> {
    let mut out = BytesMut::new();
    encoder.start(&mut out);
    for step in steps {
        encoder.event(&event(step), &mut out);
    }
    encoder.event(&terminal_of(end, steps), &mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(!text.contains('\r'), "LF-only framing");
    text.split_terminator("\n\n")
        .map(|frame| {
            assert!(!frame.contains('\n'), "one data line per frame: {frame:?}");
            frame
                .strip_prefix("data: ")
                .expect("a data frame")
                .to_owned()
        })
        .collect()
}

fn expected_text(steps: &[Step], answer: bool) -> String {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Answer(c) if answer => Some(c.as_str()),
            Step::Thought(c) if !answer => Some(c.as_str()),
            _ => None,
        })
        .collect()
}

/// `@ag-ui/client`'s verifier rules, and the text carried; returns
/// (answer, reasoning).
fn check_ag_ui(frames: &[String], end: End) -> (String, String) {
    let events: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "RUN_STARTED");
    let (mut text, mut reasoning_msgs, mut reasoning, mut calls) = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    let mut steps: Vec<String> = Vec::new();
    let (mut answer, mut thought) = (String::new(), String::new());
    for (i, e) in events.iter().enumerate().skip(1) {
        let id = e["messageId"]
            .as_str()
            .or(e["toolCallId"].as_str())
            .unwrap_or_default()
            .to_owned();
        let last = i == events.len() - 1;
        match e["type"].as_str().unwrap() {
            "RUN_STARTED" => panic!("a second RUN_STARTED"),
            "TEXT_MESSAGE_START" => assert!(text.insert(id), "duplicate start"),
            "TEXT_MESSAGE_CONTENT" => {
                assert!(text.contains(&id), "content before start");
                answer.push_str(e["delta"].as_str().unwrap());
            }
            "TEXT_MESSAGE_END" => assert!(text.remove(&id)),
            "REASONING_START" => assert!(reasoning.insert(id)),
            "REASONING_MESSAGE_START" => {
                assert_eq!(e["role"], "reasoning");
                assert!(reasoning_msgs.insert(id));
            }
            "REASONING_MESSAGE_CONTENT" => {
                assert!(reasoning_msgs.contains(&id));
                thought.push_str(e["delta"].as_str().unwrap());
            }
            "REASONING_MESSAGE_END" => assert!(reasoning_msgs.remove(&id)),
            "REASONING_END" => assert!(reasoning.remove(&id)),
            "TOOL_CALL_START" => assert!(calls.insert(id), "a call started twice at once"),
            "TOOL_CALL_ARGS" => {
                assert!(calls.contains(&id), "args of no open call");
                assert!(e["delta"].is_string());
            }
            "TOOL_CALL_END" => assert!(calls.remove(&id), "end of no open call"),
            "TOOL_CALL_RESULT" => {
                assert!(!calls.contains(&id), "result of a call still open");
                assert!(e["content"].is_string());
            }
            "STEP_STARTED" => steps.push(e["stepName"].as_str().unwrap().to_owned()),
            "STEP_FINISHED" => {
                let name = e["stepName"].as_str().unwrap();
                let at = steps
                    .iter()
                    .rposition(|s| s == name)
                    .expect("a step that started");
                steps.remove(at);
            }
            "STATE_SNAPSHOT" => assert!(e.get("snapshot").is_some()),
            "STATE_DELTA" => assert!(e["delta"].is_array()),
            "CUSTOM" => assert!(e["name"].is_string() && !e["value"].is_null()),
            "RUN_FINISHED" => {
                assert!(end != End::Error && last, "RUN_FINISHED last");
                assert!(
                    text.is_empty()
                        && reasoning_msgs.is_empty()
                        && reasoning.is_empty()
                        && calls.is_empty()
                        && steps.is_empty(),
                    "nothing open at RUN_FINISHED: {text:?} {reasoning_msgs:?} {reasoning:?} {calls:?} {steps:?}"
                );
                let interrupted = e["outcome"]["type"] == "interrupt";
                assert_eq!(interrupted, end == End::Interrupt);
                if let Some(usage) = e.get("usage") {
                    assert_eq!(usage[0]["totalTokens"], 15);
                }
            }
            "RUN_ERROR" => {
                assert!(end == End::Error && last, "RUN_ERROR last");
                assert_eq!(e["code"], "worker_error");
            }
            other => panic!("unexpected AG-UI event {other}"),
        }
    }
    (answer, thought)
}

/// The AI SDK's part rules, and the text carried; returns (answer, reasoning).
fn check_ai_sdk(frames: &[String], end: End) -> (String, String) {
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(chunks[0], json!({"type": "start", "messageId": "msg-1"}));
    let (mut text, mut reasoning, mut tools) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut streaming = HashSet::new();
    let mut step_open = false;
    let (mut answer, mut thought) = (String::new(), String::new());
    for (i, c) in chunks.iter().enumerate().skip(1) {
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        let call = c["toolCallId"].as_str().unwrap_or_default().to_owned();
        let last = i == chunks.len() - 1;
        let kind = c["type"].as_str().unwrap();
        if kind.starts_with("text-")
            || kind.starts_with("reasoning-")
            || kind.starts_with("tool-input-")
            || kind.starts_with("tool-output-")
        {
            assert!(step_open, "{kind} outside a step");
        }
        match kind {
            "text-start" => assert!(text.insert(id) && reasoning.is_empty()),
            "text-delta" => {
                assert!(text.contains(&id), "text-delta without text-start");
                answer.push_str(c["delta"].as_str().unwrap());
            }
            "text-end" => assert!(text.remove(&id)),
            "reasoning-start" => assert!(reasoning.insert(id) && text.is_empty()),
            "reasoning-delta" => {
                assert!(reasoning.contains(&id));
                thought.push_str(c["delta"].as_str().unwrap());
            }
            "reasoning-end" => assert!(reasoning.remove(&id)),
            "tool-input-start" => {
                assert!(text.is_empty() && reasoning.is_empty());
                assert!(streaming.insert(call.clone()) && c["toolName"].is_string());
                tools.insert(call);
            }
            "tool-input-delta" => {
                assert!(streaming.contains(&call), "a delta of no streaming input");
                assert!(c["inputTextDelta"].is_string());
            }
            "tool-input-available" => {
                assert!(text.is_empty() && reasoning.is_empty());
                streaming.remove(&call);
                tools.insert(call);
                assert_eq!(c["dynamic"], true);
            }
            "tool-output-available" | "tool-output-error" | "tool-output-denied" => {
                assert!(tools.contains(&call), "output of no tool part")
            }
            "tool-approval-request" => {
                assert!(end == End::Interrupt && tools.contains(&call));
                assert_eq!(c["approvalId"], "i1");
            }
            "start-step" => {
                assert!(!step_open, "a step inside a step");
                step_open = true;
            }
            "finish-step" => {
                assert!(step_open && text.is_empty() && reasoning.is_empty());
                step_open = false;
            }
            "source-url" => assert!(c["sourceId"].is_string() && c["url"].is_string()),
            "file" => assert!(c["url"].is_string() && c["mediaType"].is_string()),
            "message-metadata" => assert_eq!(c["messageMetadata"]["usage"]["totalTokens"], 15),
            "finish" => assert!(end != End::Error && last && !step_open),
            "error" => assert!(end == End::Error && last && c["errorText"].is_string()),
            t if t.starts_with("data-") => assert!(c.get("data").is_some()),
            other => panic!("unexpected chunk {other}"),
        }
    }
    (answer, thought)
}

proptest! {
    #[test]
    fn ag_ui_streams_satisfy_the_verifier_and_carry_the_text(
        steps in prop::collection::vec(step(), 0..40).prop_map(coherent),
        end in end(),
    ) {
        let frames = encode_to(&mut AgUi::new("thread-1", "run-1", "s"), &steps, end);
        let (answer, thought) = check_ag_ui(&frames, end);
        prop_assert_eq!(answer, expected_text(&steps, true));
        prop_assert_eq!(thought, expected_text(&steps, false));
    }

    #[test]
    fn ai_sdk_streams_satisfy_the_part_rules_and_carry_the_text(
        steps in prop::collection::vec(step(), 0..40).prop_map(coherent),
        end in end(),
    ) {
        let frames = encode_to(&mut AiSdk::new("msg-1"), &steps, end);
        let (answer, thought) = check_ai_sdk(&frames, end);
        prop_assert_eq!(answer, expected_text(&steps, true));
        prop_assert_eq!(thought, expected_text(&steps, false));
    }
}

/// What the demo agent sends for an arithmetic question.
fn demo_steps() -> [Step; 5] {
    [
        Step::Ack,
        Step::Thought("T".into()),
        Step::ToolStart("calculator"),
        Step::ToolEnd("calculator"),
        Step::Answer("4".into()),
    ]
}

#[test]
fn the_demo_agent_in_ag_ui() {
    let steps = demo_steps();
    let frames = encode(&mut AgUi::new("t", "r", "s"), &steps, true);
    let types: Vec<String> = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(f).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        [
            "RUN_STARTED",
            "CUSTOM",
            "REASONING_START",
            "REASONING_MESSAGE_START",
            "REASONING_MESSAGE_CONTENT",
            "REASONING_MESSAGE_END",
            "REASONING_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED"
        ]
    );
    let args: Value = serde_json::from_str(&frames[8]).unwrap();
    assert_eq!(args["delta"], r#"{"expression":"1+1"}"#);
    // The same events give the same ids: a replay is the same stream.
    assert_eq!(frames, encode(&mut AgUi::new("t", "r", "s"), &steps, true));
}

#[test]
fn the_demo_agent_in_the_ai_sdk() {
    let steps = demo_steps();
    let frames = encode(&mut AiSdk::new("msg-1"), &steps, true);
    let expected = [
        r#"{"type":"start","messageId":"msg-1"}"#,
        r#"{"type":"data-worker_ack","data":{},"transient":true}"#,
        r#"{"type":"start-step"}"#,
        r#"{"type":"reasoning-start","id":"reasoning-1"}"#,
        r#"{"type":"reasoning-delta","id":"reasoning-1","delta":"T"}"#,
        r#"{"type":"reasoning-end","id":"reasoning-1"}"#,
        r#"{"type":"tool-input-available","toolCallId":"call-2","toolName":"calculator","input":{"expression":"1+1"},"dynamic":true}"#,
        r#"{"type":"tool-output-available","toolCallId":"call-2","output":"2","dynamic":true}"#,
        r#"{"type":"text-start","id":"text-3"}"#,
        r#"{"type":"text-delta","id":"text-3","delta":"4"}"#,
        r#"{"type":"text-end","id":"text-3"}"#,
        r#"{"type":"finish-step"}"#,
        r#"{"type":"finish","finishReason":"stop"}"#,
        "[DONE]",
    ];
    assert_eq!(frames, expected);
}

/// The AI SDK stream keeps the state it sends bounded: a patch that would
/// grow it past 1 MiB is not applied, and the next one applies to the state
/// before it.
#[test]
fn an_ai_sdk_state_grows_no_larger_than_its_bound() {
    let mut encoder = AiSdk::new("msg-1");
    let mut out = BytesMut::new();
    encoder.event(
        &Event::new("StateSnapshot", json!({"state": {"n": 0}})),
        &mut out,
    );
    let huge = "x".repeat(2 << 20);
    let grow = json!({"patch": [{"op": "add", "path": "/blob", "value": huge}]});
    let before = out.len();
    encoder.event(&Event::new("StateDelta", grow), &mut out);
    assert_eq!(out.len(), before, "nothing sent for a state over the bound");
    let bump = json!({"patch": [{"op": "replace", "path": "/n", "value": 1}]});
    encoder.event(&Event::new("StateDelta", bump), &mut out);
    let last = String::from_utf8(out.to_vec()).unwrap();
    let last = last.trim_end().rsplit("data: ").next().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(last).unwrap(),
        json!({"type": "data-state", "id": "state", "data": {"n": 1}})
    );
}

/// A call the worker learnt only at the run's end was the client's (the AI
/// SDK's tools without `execute`): its start says nothing, its interrupt
/// says `executor: client`. The call stays `input-available` for the
/// client's `onToolCall`: no approval is asked for it.
#[test]
fn an_ai_sdk_client_call_named_only_by_its_interrupt_asks_no_approval() {
    let start = json!({"tool_call_id": "c1", "tool_name": "browser_time", "tool_input": {}});
    let interrupt = |executor: Value| {
        let metadata = json!({"tool_name": "browser_time", "tool_input": {}, "executor": executor});
        Event::new(
            "interrupt",
            json!({"interrupts": [{"id": "i1", "reason": "tool_call", "tool_call_id": "c1", "metadata": metadata}]}),
        )
    };
    let chunk_types = |executor: Value| {
        let mut encoder = AiSdk::new("msg-1");
        let mut out = BytesMut::new();
        encoder.event(&Event::new("AgentToolCallStart", start.clone()), &mut out);
        encoder.event(&interrupt(executor), &mut out);
        String::from_utf8(out.to_vec())
            .unwrap()
            .split_terminator("\n\n")
            .map(|frame| frame.trim_start_matches("data: ").to_owned())
            .collect::<Vec<_>>()
    };
    let client = chunk_types(json!("client"));
    assert!(!client.iter().any(|c| c.contains("tool-approval-request")));
    assert!(client.contains(&r#"{"type":"finish","finishReason":"tool-calls"}"#.to_owned()));
    let approval = chunk_types(Value::Null);
    assert!(approval.contains(
        &r#"{"type":"tool-approval-request","approvalId":"i1","toolCallId":"c1"}"#.to_owned()
    ));
}
