//! The Vercel AI SDK UI message stream (`useChat` with `DefaultChatTransport`).
//!
//! | worker event | UI message chunks |
//! |---|---|
//! | (stream start) | `start {messageId}` |
//! | `worker_ack` | `data-worker_ack` (transient) |
//! | `AgentThoughtStream` | `reasoning-start` once, then `reasoning-delta` |
//! | `AgentToolCallStart` | `tool-input-available` (`dynamic: true`) |
//! | `AgentToolCallEnd` | `tool-output-available` (`tool-output-error` with `error`, `tool-output-denied` with `denied: true`) for the call of its `tool_call_id`, else the oldest open call of that tool |
//! | `FinalAnswerStream` | `text-start` once, then `text-delta` |
//! | `FinalAnswerStreamEnd` | close what is open, `finish-step`, `finish`, `[DONE]` |
//! | `error` | `error {errorText}`, `[DONE]` |
//! | `interrupt` | per interrupt: naming a tool call the worker runs, `tool-approval-request {approvalId: <interrupt id>, toolCallId}`; naming a client tool's call, nothing (the call stays `input-available` for `onToolCall`); otherwise `data-interrupt {id, data}`; then `finish-step`, `finish`, `[DONE]` |
//! | `AgentStepStart` / `AgentStepEnd` | `finish-step` of the step open, `start-step` / `finish-step` |
//! | `AgentToolCallInputStream` | `tool-input-start {toolCallId, toolName}` once, then `tool-input-delta`; its `AgentToolCallStart` is the `tool-input-available` |
//! | `StateSnapshot` / `StateDelta` | `data-state {id: "state", data}`: one part, replaced (a delta is applied here, the client gets the state) |
//! | `Source` | `source-url {sourceId, url, title}` |
//! | `File` | `file {url, mediaType}` |
//! | `Data` | `data-<name> {id?, data, transient?}` (replaced by `id`) |
//! | `Usage` | `message-metadata {messageMetadata: {usage: {inputTokens, outputTokens, totalTokens, reasoningTokens}, model}}` |
//! | anything else | `data-<event_type> {data: payload}` |
//!
//! A step opens (`start-step`) before the first text, reasoning, tool,
//! source or file part outside one, so a run whose worker marks its steps
//! gets no empty step before its first (the client keeps a `step-start`
//! part per step, in the message and in every continuation of it).
//!
//! The SDK is strict (an unknown chunk type errors the stream, a delta needs
//! its start, a tool output needs its tool part), so a reasoning or text
//! part is ended before any other part starts.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::{Value, json};

use super::parts::{Part, Parts, tool_call_id};
use super::{Encoder, text_of, token_counts, write_data};
use crate::protocol::{Event, event_type};
use crate::thread::Interrupt;

/// Events whose parts belong to a step.
fn is_step_content(kind: &str) -> bool {
    matches!(
        kind,
        event_type::THOUGHT
            | event_type::ANSWER
            | event_type::TOOL_CALL_START
            | event_type::TOOL_CALL_END
            | event_type::TOOL_INPUT
            | event_type::SOURCE
            | event_type::FILE
    )
}

/// The largest state a stream keeps and sends as `data-state`.
const STATE_MAX_BYTES: usize = 1 << 20;

/// The AI SDK encoder of one stream.
#[derive(Debug)]
pub struct AiSdk {
    message_id: String,
    parts: Parts,
    /// Calls of tools the client runs (`"executor": "client"`).
    client_calls: Vec<String>,
    /// A step is open (`start-step` sent, no `finish-step` yet).
    step_open: bool,
    /// The state `StateDelta`s patch (the client gets it whole).
    state: Value,
}

impl AiSdk {
    /// An encoder for the assistant message `message_id` (derived from the
    /// session id, so a resumed stream replays the same message).
    pub fn new(message_id: &str) -> Self {
        AiSdk {
            message_id: message_id.to_owned(),
            parts: Parts::new(None),
            client_calls: Vec::new(),
            step_open: false,
            state: Value::Null,
        }
    }

    fn finish_step(&mut self, out: &mut BytesMut) {
        self.close_parts(out);
        if std::mem::take(&mut self.step_open) {
            write_data(out, &json!({"type": "finish-step"}));
        }
    }

    fn tool_input(&mut self, payload: &Value, out: &mut BytesMut) {
        let Some(id) = tool_call_id(payload) else {
            let kind = format!("data-{}", event_type::TOOL_INPUT);
            return write_data(out, &json!({"type": kind, "data": payload}));
        };
        if self.parts.stream_input(&id) {
            self.close_parts(out);
            let name = text_of(&payload["tool_name"]);
            write_data(
                out,
                &json!({"type": "tool-input-start", "toolCallId": id, "toolName": name, "dynamic": true}),
            );
        }
        let delta = text_of(&payload["delta"]);
        write_data(
            out,
            &json!({"type": "tool-input-delta", "toolCallId": id, "inputTextDelta": delta}),
        );
    }

    fn state(&mut self, kind: &str, payload: &Value, out: &mut BytesMut) {
        let next = if kind == event_type::STATE_SNAPSHOT {
            payload.get("state").cloned().unwrap_or(Value::Null)
        } else {
            let patch = payload
                .get("patch")
                .cloned()
                .and_then(|patch| serde_json::from_value::<json_patch::Patch>(patch).ok());
            // A patch that does not apply leaves the state as it was.
            let Some(patch) = patch else { return };
            let mut next = self.state.clone();
            if json_patch::patch(&mut next, &patch).is_err() {
                return;
            }
            next
        };
        let part = json!({"type": "data-state", "id": "state", "data": next});
        let part = serde_json::to_vec(&part).expect("serialising a Value cannot fail");
        // Patches could grow the state without bound; the stream keeps one
        // of at most STATE_MAX_BYTES.
        if part.len() > STATE_MAX_BYTES {
            tracing::warn!(
                bytes = part.len(),
                "a state over the limit is not sent to AI SDK clients"
            );
            return;
        }
        self.state = next;
        out.put_slice(b"data: ");
        out.put_slice(&part);
        out.put_slice(b"\n\n");
    }

    fn close_parts(&mut self, out: &mut BytesMut) {
        self.close(Part::Reasoning, out);
        self.close(Part::Text, out);
    }

    fn close(&mut self, part: Part, out: &mut BytesMut) {
        if let Some(id) = self.parts.close(part) {
            let end = match part {
                Part::Reasoning => "reasoning-end",
                Part::Text => "text-end",
            };
            write_data(
                out,
                &Delta {
                    kind: end,
                    id: &id,
                    delta: None,
                },
            );
        }
    }

    /// A thought or answer piece: its part opens (ending the other kind's)
    /// and the text goes in it.
    fn piece(&mut self, kind: &str, delta: &str, out: &mut BytesMut) {
        let (part, other, name, start, delta_kind) = if kind == event_type::THOUGHT {
            (
                Part::Reasoning,
                Part::Text,
                "reasoning",
                "reasoning-start",
                "reasoning-delta",
            )
        } else {
            (
                Part::Text,
                Part::Reasoning,
                "text",
                "text-start",
                "text-delta",
            )
        };
        self.close(other, out);
        let id = self.parts.open(part, name, out, |id, out| {
            write_data(
                out,
                &Delta {
                    kind: start,
                    id,
                    delta: None,
                },
            );
        });
        let delta = Delta {
            kind: delta_kind,
            id,
            delta: Some(delta),
        };
        write_data(out, &delta);
    }

    fn done(out: &mut BytesMut) {
        out.put_slice(b"data: [DONE]\n\n");
    }

    fn finish(&mut self, reason: &str, out: &mut BytesMut) {
        self.finish_step(out);
        write_data(out, &json!({"type": "finish", "finishReason": reason}));
        Self::done(out);
    }

    /// The parts of an `interrupt` (see the table), then the message's end.
    fn interrupt(&mut self, payload: &Value, out: &mut BytesMut) {
        self.close_parts(out);
        let interrupts = match Interrupt::parse_all(payload) {
            Ok(interrupts) => interrupts,
            Err(error) => {
                write_data(
                    out,
                    &json!({"type": "error", "errorText": error.to_string()}),
                );
                return Self::done(out);
            }
        };
        let mut waits_on_tools = false;
        for interrupt in &interrupts {
            match interrupt.tool_call_id() {
                // A client call is known by its start or, when the worker
                // learnt only at the run's end that nobody ran it (the AI
                // SDK's tools without `execute`), by the interrupt.
                Some(call)
                    if interrupt.hands_call_to_client()
                        || self.client_calls.iter().any(|c| c == call) =>
                {
                    waits_on_tools = true
                }
                Some(call) => {
                    waits_on_tools = true;
                    write_data(
                        out,
                        &json!({"type": "tool-approval-request", "approvalId": interrupt.id(), "toolCallId": call}),
                    );
                }
                None => write_data(
                    out,
                    &json!({"type": "data-interrupt", "id": interrupt.id(), "data": interrupt.as_object()}),
                ),
            }
        }
        self.finish(
            if waits_on_tools {
                "tool-calls"
            } else {
                "other"
            },
            out,
        );
    }
}

impl Encoder for AiSdk {
    fn start(&mut self, out: &mut BytesMut) {
        write_data(out, &json!({"type": "start", "messageId": self.message_id}));
    }

    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        if is_step_content(event.event_type()) && !self.step_open {
            write_data(out, &json!({"type": "start-step"}));
            self.step_open = true;
        }
        if let Some(text) = event.text() {
            return self.piece(event.event_type(), text, out);
        }
        let payload = event.payload();
        match event.event_type() {
            event_type::WORKER_ACK => write_data(
                out,
                &json!({"type": "data-worker_ack", "data": payload, "transient": true}),
            ),
            event_type::TOOL_CALL_START => {
                self.close_parts(out);
                let name = text_of(&payload["tool_name"]);
                let id = self.parts.start_call(&payload, &name).id;
                if payload.get("executor").and_then(Value::as_str) == Some("client") {
                    self.client_calls.push(id.clone());
                }
                let input = payload.get("tool_input").cloned().unwrap_or(Value::Null);
                write_data(
                    out,
                    &json!({"type": "tool-input-available", "toolCallId": id, "toolName": name,
                            "input": input, "dynamic": true}),
                );
            }
            event_type::TOOL_CALL_END => {
                self.close_parts(out);
                let name = text_of(&payload["tool_name"]);
                let Some(id) = self.parts.end_call(&payload, &name) else {
                    let kind = format!("data-{}", event_type::TOOL_CALL_END);
                    return write_data(out, &json!({"type": kind, "data": payload}));
                };
                let denied = payload.get("denied").and_then(Value::as_bool) == Some(true);
                let output = payload.get("output").filter(|o| !o.is_null());
                let chunk = match (denied, output, payload.get("error")) {
                    (true, _, _) => json!({"type": "tool-output-denied", "toolCallId": id}),
                    (false, None, Some(error)) => {
                        json!({"type": "tool-output-error", "toolCallId": id,
                                                         "errorText": text_of(error), "dynamic": true})
                    }
                    (false, output, _) => json!({"type": "tool-output-available", "toolCallId": id,
                                                  "output": output.cloned().unwrap_or(Value::Null), "dynamic": true}),
                };
                write_data(out, &chunk);
            }
            event_type::ANSWER_END => self.finish("stop", out),
            event_type::INTERRUPT => self.interrupt(&payload, out),
            event_type::STEP_START => {
                self.finish_step(out);
                write_data(out, &json!({"type": "start-step"}));
                self.step_open = true;
            }
            event_type::STEP_END => self.finish_step(out),
            event_type::TOOL_INPUT => self.tool_input(&payload, out),
            kind @ (event_type::STATE_SNAPSHOT | event_type::STATE_DELTA) => {
                self.state(kind, &payload, out)
            }
            event_type::SOURCE if payload["url"].is_string() => {
                let mut source = json!({"type": "source-url", "sourceId": text_of(&payload["id"]), "url": payload["url"]});
                if let Some(title) = payload.get("title").filter(|t| t.is_string()) {
                    source["title"] = title.clone();
                }
                write_data(out, &source);
            }
            event_type::FILE if payload["url"].is_string() => write_data(
                out,
                &json!({"type": "file", "url": payload["url"], "mediaType": text_of(&payload["media_type"])}),
            ),
            event_type::DATA if payload["name"].as_str().is_some_and(|n| !n.is_empty()) => {
                let mut part = json!({"type": format!("data-{}", text_of(&payload["name"])),
                                      "data": payload.get("data").cloned().unwrap_or(Value::Null)});
                for field in ["id", "transient"] {
                    if let Some(value) = payload.get(field).filter(|v| !v.is_null()) {
                        part[field] = value.clone();
                    }
                }
                write_data(out, &part);
            }
            event_type::USAGE => write_data(
                out,
                &json!({"type": "message-metadata", "messageMetadata": message_usage(&payload)}),
            ),
            event_type::ERROR => {
                let message = text_of(payload.get("error").unwrap_or(&Value::Null));
                let error_text = match payload.get("code") {
                    Some(Value::String(code)) => format!("{message} ({code})"),
                    _ => message,
                };
                write_data(out, &json!({"type": "error", "errorText": error_text}));
                Self::done(out);
            }
            other => write_data(
                out,
                &json!({"type": format!("data-{other}"), "data": payload}),
            ),
        }
    }
}

/// A `Usage` payload as message metadata: `{usage: {...}, model?}`.
fn message_usage(payload: &Value) -> Value {
    let mut metadata = json!({ "usage": token_counts(payload) });
    if let Some(model) = payload.get("model").filter(|m| m.is_string()) {
        metadata["model"] = model.clone();
    }
    metadata
}

/// A reasoning or text part's start, delta or end: `{"type", "id", "delta"?}`.
#[derive(Serialize)]
struct Delta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
}
