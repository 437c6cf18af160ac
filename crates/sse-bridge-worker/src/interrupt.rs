//! The `interrupt` event (PROTOCOL §8): a run that needs something from
//! outside (an approval, a missing value, a tool the client runs) ends with
//! it instead of an answer. [`Interrupt`] builds one interrupt;
//! [`SessionHandle::interrupt`] checks them as the gateway will and
//! publishes the terminal event. The answers arrive in a new run of the
//! same handler ([`SessionHandle::resumed`](crate::SessionHandle::resumed)).

use std::time::SystemTime;

use serde_json::{Map, Value};
use sse_bridge_core::protocol::event_type;
use sse_bridge_core::thread::InvalidInterrupt;

use crate::publish::{PublishError, Published};
use crate::runner::SessionHandle;
use crate::tool_call::ToolCall;

/// Common `reason`s of an interrupt (the field is an open string).
pub mod reason {
    /// About a tool call: an approval, or a tool the client runs.
    pub const TOOL_CALL: &str = "tool_call";
    /// A value the agent cannot go on without.
    pub const INPUT_REQUIRED: &str = "input_required";
    /// A yes or no before the agent goes on.
    pub const CONFIRMATION: &str = "confirmation";
}

/// One interrupt of an `interrupt` event: `{"id", "reason", "message"?,
/// "tool_call_id"?, "response_schema"?, "expires_at"?, "metadata"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    id: String,
    reason: String,
    message: Option<String>,
    tool_call_id: Option<String>,
    response_schema: Option<Value>,
    expires_at: Option<SystemTime>,
    metadata: Map<String, Value>,
}

impl Interrupt {
    /// An interrupt for `reason` (see [`reason`]) with a fresh id, `int-<uuid>`.
    pub fn new(reason: impl Into<String>) -> Self {
        Interrupt {
            id: format!("int-{}", uuid::Uuid::new_v4().simple()),
            reason: reason.into(),
            message: None,
            tool_call_id: None,
            response_schema: None,
            expires_at: None,
            metadata: Map::new(),
        }
    }

    /// An interrupt about `call` (reason `tool_call`): its `tool_call_id`,
    /// and its name and input in `metadata` (`tool_name`, `tool_input`), so
    /// the resumed run knows the call without keeping anything.
    pub fn for_tool_call(call: &ToolCall) -> Self {
        Interrupt::new(reason::TOOL_CALL)
            .tool_call_id(&call.id)
            .metadata("tool_name", Value::String(call.name.clone()))
            .metadata("tool_input", call.input.clone())
    }

    /// Replaces the generated id (unique within the thread).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The question or explanation shown to the person.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The tool call this interrupt is about.
    pub fn tool_call_id(mut self, tool_call_id: impl Into<String>) -> Self {
        self.tool_call_id = Some(tool_call_id.into());
        self
    }

    /// A JSON Schema the answer's payload should follow.
    pub fn response_schema(mut self, schema: Value) -> Self {
        self.response_schema = Some(schema);
        self
    }

    /// After this instant the interrupt can only be cancelled (the gateway
    /// answers a late `resolved` with 410).
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets `metadata[key]`: anything the agent wants back when resumed.
    pub fn metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The interrupt as the event carries it.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("id".into(), self.id.clone().into());
        fields.insert("reason".into(), self.reason.clone().into());
        if let Some(message) = &self.message {
            fields.insert("message".into(), message.clone().into());
        }
        if let Some(tool_call_id) = &self.tool_call_id {
            fields.insert("tool_call_id".into(), tool_call_id.clone().into());
        }
        if let Some(schema) = &self.response_schema {
            fields.insert("response_schema".into(), schema.clone());
        }
        if let Some(at) = self.expires_at {
            let at = humantime::format_rfc3339_seconds(at).to_string();
            fields.insert("expires_at".into(), at.into());
        }
        if !self.metadata.is_empty() {
            fields.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(fields)
    }
}

/// Why a run could not end with its interrupts.
#[derive(Debug, thiserror::Error)]
pub enum InterruptError {
    /// The gateway would refuse them (none, too many, an empty id or
    /// reason, two with one id); nothing was published.
    #[error("invalid interrupts: {0}")]
    Invalid(#[from] InvalidInterrupt),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The `interrupt` event's payload, checked by the rule the gateway applies.
fn interrupt_payload(interrupts: &[Interrupt]) -> Result<Value, InvalidInterrupt> {
    let items = interrupts.iter().map(Interrupt::to_json).collect();
    let mut payload = Map::new();
    payload.insert("interrupts".into(), Value::Array(items));
    let payload = Value::Object(payload);
    sse_bridge_core::thread::Interrupt::parse_all(&payload)?;
    Ok(payload)
}

impl SessionHandle {
    /// Ends the run with the terminal `interrupt` event: the session is
    /// over (return from the handler after it; nothing else can be
    /// published). Each interrupt is answered in the run that resumes it.
    pub async fn interrupt(
        &self,
        interrupts: impl IntoIterator<Item = Interrupt>,
    ) -> Result<Published, InterruptError> {
        let interrupts: Vec<Interrupt> = interrupts.into_iter().collect();
        let payload = interrupt_payload(&interrupts)?;
        Ok(self.publish(event_type::INTERRUPT, payload).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    #[test]
    fn a_new_interrupt_has_a_fresh_id_and_only_the_fields_set() {
        let first = Interrupt::new(reason::CONFIRMATION);
        let second = Interrupt::new(reason::CONFIRMATION);
        assert!(first.id().starts_with("int-") && first.id().len() == 36);
        assert_ne!(first.id(), second.id());
        assert_eq!(
            first.to_json(),
            json!({"id": first.id(), "reason": "confirmation"})
        );
    }

    #[test]
    fn every_field_is_rendered_as_protocol_8_names_it() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_464_800);
        let interrupt = Interrupt::new(reason::INPUT_REQUIRED)
            .with_id("i1")
            .message("Which account?")
            .tool_call_id("c1")
            .response_schema(json!({"type": "string"}))
            .expires_at(at)
            .metadata("step", json!(3));
        assert_eq!(
            interrupt.to_json(),
            json!({"id": "i1", "reason": "input_required", "message": "Which account?",
                   "tool_call_id": "c1", "response_schema": {"type": "string"},
                   "expires_at": "2026-12-05T10:00:00Z", "metadata": {"step": 3}})
        );
    }

    #[test]
    fn an_interrupt_about_a_tool_call_carries_the_call() {
        let call = ToolCall::with_id("c1", "send_report", json!({"to": "finance"}));
        let interrupt = Interrupt::for_tool_call(&call).with_id("i1");
        assert_eq!(
            interrupt.to_json(),
            json!({"id": "i1", "reason": "tool_call", "tool_call_id": "c1",
                   "metadata": {"tool_name": "send_report", "tool_input": {"to": "finance"}}})
        );
    }

    #[test]
    fn interrupts_the_gateway_would_refuse_are_not_published() {
        assert!(matches!(
            interrupt_payload(&[]),
            Err(InvalidInterrupt::Missing)
        ));
        let twice = [
            Interrupt::new("a").with_id("i"),
            Interrupt::new("b").with_id("i"),
        ];
        assert!(matches!(
            interrupt_payload(&twice),
            Err(InvalidInterrupt::Duplicate)
        ));
        assert!(matches!(
            interrupt_payload(&[Interrupt::new("")]),
            Err(InvalidInterrupt::Malformed)
        ));
        let ok = interrupt_payload(&[Interrupt::new("a").with_id("i")]).unwrap();
        assert_eq!(ok, json!({"interrupts": [{"id": "i", "reason": "a"}]}));
    }
}
