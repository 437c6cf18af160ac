//! The demo agent: a ReAct-style walk through one tool call, streamed live.
//!
//! It thinks out loud (`AgentThoughtStream`), calls one real tool
//! (`AgentToolCallStart` / `AgentToolCallEnd`, paired by a `tool_call_id`)
//! — the [`calculator`] when the query holds arithmetic, otherwise the UTC
//! clock — and streams its answer (`FinalAnswerStream`, then
//! `FinalAnswerStreamEnd`). Text goes out one character per event,
//! `piece_delay` apart, so it looks live in a browser. The runner publishes
//! `worker_ack` and handles `cancel`.
//!
//! Two queries show the human in the loop (`hitl`, PROTOCOL §8); their
//! run ends with an `interrupt`, and the run that resumes it answers:
//!
//! * **"send the report"** (anywhere in the query, any case): the
//!   `send_report` tool asks for approval ("Send the report to finance?");
//!   approved → it runs (`{"sent": true}`), "Sent the report to finance.";
//!   denied → its call ends denied, "Okay, I did not send the report."
//!   (with the reason, if given).
//! * **"what time is it"**: `browser_time` is a tool the client runs; the
//!   answer is "Your browser says it is `<output>`."
//!
//! A query containing **"research"** tours the richer events of PROTOCOL §9
//! (`research`: steps, streamed tool input, state, a source, data parts, a
//! file, token usage).

pub mod calculator;
mod hitl;
mod research;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{Value, json};
use sse_bridge_core::protocol::event_type;

use crate::runner::{HandlerError, JobHandler, SessionHandle};
use crate::tool_call::ToolCall;

/// The demo agent; `piece_delay` is the pause after each streamed character.
#[derive(Debug, Clone, Copy)]
pub struct DemoAgent {
    pub piece_delay: Duration,
}

impl Default for DemoAgent {
    fn default() -> Self {
        DemoAgent {
            piece_delay: Duration::from_millis(5),
        }
    }
}

/// The tool the agent picks for a query, and what it said about it.
struct ToolRun {
    name: &'static str,
    input: Value,
    output: Value,
    answer: String,
}

impl ToolRun {
    fn for_query(query: &str) -> Self {
        match calculator::find_expression(query) {
            Some(expression) => Self::calculate(expression),
            None => Self::clock(),
        }
    }

    fn calculate(expression: &str) -> Self {
        let (output, answer) = match calculator::evaluate(expression) {
            Ok(value) => {
                let value = calculator::format_number(value);
                (json!(value), format!("{expression} = {value}"))
            }
            Err(error) => (
                json!({ "error": error.to_string() }),
                format!("I cannot evaluate {expression}: {error}."),
            ),
        };
        ToolRun {
            name: "calculator",
            input: json!({ "expression": expression }),
            output,
            answer,
        }
    }

    fn clock() -> Self {
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let answer = format!(
            "I could not find arithmetic in your question, but I can tell you the time: it is {now} (UTC)."
        );
        ToolRun {
            name: "utc_clock",
            input: json!({}),
            output: json!(now),
            answer,
        }
    }

    fn thought(&self, query: &str) -> String {
        let plan = match self.name {
            "calculator" => "It contains arithmetic, so I will use the calculator tool.",
            _ => "It contains no arithmetic, so I will consult the UTC clock tool.",
        };
        format!("The user asks: \"{}\". {plan}", query.trim())
    }
}

#[async_trait]
impl JobHandler for DemoAgent {
    async fn handle(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        if let Some(resumed) = session.resumed()? {
            return self.continue_after(session, &resumed).await;
        }
        let query = session.job().request.user_query();
        if let Some(scenario) = hitl::Scenario::for_query(query) {
            return self.ask(session, scenario).await;
        }
        if research::asks_for_research(query) {
            return self.research(session).await;
        }
        let run = ToolRun::for_query(query);
        self.stream_text(session, event_type::THOUGHT, &run.thought(query))
            .await?;
        let call = ToolCall::new(run.name, run.input);
        session.start_tool_call(&call).await?;
        session.end_tool_call(&call, run.output).await?;
        self.stream_text(session, event_type::ANSWER, &run.answer)
            .await?;
        session.publish(event_type::ANSWER_END, json!({})).await?;
        Ok(())
    }
}

impl DemoAgent {
    async fn stream_text(
        &self,
        session: &SessionHandle,
        kind: &str,
        text: &str,
    ) -> Result<(), HandlerError> {
        let mut piece = [0u8; 4];
        // Sent, not published: pieces that come faster than the log takes
        // them go together (the terminal event's publish waits for them).
        for c in text.chars() {
            session
                .send(kind, json!({ "char": &*c.encode_utf8(&mut piece) }))
                .await?;
            self.pause().await;
        }
        Ok(())
    }

    async fn pause(&self) {
        if !self.piece_delay.is_zero() {
            tokio::time::sleep(self.piece_delay).await;
        }
    }
}
