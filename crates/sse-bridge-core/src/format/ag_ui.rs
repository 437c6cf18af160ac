//! AG-UI (`@ag-ui/client`'s `HttpAgent`): the run as AG-UI events.
//!
//! | worker event | AG-UI |
//! |---|---|
//! | (stream start) | `RUN_STARTED {threadId, runId}` |
//! | `worker_ack` | `CUSTOM {name: "worker_ack", value}` |
//! | `AgentThoughtStream` | `REASONING_START` + `REASONING_MESSAGE_START` (role `reasoning`) once, then `REASONING_MESSAGE_CONTENT` |
//! | `AgentToolCallStart` | `TOOL_CALL_START` + `TOOL_CALL_ARGS` (input as JSON text) + `TOOL_CALL_END` |
//! | `AgentToolCallEnd` | `TOOL_CALL_RESULT` (`content`: the output, or the error, as text) for the call of its `tool_call_id`, else the oldest open call of that tool |
//! | `FinalAnswerStream` | `TEXT_MESSAGE_START` (role `assistant`) once, then `TEXT_MESSAGE_CONTENT` |
//! | `FinalAnswerStreamEnd` | close what is open, `RUN_FINISHED` |
//! | `error` | `RUN_ERROR {message, code}` |
//! | `interrupt` | close what is open, `RUN_FINISHED {outcome: {type: "interrupt", interrupts}}` (camelCase fields); an unreadable one `RUN_ERROR {code: "invalid_interrupt"}` |
//! | `AgentStepStart` / `AgentStepEnd` | `STEP_STARTED` / `STEP_FINISHED {stepName}` (steps still open are finished before `RUN_FINISHED`) |
//! | `AgentToolCallInputStream` | `TOOL_CALL_START` once, then `TOOL_CALL_ARGS` per delta; its `AgentToolCallStart` then sends only `TOOL_CALL_END` |
//! | `StateSnapshot` / `StateDelta` | `STATE_SNAPSHOT {snapshot}` / `STATE_DELTA {delta}` |
//! | `Data` | `CUSTOM {name, value: data}` |
//! | `Usage` | one `TokenUsage` each, in `RUN_FINISHED`'s (or `RUN_ERROR`'s) `usage` array |
//! | anything else (`Source`, `File` too) | `CUSTOM {name: event_type, value: payload}` |
//!
//! Tool call ids are the worker's `tool_call_id` when it sends one (a
//! resumed run's result then reaches the call an earlier run started);
//! otherwise the encoder makes them and pairs results by tool name.
//!
//! A reasoning or text message is closed before anything else opens, so
//! the client's verifier (no content before its start, no duplicate start,
//! nothing open at `RUN_FINISHED`) accepts every stream.

use bytes::BytesMut;
use serde::Serialize;
use serde_json::{Value, json};

use super::parts::{CallStart, Part, Parts, tool_call_id};
use super::{Encoder, text_of, token_counts, write_data};
use crate::protocol::{Event, event_type};
use crate::thread::Interrupt;

/// The AG-UI encoder of one stream.
#[derive(Debug)]
pub struct AgUi {
    thread_id: String,
    run_id: String,
    /// Ids scoped by the session id: replays make the same ids.
    parts: Parts,
    /// Steps started and not finished, oldest first.
    steps: Vec<String>,
    /// Token usage reported so far (`TokenUsage` objects).
    usage: Vec<Value>,
}

impl AgUi {
    /// An encoder for the run `run_id` of thread `thread_id`; `ids` prefixes
    /// every id it makes (the session id).
    pub fn new(thread_id: &str, run_id: &str, ids: &str) -> Self {
        AgUi {
            thread_id: thread_id.to_owned(),
            run_id: run_id.to_owned(),
            parts: Parts::new(Some(ids)),
            steps: Vec::new(),
            usage: Vec::new(),
        }
    }

    /// Closes everything `RUN_FINISHED` may not find open: messages, tool
    /// calls whose input was streaming, steps.
    fn close_run(&mut self, out: &mut BytesMut) {
        self.close_all(out);
        for id in self.parts.take_streaming() {
            write_data(out, &json!({"type": "TOOL_CALL_END", "toolCallId": id}));
        }
        while let Some(name) = self.steps.pop() {
            write_data(out, &json!({"type": "STEP_FINISHED", "stepName": name}));
        }
    }

    /// `RUN_FINISHED` (with `extra` fields, and the usage reported).
    fn run_finished(&mut self, extra: Value, out: &mut BytesMut) {
        self.close_run(out);
        let mut finished =
            json!({"type": "RUN_FINISHED", "threadId": self.thread_id, "runId": self.run_id});
        if let Value::Object(extra) = extra {
            finished.as_object_mut().expect("an object").extend(extra);
        }
        if !self.usage.is_empty() {
            finished["usage"] = Value::Array(self.usage.clone());
        }
        write_data(out, &finished);
    }

    fn tool_input(&mut self, payload: &Value, out: &mut BytesMut) {
        let Some(id) = tool_call_id(payload) else {
            return Self::custom(out, event_type::TOOL_INPUT, payload.clone());
        };
        if self.parts.stream_input(&id) {
            self.close_all(out);
            let name = text_of(&payload["tool_name"]);
            write_data(
                out,
                &json!({"type": "TOOL_CALL_START", "toolCallId": id, "toolCallName": name}),
            );
        }
        let delta = text_of(&payload["delta"]);
        if !delta.is_empty() {
            write_data(
                out,
                &json!({"type": "TOOL_CALL_ARGS", "toolCallId": id, "delta": delta}),
            );
        }
    }

    /// A thought or answer piece: its message opens (closing the other
    /// kind's) and the text goes in it.
    fn piece(&mut self, kind: &str, delta: &str, out: &mut BytesMut) {
        let (part, content) = if kind == event_type::THOUGHT {
            self.close_text(out);
            let id = self.parts.open(Part::Reasoning, "reasoning", out, |id, out| {
                write_data(out, &json!({"type": "REASONING_START", "messageId": id}));
                write_data(
                    out,
                    &json!({"type": "REASONING_MESSAGE_START", "messageId": id, "role": "reasoning"}),
                );
            });
            (id, "REASONING_MESSAGE_CONTENT")
        } else {
            self.close_reasoning(out);
            let id = self.parts.open(Part::Text, "message", out, |id, out| {
                write_data(
                    out,
                    &json!({"type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant"}),
                );
            });
            (id, "TEXT_MESSAGE_CONTENT")
        };
        if !delta.is_empty() {
            write_data(
                out,
                &Content {
                    kind: content,
                    message_id: part,
                    delta,
                },
            );
        }
    }

    fn close_reasoning(&mut self, out: &mut BytesMut) {
        if let Some(id) = self.parts.close(Part::Reasoning) {
            write_data(
                out,
                &json!({"type": "REASONING_MESSAGE_END", "messageId": id}),
            );
            write_data(out, &json!({"type": "REASONING_END", "messageId": id}));
        }
    }

    fn close_text(&mut self, out: &mut BytesMut) {
        if let Some(id) = self.parts.close(Part::Text) {
            write_data(out, &json!({"type": "TEXT_MESSAGE_END", "messageId": id}));
        }
    }

    fn close_all(&mut self, out: &mut BytesMut) {
        self.close_reasoning(out);
        self.close_text(out);
    }

    fn custom(out: &mut BytesMut, name: &str, value: Value) {
        write_data(
            out,
            &json!({"type": "CUSTOM", "name": name, "value": value}),
        );
    }
}

impl Encoder for AgUi {
    fn start(&mut self, out: &mut BytesMut) {
        write_data(
            out,
            &json!({"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id}),
        );
    }

    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        if let Some(text) = event.text() {
            return self.piece(event.event_type(), text, out);
        }
        let payload = event.payload();
        match event.event_type() {
            event_type::WORKER_ACK => Self::custom(out, event_type::WORKER_ACK, payload),
            event_type::TOOL_CALL_START => {
                self.close_all(out);
                let name = text_of(&payload["tool_name"]);
                let CallStart { id, streamed } = self.parts.start_call(&payload, &name);
                // A streamed input went out as it streamed: only the end now.
                if !streamed {
                    write_data(
                        out,
                        &json!({"type": "TOOL_CALL_START", "toolCallId": id, "toolCallName": name}),
                    );
                    let args = payload.get("tool_input").cloned().unwrap_or(Value::Null);
                    write_data(
                        out,
                        &json!({"type": "TOOL_CALL_ARGS", "toolCallId": id, "delta": args.to_string()}),
                    );
                }
                write_data(out, &json!({"type": "TOOL_CALL_END", "toolCallId": id}));
            }
            event_type::TOOL_CALL_END => {
                self.close_all(out);
                let name = text_of(&payload["tool_name"]);
                match self.parts.end_call(&payload, &name) {
                    Some(call) => {
                        let message = self.parts.next_id("result");
                        let content = text_of(tool_result(&payload));
                        write_data(
                            out,
                            &json!({"type": "TOOL_CALL_RESULT", "messageId": message, "toolCallId": call,
                                    "content": content, "role": "tool"}),
                        );
                    }
                    // A result with no call to pair it with: pass it on as is.
                    None => Self::custom(out, event_type::TOOL_CALL_END, payload),
                }
            }
            event_type::ANSWER_END => self.run_finished(Value::Null, out),
            event_type::ERROR => {
                let message = match payload.get("error") {
                    Some(Value::String(message)) => message.clone(),
                    _ => "the run failed".to_owned(),
                };
                let mut error = json!({"type": "RUN_ERROR", "message": message});
                if let Some(Value::String(code)) = payload.get("code") {
                    error["code"] = Value::String(code.clone());
                }
                if !self.usage.is_empty() {
                    error["usage"] = Value::Array(self.usage.clone());
                }
                write_data(out, &error);
            }
            event_type::INTERRUPT => match Interrupt::parse_all(&payload) {
                Ok(interrupts) => {
                    let interrupts: Vec<Value> = interrupts.iter().map(ag_ui_interrupt).collect();
                    let outcome =
                        json!({"outcome": {"type": "interrupt", "interrupts": interrupts}});
                    self.run_finished(outcome, out);
                }
                Err(error) => write_data(
                    out,
                    &json!({"type": "RUN_ERROR", "message": error.to_string(), "code": "invalid_interrupt"}),
                ),
            },
            event_type::STEP_START => {
                let name = text_of(&payload["name"]);
                write_data(out, &json!({"type": "STEP_STARTED", "stepName": name}));
                self.steps.push(name);
            }
            event_type::STEP_END => {
                // What the step said ends with it.
                self.close_all(out);
                let name = text_of(&payload["name"]);
                match self.steps.iter().rposition(|open| *open == name) {
                    Some(at) => {
                        self.steps.remove(at);
                        write_data(out, &json!({"type": "STEP_FINISHED", "stepName": name}));
                    }
                    // The verifier refuses a step that never started.
                    None => Self::custom(out, event_type::STEP_END, payload),
                }
            }
            event_type::TOOL_INPUT => self.tool_input(&payload, out),
            event_type::STATE_SNAPSHOT => write_data(
                out,
                &json!({"type": "STATE_SNAPSHOT", "snapshot": payload.get("state").cloned().unwrap_or(Value::Null)}),
            ),
            event_type::STATE_DELTA => match payload.get("patch") {
                Some(Value::Array(patch)) => {
                    write_data(out, &json!({"type": "STATE_DELTA", "delta": patch}))
                }
                _ => Self::custom(out, event_type::STATE_DELTA, payload),
            },
            event_type::DATA => {
                let name = match payload.get("name") {
                    Some(Value::String(name)) if !name.is_empty() => name.clone(),
                    _ => event_type::DATA.to_owned(),
                };
                let value = payload.get("data").cloned().unwrap_or(Value::Null);
                Self::custom(out, &name, value);
            }
            event_type::USAGE => self.usage.push(token_usage(&payload)),
            other => Self::custom(out, other, payload),
        }
    }
}

/// A `Usage` payload as AG-UI's `TokenUsage`.
fn token_usage(payload: &Value) -> Value {
    let mut usage = token_counts(payload);
    if let Some(model) = payload.get("model").filter(|m| m.is_string()) {
        usage.insert("model".to_owned(), model.clone());
    }
    Value::Object(usage)
}

/// An interrupt as AG-UI's `Interrupt` (camelCase; absent fields left out).
fn ag_ui_interrupt(interrupt: &Interrupt) -> Value {
    let mut fields = serde_json::Map::new();
    for (native, ag_ui) in [
        ("id", "id"),
        ("reason", "reason"),
        ("message", "message"),
        ("tool_call_id", "toolCallId"),
        ("response_schema", "responseSchema"),
        ("expires_at", "expiresAt"),
        ("metadata", "metadata"),
    ] {
        if let Some(value) = interrupt.as_object().get(native).filter(|v| !v.is_null()) {
            fields.insert(ag_ui.to_owned(), value.clone());
        }
    }
    Value::Object(fields)
}

/// What a tool call ended with: its `output`, or its `error` instead.
fn tool_result(payload: &Value) -> &Value {
    match payload.get("output") {
        Some(output) if !output.is_null() => output,
        _ => payload.get("error").unwrap_or(&Value::Null),
    }
}

/// A reasoning or text delta: `{"type", "messageId", "delta"}`.
#[derive(Serialize)]
struct Content<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "messageId")]
    message_id: &'a str,
    delta: &'a str,
}
