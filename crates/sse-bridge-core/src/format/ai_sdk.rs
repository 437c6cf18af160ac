//! The Vercel AI SDK UI message stream (`useChat` with `DefaultChatTransport`).
//!
//! | worker event | UI message chunks |
//! |---|---|
//! | (stream start) | `start {messageId}`, `start-step` |
//! | `worker_ack` | `data-worker_ack` (transient) |
//! | `AgentThoughtStream` | `reasoning-start` once, then `reasoning-delta` |
//! | `AgentToolCallStart` | `tool-input-available` (`dynamic: true`) |
//! | `AgentToolCallEnd` | `tool-output-available` for the oldest open call of that tool |
//! | `FinalAnswerStream` | `text-start` once, then `text-delta` |
//! | `FinalAnswerStreamEnd` | close what is open, `finish-step`, `finish`, `[DONE]` |
//! | `error` | `error {errorText}`, `[DONE]` |
//! | anything else | `data-<event_type> {data: payload}` |
//!
//! The SDK is strict (an unknown chunk type errors the stream, a delta needs
//! its start, a tool output needs its tool part), so a reasoning or text
//! part is ended before any other part starts.

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use super::ag_ui::take_call;
use super::{Encoder, Ids, open_part, payload_of, text_of, write_data};
use crate::protocol::{Event, event_type};

/// The AI SDK encoder of one stream.
#[derive(Debug)]
pub struct AiSdk {
    message_id: String,
    ids: Ids,
    reasoning: Option<String>,
    text: Option<String>,
    /// Tool calls waiting for their output: (toolCallId, tool name).
    calls: Vec<(String, String)>,
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
}

impl Encoder for AiSdk {
    fn start(&mut self, out: &mut BytesMut) {
        write_data(out, &json!({"type": "start", "messageId": self.message_id}));
        write_data(out, &json!({"type": "start-step"}));
    }

    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        let payload = payload_of(event);
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
                let id = self.ids.next("call");
                let name = text_of(&payload["tool_name"]);
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
                let output = payload.get("output").cloned().unwrap_or(Value::Null);
                match take_call(&mut self.calls, &name) {
                    Some(id) => write_data(
                        out,
                        &json!({"type": "tool-output-available", "toolCallId": id, "output": output,
                                "dynamic": true}),
                    ),
                    None => write_data(
                        out,
                        &json!({"type": format!("data-{}", event_type::TOOL_CALL_END), "data": payload}),
                    ),
                }
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
            event_type::ANSWER_END => {
                self.close_parts(out);
                write_data(out, &json!({"type": "finish-step"}));
                write_data(out, &json!({"type": "finish", "finishReason": "stop"}));
                Self::done(out);
            }
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
