//! Tool calls with ids (PROTOCOL §8): a [`ToolCall`] names its call with a
//! `tool_call_id` that `AgentToolCallStart` and the matching
//! `AgentToolCallEnd` both carry, so every output format pairs them by id
//! instead of by tool name — and a call started in one run can be ended in
//! the run that resumes it.

use serde_json::{Value, json};
use sse_bridge_core::protocol::event_type;

use crate::publish::{PublishError, Published};
use crate::runner::SessionHandle;

/// One call of a tool: its id, the tool's name and its input.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Unique in the session (`call-<uuid>` unless chosen).
    pub id: String,
    pub name: String,
    pub input: Value,
}

impl ToolCall {
    /// A call of tool `name` with a fresh id, `call-<uuid>`.
    pub fn new(name: impl Into<String>, input: Value) -> Self {
        let id = format!("call-{}", uuid::Uuid::new_v4().simple());
        ToolCall::with_id(id, name, input)
    }

    /// A call whose id the agent chose (a model's own tool call id).
    pub fn with_id(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            input,
        }
    }

    /// `AgentToolCallStart`'s payload.
    pub(crate) fn start_payload(&self) -> Value {
        json!({ "tool_call_id": self.id, "tool_name": self.name, "tool_input": self.input })
    }

    /// `AgentToolCallEnd`'s payload: the id and name, then `outcome`'s fields.
    fn end_payload(&self, outcome: Value) -> Value {
        let mut payload = json!({ "tool_call_id": self.id, "tool_name": self.name });
        if let (Value::Object(fields), Value::Object(outcome)) = (&mut payload, outcome) {
            fields.extend(outcome);
        }
        payload
    }
}

impl SessionHandle {
    /// Publishes `AgentToolCallStart` of `call`.
    pub async fn start_tool_call(&self, call: &ToolCall) -> Result<Published, PublishError> {
        self.publish(event_type::TOOL_CALL_START, call.start_payload())
            .await
    }

    /// Publishes `AgentToolCallEnd` of `call` with the tool's `output`.
    pub async fn end_tool_call(
        &self,
        call: &ToolCall,
        output: Value,
    ) -> Result<Published, PublishError> {
        let payload = call.end_payload(json!({ "output": output }));
        self.publish(event_type::TOOL_CALL_END, payload).await
    }

    /// Publishes `AgentToolCallEnd` of `call` that failed with `error`
    /// (instead of an output).
    pub async fn fail_tool_call(
        &self,
        call: &ToolCall,
        error: &str,
    ) -> Result<Published, PublishError> {
        let payload = call.end_payload(json!({ "error": error }));
        self.publish(event_type::TOOL_CALL_END, payload).await
    }

    /// Publishes `AgentToolCallEnd` of `call` whose approval was denied:
    /// `denied: true` and `error` = `reason`, or `"denied"` without one
    /// (the AI SDK shows it as `tool-output-denied`).
    pub async fn deny_tool_call(
        &self,
        call: &ToolCall,
        reason: Option<&str>,
    ) -> Result<Published, PublishError> {
        let payload =
            call.end_payload(json!({ "denied": true, "error": reason.unwrap_or("denied") }));
        self.publish(event_type::TOOL_CALL_END, payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_call_gets_a_fresh_id() {
        let first = ToolCall::new("search", json!({"q": "x"}));
        let second = ToolCall::new("search", json!({"q": "x"}));
        assert!(
            first.id.starts_with("call-") && first.id.len() == 37,
            "{}",
            first.id
        );
        assert_ne!(first.id, second.id);
        assert_eq!(ToolCall::with_id("c1", "search", Value::Null).id, "c1");
    }

    #[test]
    fn start_and_end_payloads_carry_the_id_and_name() {
        let call = ToolCall::with_id("c1", "search", json!({"q": "x"}));
        assert_eq!(
            call.start_payload(),
            json!({"tool_call_id": "c1", "tool_name": "search", "tool_input": {"q": "x"}})
        );
        assert_eq!(
            call.end_payload(json!({"denied": true, "error": "denied"})),
            json!({"tool_call_id": "c1", "tool_name": "search", "denied": true, "error": "denied"})
        );
    }
}
