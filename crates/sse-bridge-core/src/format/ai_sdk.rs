//! The Vercel AI SDK UI message stream (`useChat` with `DefaultChatTransport`).
//!
//! | worker event | UI message chunks |
//! |---|---|
//! | (stream start) | `start {messageId}`, `start-step` |
//! | `worker_ack` | `data-worker_ack` (transient) |
//! | `AgentThoughtStream` | `reasoning-start` once, then `reasoning-delta` |
//! | `AgentToolCallStart` | `tool-input-available` (`dynamic: true`) |
//! | `AgentToolCallEnd` | `tool-output-available` (`tool-output-error` with `error`, `tool-output-denied` with `denied: true`) for the call of its `tool_call_id`, else the oldest open call of that tool |
//! | `FinalAnswerStream` | `text-start` once, then `text-delta` |
//! | `FinalAnswerStreamEnd` | close what is open, `finish-step`, `finish`, `[DONE]` |
//! | `error` | `error {errorText}`, `[DONE]` |
//! | `interrupt` | per interrupt: naming a tool call the worker runs, `tool-approval-request {approvalId: <interrupt id>, toolCallId}`; naming a client tool's call, nothing (the call stays `input-available` for `onToolCall`); otherwise `data-interrupt {id, data}`; then `finish-step`, `finish`, `[DONE]` |
//! | anything else | `data-<event_type> {data: payload}` |
//!
//! The SDK is strict (an unknown chunk type errors the stream, a delta needs
//! its start, a tool output needs its tool part), so a reasoning or text
//! part is ended before any other part starts.

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use super::ag_ui::{take_call, tool_call_id};
use super::{Encoder, Ids, open_part, text_of, write_data};
use crate::protocol::{Event, event_type};
use crate::thread::Interrupt;

/// The AI SDK encoder of one stream.
#[derive(Debug)]
pub struct AiSdk {
    message_id: String,
    ids: Ids,
    reasoning: Option<String>,
    text: Option<String>,
    /// Tool calls waiting for their output: (toolCallId, tool name).
    calls: Vec<(String, String)>,
    /// Calls of tools the client runs (`"executor": "client"`).
    client_calls: Vec<String>,
}

impl AiSdk {
    /// An encoder for the assistant message `message_id` (derived from the
    /// session id, so a resumed stream replays the same message).
    pub fn new(message_id: &str) -> Self {
        AiSdk {
            message_id: message_id.to_owned(),
            ids: Ids::new(None),
            reasoning: None,
            text: None,
            calls: Vec::new(),
            client_calls: Vec::new(),
        }
    }

    fn close_parts(&mut self, out: &mut BytesMut) {
        if let Some(id) = self.reasoning.take() {
            write_data(out, &json!({"type": "reasoning-end", "id": id}));
        }
        if let Some(id) = self.text.take() {
            write_data(out, &json!({"type": "text-end", "id": id}));
        }
    }

    fn done(out: &mut BytesMut) {
        out.put_slice(b"data: [DONE]\n\n");
    }

    fn finish(&mut self, reason: &str, out: &mut BytesMut) {
        self.close_parts(out);
        write_data(out, &json!({"type": "finish-step"}));
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
                Some(call) if self.client_calls.iter().any(|c| c == call) => waits_on_tools = true,
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
        write_data(out, &json!({"type": "start-step"}));
    }

    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        let payload = event.payload();
        match event.event_type() {
            event_type::WORKER_ACK => write_data(
                out,
                &json!({"type": "data-worker_ack", "data": payload, "transient": true}),
            ),
            event_type::THOUGHT => {
                if let Some(id) = self.text.take() {
                    write_data(out, &json!({"type": "text-end", "id": id}));
                }
                let id = open_part(
                    &mut self.reasoning,
                    &mut self.ids,
                    "reasoning",
                    out,
                    |id, out| {
                        write_data(out, &json!({"type": "reasoning-start", "id": id}));
                    },
                );
                let delta = text_of(&payload["char"]);
                write_data(
                    out,
                    &json!({"type": "reasoning-delta", "id": id, "delta": delta}),
                );
            }
            event_type::TOOL_CALL_START => {
                self.close_parts(out);
                let id = tool_call_id(&payload).unwrap_or_else(|| self.ids.next("call"));
                let name = text_of(&payload["tool_name"]);
                if payload.get("executor").and_then(Value::as_str) == Some("client") {
                    self.client_calls.push(id.clone());
                }
                let input = payload.get("tool_input").cloned().unwrap_or(Value::Null);
                write_data(
                    out,
                    &json!({"type": "tool-input-available", "toolCallId": id, "toolName": name,
                            "input": input, "dynamic": true}),
                );
                self.calls.push((id, name));
            }
            event_type::TOOL_CALL_END => {
                self.close_parts(out);
                let name = text_of(&payload["tool_name"]);
                let call = match tool_call_id(&payload) {
                    Some(id) => {
                        self.calls.retain(|(open, _)| *open != id);
                        Some(id)
                    }
                    None => take_call(&mut self.calls, &name),
                };
                let Some(id) = call else {
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
            event_type::ANSWER => {
                if let Some(id) = self.reasoning.take() {
                    write_data(out, &json!({"type": "reasoning-end", "id": id}));
                }
                let id = open_part(&mut self.text, &mut self.ids, "text", out, |id, out| {
                    write_data(out, &json!({"type": "text-start", "id": id}));
                });
                let delta = text_of(&payload["char"]);
                write_data(
                    out,
                    &json!({"type": "text-delta", "id": id, "delta": delta}),
                );
            }
            event_type::ANSWER_END => self.finish("stop", out),
            event_type::INTERRUPT => self.interrupt(&payload, out),
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
