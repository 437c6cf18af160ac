//! Answers to interrupts as the agent-UI clients send them, turned into
//! resume entries once the thread's open interrupts are known.
//!
//! An AI SDK client answers inside its last assistant message (a tool part
//! in state `approval-responded`, or a client tool's `output-available`); an
//! AG-UI client sends `resume` entries, or a frontend tool's result as a
//! `role: "tool"` message. Approvals name their interrupt; tool results name
//! a tool call, and answer the open interrupt of that call only — results
//! of tools the worker ran itself (the same message holds them) answer
//! nothing.

use serde_json::{Value, json};

use super::{Interrupt, ResumeEntry, ResumeStatus};

/// What a client's request answered, before it is matched to interrupts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// Entries naming their interrupt (native or AG-UI `resume`, AI SDK approvals).
    pub entries: Vec<ResumeEntry>,
    /// Tool results by tool call id: `(tool_call_id, payload)`.
    pub tool_results: Vec<(String, Value)>,
}

impl Answers {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.tool_results.is_empty()
    }

    /// The resume entries these answers make against the `open` interrupts:
    /// `None` when they answer nothing (a plain run).
    pub fn resolve(&self, open: &[Interrupt]) -> Option<Vec<ResumeEntry>> {
        let mut entries = self.entries.clone();
        for interrupt in open {
            let Some(call) = interrupt.tool_call_id() else {
                continue;
            };
            if entries.iter().any(|e| e.interrupt_id == interrupt.id()) {
                continue;
            }
            if let Some((_, payload)) = self.tool_results.iter().find(|(id, _)| id == call) {
                entries.push(ResumeEntry {
                    interrupt_id: interrupt.id().to_owned(),
                    status: ResumeStatus::Resolved,
                    payload: payload.clone(),
                });
            }
        }
        (!entries.is_empty()).then_some(entries)
    }

    /// The answers in an AI SDK chat's last message, when it is the
    /// assistant's (a continuation): approvals and tool outputs of its tool
    /// parts (`tool-<name>` and `dynamic-tool`).
    pub fn from_ai_sdk(messages: &[Value]) -> Answers {
        let mut answers = Answers::default();
        let Some(last) = messages.last() else {
            return answers;
        };
        if last.get("role").and_then(Value::as_str) != Some("assistant") {
            return answers;
        }
        let parts = last.get("parts").and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
            if !(kind.starts_with("tool-") || kind == "dynamic-tool") {
                continue;
            }
            let call = part.get("toolCallId").and_then(Value::as_str);
            match part.get("state").and_then(Value::as_str) {
                Some("approval-responded") => {
                    let approval = part.get("approval");
                    let id = approval.and_then(|a| a.get("id")).and_then(Value::as_str);
                    let approved = approval
                        .and_then(|a| a.get("approved"))
                        .and_then(Value::as_bool);
                    if let (Some(id), Some(approved)) = (id, approved) {
                        let mut payload = json!({ "approved": approved });
                        if let Some(reason) = approval.and_then(|a| a.get("reason")) {
                            payload["reason"] = reason.clone();
                        }
                        answers.entries.push(ResumeEntry {
                            interrupt_id: id.to_owned(),
                            status: ResumeStatus::Resolved,
                            payload,
                        });
                    }
                }
                Some("output-available") => {
                    if let Some(call) = call {
                        let output = part.get("output").cloned().unwrap_or(Value::Null);
                        answers.tool_results.push((call.to_owned(), output));
                    }
                }
                Some("output-error") => {
                    if let Some(call) = call {
                        let error = part.get("errorText").cloned().unwrap_or(Value::Null);
                        answers
                            .tool_results
                            .push((call.to_owned(), json!({ "error": error })));
                    }
                }
                _ => {}
            }
        }
        answers
    }

    /// The answers of an AG-UI `RunAgentInput`: `resume` (`interruptId`,
    /// `status`, `payload`) and `role: "tool"` messages.
    pub fn from_ag_ui(resume: Option<&Value>, messages: &[Value]) -> Result<Answers, String> {
        let mut answers = Answers::default();
        if let Some(resume) = resume.filter(|r| !r.is_null()) {
            let Value::Array(items) = resume else {
                return Err("resume must be an array".into());
            };
            let native: Vec<Value> = items
                .iter()
                .map(|item| {
                    json!({
                        "interrupt_id": item.get("interruptId").cloned().unwrap_or(Value::Null),
                        "status": item.get("status").cloned().unwrap_or(Value::Null),
                        "payload": item.get("payload").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect();
            answers.entries = ResumeEntry::parse_all(&Value::Array(native))
                .map_err(|e| e.replace("interrupt_id", "interruptId"))?;
        }
        for message in messages {
            if message.get("role").and_then(Value::as_str) != Some("tool") {
                continue;
            }
            if let Some(call) = message.get("toolCallId").and_then(Value::as_str) {
                let content = message.get("content").cloned().unwrap_or(Value::Null);
                answers.tool_results.push((call.to_owned(), content));
            }
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Vec<Interrupt> {
        serde_json::from_value(json!([
            {"id": "approve-1", "reason": "tool_call", "tool_call_id": "call-1"},
            {"id": "client-2", "reason": "tool_call", "tool_call_id": "call-2"}
        ]))
        .unwrap()
    }

    #[test]
    fn an_ai_sdk_continuation_answers_approvals_and_client_tools_only() {
        let messages = [
            json!({"role": "user", "parts": [{"type": "text", "text": "go"}]}),
            json!({"role": "assistant", "parts": [
                {"type": "tool-search", "toolCallId": "call-0", "state": "output-available", "output": "server ran it"},
                {"type": "dynamic-tool", "toolName": "send", "toolCallId": "call-1", "state": "approval-responded",
                 "approval": {"id": "approve-1", "approved": false, "reason": "not now"}},
                {"type": "tool-clock", "toolCallId": "call-2", "state": "output-available", "output": {"time": "10:00"}}
            ]}),
        ];
        let entries = Answers::from_ai_sdk(&messages).resolve(&open()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].interrupt_id, "approve-1");
        assert_eq!(
            entries[0].payload,
            json!({"approved": false, "reason": "not now"})
        );
        assert_eq!(entries[1].interrupt_id, "client-2");
        assert_eq!(entries[1].payload, json!({"time": "10:00"}));
    }

    #[test]
    fn a_new_user_message_answers_nothing() {
        let messages = [json!({"role": "user", "parts": [{"type": "text", "text": "hi"}]})];
        assert_eq!(Answers::from_ai_sdk(&messages).resolve(&open()), None);
    }

    #[test]
    fn ag_ui_resume_entries_and_tool_messages() {
        let answers = Answers::from_ag_ui(
            Some(&json!([{"interruptId": "approve-1", "status": "resolved", "payload": {"approved": true}}])),
            &[json!({"id": "m", "role": "tool", "toolCallId": "call-2", "content": "10:00"})],
        )
        .unwrap();
        let entries = answers.resolve(&open()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].payload, json!("10:00"));
        let bad = Answers::from_ag_ui(Some(&json!([{"status": "resolved"}])), &[]).unwrap_err();
        assert!(bad.contains("interruptId"), "{bad}");
    }
}
