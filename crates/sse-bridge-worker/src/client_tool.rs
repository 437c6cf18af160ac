//! Tools the client runs (PROTOCOL §8: AG-UI frontend tools, AI SDK
//! client-side tools). [`SessionHandle::call_client_tool`] publishes the
//! call with `"executor": "client"` and ends the run with an interrupt
//! about it; the run that resumes it reads the client's output
//! ([`Resumed::client_output`]). The worker publishes no `AgentToolCallEnd`
//! for such a call: the client already holds its result.

use serde_json::Value;
use sse_bridge_core::protocol::event_type;

use crate::interrupt::{Interrupt, InterruptError};
use crate::publish::Published;
use crate::resume::{Answer, Resumed};
use crate::runner::SessionHandle;
use crate::tool_call::ToolCall;

/// `executor` of a call the client runs.
const CLIENT: &str = "client";

/// A call the client ran, and what it returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientToolResult {
    pub call: ToolCall,
    /// The resume entry's payload; `None` when the client cancelled the call.
    pub output: Option<Value>,
}

impl ClientToolResult {
    /// The result an answer carries; `None` unless its interrupt is about a
    /// call handed to the client.
    fn of(answer: &Answer) -> Option<ClientToolResult> {
        if answer.metadata("executor").and_then(Value::as_str) != Some(CLIENT) {
            return None;
        }
        let output = (!answer.is_cancelled()).then(|| answer.entry.payload.clone());
        Some(ClientToolResult {
            call: answer.tool_call()?,
            output,
        })
    }
}

impl Resumed {
    /// The result of the call of client tool `tool_name`.
    pub fn client_output(&self, tool_name: &str) -> Option<ClientToolResult> {
        self.answers
            .iter()
            .filter_map(ClientToolResult::of)
            .find(|result| result.call.name == tool_name)
    }
}

impl SessionHandle {
    /// Hands `call` to the client: publishes its `AgentToolCallStart` with
    /// `"executor": "client"`, then ends the run with an interrupt
    /// `{reason: "tool_call", tool_call_id, metadata: {tool_name,
    /// tool_input, executor: "client"}}`. Return from the handler after it.
    pub async fn call_client_tool(&self, call: &ToolCall) -> Result<Published, InterruptError> {
        let mut start = call.start_payload();
        start["executor"] = CLIENT.into();
        self.publish(event_type::TOOL_CALL_START, start).await?;
        let interrupt = Interrupt::for_tool_call(call).metadata("executor", CLIENT.into());
        self.interrupt([interrupt]).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resume::tests::resuming_job;

    fn handed_over(status: &str, payload: Value) -> Option<ClientToolResult> {
        let call = ToolCall::with_id("c1", "browser_time", json!({}));
        let interrupt = Interrupt::for_tool_call(&call)
            .with_id("i1")
            .metadata("executor", CLIENT.into());
        let entry = json!([{"interrupt_id": "i1", "status": status, "payload": payload}]);
        let job = resuming_job(entry, vec![interrupt.to_json()]);
        Resumed::of(&job)
            .unwrap()
            .unwrap()
            .client_output("browser_time")
    }

    #[test]
    fn the_client_output_is_the_entry_payload() {
        let result = handed_over("resolved", json!("10:42")).unwrap();
        assert_eq!(result.call.id, "c1");
        assert_eq!(result.output, Some(json!("10:42")));
        assert_eq!(handed_over("cancelled", Value::Null).unwrap().output, None);
    }

    #[test]
    fn an_approval_is_not_a_client_output() {
        let call = ToolCall::with_id("c1", "browser_time", json!({}));
        let interrupt = Interrupt::for_tool_call(&call).with_id("i1");
        let entry = json!([{"interrupt_id": "i1", "status": "resolved", "payload": "10:42"}]);
        let job = resuming_job(entry, vec![interrupt.to_json()]);
        let resumed = Resumed::of(&job).unwrap().unwrap();
        assert_eq!(resumed.client_output("browser_time"), None);
    }
}
