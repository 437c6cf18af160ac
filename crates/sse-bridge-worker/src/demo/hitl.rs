//! The demo agent's human-in-the-loop scenarios (PROTOCOL §8), each
//! triggered by a query:
//!
//! * **"send the report"** — `send_report` needs approval: the run starts
//!   the call and ends with an interrupt ("Send the report to finance?").
//!   Resumed: approved → the call's output, "Sent the report to finance.";
//!   denied → the call ends denied, "Okay, I did not send the report."
//! * **"what time is it"** — `browser_time` is a tool the client runs: the
//!   run hands it over and ends with an interrupt. Resumed with its output:
//!   "Your browser says it is <output>."

use serde_json::{Value, json};
use sse_bridge_core::protocol::event_type;

use super::DemoAgent;
use crate::hitl::{Decision, ToolCall};
use crate::runner::{HandlerError, SessionHandle};

/// Which scenario a query asks for, if any.
pub(super) fn scenario(query: &str) -> Option<Scenario> {
    let query = query.to_lowercase();
    if query.contains("send the report") {
        Some(Scenario::SendReport)
    } else if query.contains("what time is it") {
        Some(Scenario::BrowserTime)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    SendReport,
    BrowserTime,
}

impl DemoAgent {
    pub(super) async fn run_scenario(
        &self,
        session: &SessionHandle,
        scenario: Scenario,
    ) -> Result<(), HandlerError> {
        let resumed = session.resumed();
        let answer = match scenario {
            Scenario::SendReport => match resumed.as_ref().and_then(|r| r.decision()) {
                Some((call, Decision::Approved)) => {
                    session.end_tool_call(&call, json!({"sent": true})).await?;
                    "Sent the report to finance.".to_owned()
                }
                Some((call, Decision::Denied { reason })) => {
                    session.deny_tool_call(&call, reason.as_deref()).await?;
                    match reason {
                        Some(reason) => {
                            format!("Okay, I did not send the report. Reason: {reason}.")
                        }
                        None => "Okay, I did not send the report.".to_owned(),
                    }
                }
                None => {
                    let thought =
                        "Sending a report leaves the company: I will ask for approval first.";
                    self.stream_text(session, event_type::THOUGHT, thought)
                        .await?;
                    let call = ToolCall::new("send_report", json!({"to": "finance"}));
                    session
                        .ask_approval(&call, "Send the report to finance?")
                        .await?;
                    return Ok(());
                }
            },
            Scenario::BrowserTime => match resumed.as_ref().and_then(|r| r.client_output()) {
                Some((_, Some(output))) => {
                    let time = match output {
                        Value::String(time) => time,
                        other => other.to_string(),
                    };
                    format!("Your browser says it is {time}.")
                }
                Some((_, None)) => "The browser did not tell me the time.".to_owned(),
                None => {
                    let thought = "The user's local time is known to their browser: I will ask it.";
                    self.stream_text(session, event_type::THOUGHT, thought)
                        .await?;
                    let call = ToolCall::new("browser_time", json!({}));
                    session.call_client_tool(&call).await?;
                    return Ok(());
                }
            },
        };
        self.stream_text(session, event_type::ANSWER, &answer)
            .await?;
        session.publish(event_type::ANSWER_END, json!({})).await?;
        Ok(())
    }
}
