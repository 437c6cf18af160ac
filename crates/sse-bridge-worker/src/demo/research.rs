//! The demo agent's tour of the richer events (PROTOCOL §9), triggered by
//! a query containing **"research"**: two steps (`research`, `answer`), a
//! `web_search` call whose input streams before it starts, a source, the
//! agent's state (a snapshot, then a patch), a data part replaced by id and
//! a transient one, a file, the answer, and the token usage.

use serde_json::json;
use sse_bridge_core::protocol::event_type;

use super::DemoAgent;
use crate::runner::{HandlerError, SessionHandle};
use crate::tool_call::ToolCall;

/// Whether a query asks for the tour.
pub(super) fn asks_for_research(query: &str) -> bool {
    query.to_lowercase().contains("research")
}

/// The search input, streamed in these pieces.
const INPUT_PIECES: [&str; 3] = [r#"{"query":"#, r#""sse-bridge "#, r#"durable streams"}"#];

impl DemoAgent {
    pub(super) async fn research(&self, session: &SessionHandle) -> Result<(), HandlerError> {
        session
            .publish(event_type::STEP_START, json!({"name": "research"}))
            .await?;
        session
            .publish(
                event_type::STATE_SNAPSHOT,
                json!({"state": {"status": "searching", "sources": 0}}),
            )
            .await?;
        let call = ToolCall::new("web_search", json!({"query": "sse-bridge durable streams"}));
        for delta in INPUT_PIECES {
            session
                .publish(
                    event_type::TOOL_INPUT,
                    json!({"tool_call_id": call.id, "tool_name": call.name, "delta": delta}),
                )
                .await?;
            self.pause().await;
        }
        session.start_tool_call(&call).await?;
        let url = "https://github.com/durable-streams/durable-streams";
        session
            .end_tool_call(
                &call,
                json!({"results": [{"url": url, "title": "Durable Streams"}]}),
            )
            .await?;
        session
            .publish(
                event_type::SOURCE,
                json!({"id": "src-1", "url": url, "title": "Durable Streams"}),
            )
            .await?;
        session
            .publish(
                event_type::STATE_DELTA,
                json!({"patch": [
                    {"op": "replace", "path": "/status", "value": "writing"},
                    {"op": "replace", "path": "/sources", "value": 1}
                ]}),
            )
            .await?;
        session
            .publish(event_type::STEP_END, json!({"name": "research"}))
            .await?;
        session
            .publish(event_type::STEP_START, json!({"name": "answer"}))
            .await?;
        for pct in [50, 100] {
            session
                .publish(
                    event_type::DATA,
                    json!({"name": "progress", "id": "progress", "data": {"pct": pct}}),
                )
                .await?;
        }
        session
            .publish(
                event_type::DATA,
                json!({"name": "notice", "data": {"text": "writing the answer"}, "transient": true}),
            )
            .await?;
        session
            .publish(
                event_type::FILE,
                json!({"media_type": "text/plain", "url": "data:text/plain;base64,c3NlLWJyaWRnZQ=="}),
            )
            .await?;
        let answer = "Durable Streams is an HTTP protocol for resumable, append-only streams.";
        self.stream_text(session, event_type::ANSWER, answer)
            .await?;
        session
            .publish(event_type::STEP_END, json!({"name": "answer"}))
            .await?;
        let output_tokens = answer.chars().count();
        session
            .publish(
                event_type::USAGE,
                json!({"input_tokens": 42, "output_tokens": output_tokens, "model": "demo"}),
            )
            .await?;
        session.publish(event_type::ANSWER_END, json!({})).await?;
        Ok(())
    }
}
