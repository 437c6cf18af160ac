//! The demo agent's human in the loop (PROTOCOL §8): two queries whose run
//! ends with an `interrupt`, and the run that resumes each.
//!
//! * A query containing **"send the report"**: `send_report` (input
//!   `{"to": "finance"}`) asks for approval — "Send the report to
//!   finance?". Approved → the call's output `{"sent": true}`, then "Sent
//!   the report to finance."; denied or cancelled → the call ends denied,
//!   then "Okay, I did not send the report." (and " Reason: `<reason>`." when
//!   one was given).
//! * A query containing **"what time is it"**: `browser_time` is handed to
//!   the client (`executor: client`). Resumed with its output → "Your
//!   browser says it is `<output>`."
//!
//! Nothing is kept between the runs: the resumed job carries the call.

use serde_json::{Value, json};
use sse_bridge_core::protocol::event_type;

use super::DemoAgent;
use crate::approval::Decision;
use crate::resume::Resumed;
use crate::runner::{HandlerError, SessionHandle};
use crate::tool_call::ToolCall;

const SEND_REPORT: &str = "send_report";
const BROWSER_TIME: &str = "browser_time";

/// A resume that answers nothing this agent asks.
#[derive(Debug, thiserror::Error)]
#[error("the resume answers no approval of send_report and no output of browser_time")]
struct NothingToContinue;

/// A query that needs someone outside the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    SendReport,
    BrowserTime,
}

impl Scenario {
    pub(super) fn for_query(query: &str) -> Option<Self> {
        let query = query.to_lowercase();
        if query.contains("send the report") {
            Some(Scenario::SendReport)
        } else if query.contains("what time is it") {
            Some(Scenario::BrowserTime)
        } else {
            None
        }
    }
}

impl DemoAgent {
    /// A fresh run of `scenario`: says why, then asks; the run ends with
    /// the interrupt.
    pub(super) async fn ask(
        &self,
        session: &SessionHandle,
        scenario: Scenario,
    ) -> Result<(), HandlerError> {
        match scenario {
            Scenario::SendReport => {
                let thought = "Sending a report leaves the company: I will ask for approval first.";
                self.stream_text(session, event_type::THOUGHT, thought)
                    .await?;
                let call = ToolCall::new(SEND_REPORT, json!({"to": "finance"}));
                session
                    .ask_approval(&call, "Send the report to finance?")
                    .await?;
            }
            Scenario::BrowserTime => {
                let thought = "The user's local time is known to their browser: I will ask it.";
                self.stream_text(session, event_type::THOUGHT, thought)
                    .await?;
                let call = ToolCall::new(BROWSER_TIME, json!({}));
                session.call_client_tool(&call).await?;
            }
        }
        Ok(())
    }

    /// A resumed run: ends the call its parent asked about (an approved or
    /// denied `send_report`; nothing for the client's `browser_time`), then
    /// answers.
    pub(super) async fn continue_after(
        &self,
        session: &SessionHandle,
        resumed: &Resumed,
    ) -> Result<(), HandlerError> {
        let answer = if let Some(approval) = resumed.approval(SEND_REPORT) {
            match approval.decision {
                Decision::Approved => {
                    session
                        .end_tool_call(&approval.call, json!({"sent": true}))
                        .await?;
                    "Sent the report to finance.".to_owned()
                }
                Decision::Denied { reason } => {
                    session
                        .deny_tool_call(&approval.call, reason.as_deref())
                        .await?;
                    match reason {
                        Some(reason) => {
                            format!("Okay, I did not send the report. Reason: {reason}.")
                        }
                        None => "Okay, I did not send the report.".to_owned(),
                    }
                }
            }
        } else if let Some(result) = resumed.client_output(BROWSER_TIME) {
            match result.output {
                Some(Value::String(time)) => format!("Your browser says it is {time}."),
                Some(other) => format!("Your browser says it is {other}."),
                None => "The browser did not tell me the time.".to_owned(),
            }
        } else {
            return Err(NothingToContinue.into());
        };
        self.stream_text(session, event_type::ANSWER, &answer)
            .await?;
        session.publish(event_type::ANSWER_END, json!({})).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_queries() {
        assert_eq!(
            Scenario::for_query("Please SEND THE REPORT to finance"),
            Some(Scenario::SendReport)
        );
        assert_eq!(
            Scenario::for_query("Hey, what time is it?"),
            Some(Scenario::BrowserTime)
        );
        assert_eq!(Scenario::for_query("What is 2+3?"), None);
        assert_eq!(Scenario::for_query("What day is it?"), None);
    }
}
