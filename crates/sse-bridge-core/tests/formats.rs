//! The output formats as the official clients judge them: for any sequence
//! of worker events (proptest), the AG-UI stream obeys the AG-UI verifier's
//! ordering rules and the AI SDK stream the UI message stream's part rules,
//! and the text that goes in (reasoning, answer) comes out unchanged. The
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
}

fn step() -> impl Strategy<Value = Step> {
    let tool = prop_oneof![Just("calculator"), Just("utc_clock")];
    prop_oneof![
        Just(Step::Ack),
        "[a-z \n\"]{0,3}".prop_map(Step::Thought),
        tool.clone().prop_map(Step::ToolStart),
        tool.prop_map(Step::ToolEnd),
        "[a-z \n\"]{0,3}".prop_map(Step::Answer),
        Just(Step::Other),
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
    let mut out = BytesMut::new();
    encoder.start(&mut out);
    for step in steps {
        encoder.event(&event(step), &mut out);
    }
    encoder.event(&terminal(success), &mut out);
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
fn check_ag_ui(frames: &[String], success: bool) -> (String, String) {
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
    let mut ended_calls = HashSet::new();
    let (mut answer, mut thought) = (String::new(), String::new());
    for (i, e) in events.iter().enumerate().skip(1) {
        let id = e["messageId"]
            .as_str()
            .or(e["toolCallId"].as_str())
            .unwrap_or_default()
            .to_owned();
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
            "TOOL_CALL_START" => assert!(calls.insert(id)),
            "TOOL_CALL_ARGS" => {
                assert!(calls.contains(&id));
                serde_json::from_str::<Value>(e["delta"].as_str().unwrap()).unwrap();
            }
            "TOOL_CALL_END" => {
                assert!(calls.remove(&id));
                ended_calls.insert(id);
            }
            "TOOL_CALL_RESULT" => {
                assert!(
                    ended_calls.remove(e["toolCallId"].as_str().unwrap()),
                    "result of no call"
                );
                assert!(e["content"].is_string());
            }
            "CUSTOM" => assert!(e["name"].is_string() && !e["value"].is_null()),
            "RUN_FINISHED" => {
                assert!(success && i == events.len() - 1, "RUN_FINISHED last");
                assert!(
                    text.is_empty()
                        && reasoning_msgs.is_empty()
                        && reasoning.is_empty()
                        && calls.is_empty()
                );
            }
            "RUN_ERROR" => {
                assert!(!success && i == events.len() - 1, "RUN_ERROR last");
                assert_eq!(e["code"], "worker_error");
            }
            other => panic!("unexpected AG-UI event {other}"),
        }
    }
    (answer, thought)
}

/// The AI SDK's part rules, and the text carried; returns (answer, reasoning).
fn check_ai_sdk(frames: &[String], success: bool) -> (String, String) {
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(chunks[0], json!({"type": "start", "messageId": "msg-1"}));
    assert_eq!(chunks[1]["type"], "start-step");
    let (mut text, mut reasoning, mut tools) = (HashSet::new(), HashSet::new(), HashSet::new());
    let (mut answer, mut thought) = (String::new(), String::new());
    for (i, c) in chunks.iter().enumerate().skip(2) {
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        let last = i == chunks.len() - 1;
        match c["type"].as_str().unwrap() {
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
            "tool-input-available" => {
                assert!(text.is_empty() && reasoning.is_empty());
                assert!(tools.insert(c["toolCallId"].as_str().unwrap().to_owned()));
                assert_eq!(c["dynamic"], true);
            }
            "tool-output-available" => {
                assert!(
                    tools.remove(c["toolCallId"].as_str().unwrap()),
                    "output of no tool part"
                )
            }
            "finish-step" => assert!(success && text.is_empty() && reasoning.is_empty()),
            "finish" => assert!(success && last),
            "error" => assert!(!success && last && c["errorText"].is_string()),
            t if t.starts_with("data-") => assert!(c.get("data").is_some()),
            other => panic!("unexpected chunk {other}"),
        }
    }
    (answer, thought)
}

proptest! {
    #[test]
    fn ag_ui_streams_satisfy_the_verifier_and_carry_the_text(
        steps in prop::collection::vec(step(), 0..40),
        success in any::<bool>(),
    ) {
        let frames = encode(&mut AgUi::new("thread-1", "run-1", "s"), &steps, success);
        let (answer, thought) = check_ag_ui(&frames, success);
        prop_assert_eq!(answer, expected_text(&steps, true));
        prop_assert_eq!(thought, expected_text(&steps, false));
    }

    #[test]
    fn ai_sdk_streams_satisfy_the_part_rules_and_carry_the_text(
        steps in prop::collection::vec(step(), 0..40),
        success in any::<bool>(),
    ) {
        let frames = encode(&mut AiSdk::new("msg-1"), &steps, success);
        let (answer, thought) = check_ai_sdk(&frames, success);
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
        r#"{"type":"start-step"}"#,
        r#"{"type":"data-worker_ack","data":{},"transient":true}"#,
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
