//! Asking a person before a tool runs (PROTOCOL §8, the AI SDK's tool
//! approval). [`SessionHandle::ask_approval`] starts the call and ends the
//! run with an interrupt about it; the run that resumes it reads the
//! [`Approval`] and ends the *same* call — output, or denied — without
//! starting it again (a repeated `AgentToolCallStart` would show a second
//! call in the AI SDK).
//!
//! ```no_run
//! use serde_json::json;
//! use sse_bridge_worker::runner::HandlerError;
//! use sse_bridge_worker::{Decision, JobHandler, SessionHandle, ToolCall};
//!
//! struct Mailer;
//!
//! #[async_trait::async_trait]
//! impl JobHandler for Mailer {
//!     async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
//!         let Some(resumed) = session.resumed()? else {
//!             let call = ToolCall::new("send_report", json!({"to": "finance"}));
//!             session.ask_approval(&call, "Send the report to finance?").await?;
//!             return Ok(()); // the run ended with the interrupt
//!         };
//!         let approval = resumed.approval("send_report").ok_or("nothing to resume")?;
//!         let answer = match approval.decision {
//!             Decision::Approved => {
//!                 session.end_tool_call(&approval.call, json!({"sent": true})).await?;
//!                 "Sent the report to finance."
//!             }
//!             Decision::Denied { reason } => {
//!                 session.deny_tool_call(&approval.call, reason.as_deref()).await?;
//!                 "Okay, I did not send the report."
//!             }
//!         };
//!         session.publish("FinalAnswerStream", json!({"char": answer})).await?;
//!         session.publish("FinalAnswerStreamEnd", json!({})).await?;
//!         Ok(())
//!     }
//! }
//! ```

use serde_json::Value;

use crate::interrupt::{Interrupt, InterruptError};
use crate::publish::Published;
use crate::resume::{Answer, Resumed};
use crate::runner::SessionHandle;
use crate::tool_call::ToolCall;

/// What the person decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Payload `{"approved": true}`.
    Approved,
    /// Payload `{"approved": false, "reason"?}`, the interrupt cancelled,
    /// or any answer that does not say `approved: true`.
    Denied { reason: Option<String> },
}

/// A tool call that asked for approval, and the decision about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub call: ToolCall,
    pub decision: Decision,
}

impl Approval {
    /// The approval an answer carries; `None` when its interrupt is not
    /// about a tool call, or about one the client runs.
    fn of(answer: &Answer) -> Option<Approval> {
        let call = answer.tool_call()?;
        if answer.metadata("executor").and_then(Value::as_str) == Some("client") {
            return None;
        }
        let payload = &answer.entry.payload;
        let approved = payload.get("approved").and_then(Value::as_bool) == Some(true);
        let decision = if approved && !answer.is_cancelled() {
            Decision::Approved
        } else {
            let reason = payload.get("reason").and_then(Value::as_str);
            Decision::Denied {
                reason: reason.map(str::to_owned),
            }
        };
        Some(Approval { call, decision })
    }
}

impl Resumed {
    /// Every approval this run was given, in the client's order.
    pub fn approvals(&self) -> Vec<Approval> {
        self.answers.iter().filter_map(Approval::of).collect()
    }

    /// The approval of the call of tool `tool_name`.
    pub fn approval(&self, tool_name: &str) -> Option<Approval> {
        self.answers
            .iter()
            .filter_map(Approval::of)
            .find(|approval| approval.call.name == tool_name)
    }
}

impl SessionHandle {
    /// Asks whether `call` may run: publishes its `AgentToolCallStart`, then
    /// ends the run with an interrupt `{reason: "tool_call", tool_call_id,
    /// message, metadata: {tool_name, tool_input}}`. Return from the handler
    /// after it; the resumed run reads [`Resumed::approval`] and publishes
    /// the call's end ([`end_tool_call`](Self::end_tool_call) or
    /// [`deny_tool_call`](Self::deny_tool_call)).
    pub async fn ask_approval(
        &self,
        call: &ToolCall,
        message: &str,
    ) -> Result<Published, InterruptError> {
        self.start_tool_call(call).await?;
        self.interrupt([Interrupt::for_tool_call(call).message(message)])
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resume::tests::resuming_job;

    fn asked(id: &str, tool: &str) -> Value {
        json!({"id": id, "reason": "tool_call", "tool_call_id": format!("call-{id}"),
               "message": "May I?", "metadata": {"tool_name": tool, "tool_input": {"to": "finance"}}})
    }

    fn decision_for(status: &str, payload: Value) -> Option<Decision> {
        let entry = json!([{"interrupt_id": "i1", "status": status, "payload": payload}]);
        let job = resuming_job(entry, vec![asked("i1", "send_report")]);
        let resumed = Resumed::of(&job).unwrap().unwrap();
        let approval = resumed.approval("send_report")?;
        assert_eq!(approval.call.id, "call-i1");
        assert_eq!(approval.call.input, json!({"to": "finance"}));
        Some(approval.decision)
    }

    #[test]
    fn approved_denied_and_cancelled() {
        assert_eq!(
            decision_for("resolved", json!({"approved": true})),
            Some(Decision::Approved)
        );
        assert_eq!(
            decision_for(
                "resolved",
                json!({"approved": false, "reason": "not today"})
            ),
            Some(Decision::Denied {
                reason: Some("not today".into())
            })
        );
        assert_eq!(
            decision_for("cancelled", Value::Null),
            Some(Decision::Denied { reason: None })
        );
        assert_eq!(
            decision_for("cancelled", json!({"approved": true})),
            Some(Decision::Denied { reason: None })
        );
        assert_eq!(
            decision_for("resolved", json!("yes")),
            Some(Decision::Denied { reason: None })
        );
    }

    #[test]
    fn only_server_tool_calls_are_approvals() {
        let mut client = asked("i2", "browser_time");
        client["metadata"]["executor"] = json!("client");
        let job = resuming_job(
            json!([
                {"interrupt_id": "i1", "status": "resolved", "payload": {"approved": true}},
                {"interrupt_id": "i2", "status": "resolved", "payload": {"approved": true}},
                {"interrupt_id": "i3", "status": "resolved", "payload": {"approved": true}}
            ]),
            vec![
                asked("i1", "send_report"),
                client,
                json!({"id": "i3", "reason": "confirmation"}),
            ],
        );
        let resumed = Resumed::of(&job).unwrap().unwrap();
        let approvals = resumed.approvals();
        assert_eq!(approvals.len(), 1, "{approvals:?}");
        assert_eq!(approvals[0].call.name, "send_report");
        assert_eq!(resumed.approval("browser_time"), None);
    }
}
