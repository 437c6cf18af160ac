//! The request bodies of the agent-UI endpoints, turned into a
//! [`SessionRequest`]: the job's `request` is the client's body unchanged
//! plus `user_query` (the last user message's text), so workers written for
//! `POST /v1/react/sessions` run unchanged. The AG-UI thread and the AI SDK
//! chat are the run's thread (PROTOCOL §8); what the body answers of the
//! thread's open interrupts is read here as [`Answers`].

use serde_json::{Map, Value};

use crate::protocol::{InvalidRequest, SessionRequest};
use crate::thread::ThreadId;
use crate::thread::answers::Answers;

/// A validated AG-UI `RunAgentInput`.
#[derive(Debug)]
pub struct AgUiRun {
    pub thread_id: ThreadId,
    pub run_id: String,
    pub request: SessionRequest,
    /// `resume` entries and frontend tools' `role: "tool"` messages.
    pub answers: Answers,
}

/// A validated AI SDK chat request (`DefaultChatTransport`'s body).
#[derive(Debug)]
pub struct AiSdkChat {
    pub chat_id: ThreadId,
    pub request: SessionRequest,
    /// Approvals and client-tool outputs of the last assistant message.
    pub answers: Answers,
    /// The assistant message this run continues (the last message, when it
    /// is the assistant's).
    pub continues: Option<String>,
}

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest::Input(message.into())
}

fn object(body: Value) -> Result<Map<String, Value>, InvalidRequest> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(InvalidRequest::NotObject),
    }
}

fn string_field(body: &Map<String, Value>, name: &str) -> Result<String, InvalidRequest> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("{name} must not be empty"))),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
        None => Err(invalid(format!("{name} is required"))),
    }
}

fn array_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a [Value], InvalidRequest> {
    match body.get(name) {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{name} must be an array"))),
        None => Err(invalid(format!("{name} is required"))),
    }
}

/// The text of the last message with role `user`, read by `text`.
fn last_user_text(
    messages: &[Value],
    text: impl Fn(&Value) -> Option<String>,
) -> Result<String, InvalidRequest> {
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| invalid("messages has no user message"))?;
    text(last_user)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid("the last user message has no text"))
}

/// Text parts of `parts` (`[{type: "text", text}]`), concatenated.
fn text_parts(parts: &Value) -> Option<String> {
    let parts = parts.as_array()?;
    Some(
        parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
    )
}

/// Adds `user_query` (when there is one: a run that only answers
/// interrupts continues its parent's) to `body` and validates it as a
/// session request. The thread and resume fields are the gateway's to set,
/// under their native names.
fn with_user_query(
    mut body: Map<String, Value>,
    query: Option<String>,
) -> Result<SessionRequest, InvalidRequest> {
    body.remove("thread_id");
    body.remove("resume");
    match query {
        Some(query) => {
            body.insert("user_query".into(), Value::String(query));
            SessionRequest::from_value(Value::Object(body))
        }
        None => SessionRequest::answering(body),
    }
}

fn thread_of(body: &Map<String, Value>, name: &str) -> Result<ThreadId, InvalidRequest> {
    string_field(body, name)?
        .parse()
        .map_err(|e| invalid(format!("{name}: {e}")))
}

impl AgUiRun {
    /// `POST /v1/ag-ui`: `threadId` (a thread id), `runId` (string),
    /// `messages` (array; the last user message's `content` is a string or
    /// text parts — optional when the run resumes), optional `tools` and
    /// `context` (arrays), `state`, `forwardedProps`, `resume`.
    pub fn parse(body: Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let thread_id = thread_of(&body, "threadId")?;
        let run_id = string_field(&body, "runId")?;
        for optional_array in ["tools", "context"] {
            if body.get(optional_array).is_some_and(|v| !v.is_array()) {
                return Err(invalid(format!("{optional_array} must be an array")));
            }
        }
        let messages = array_field(&body, "messages")?;
        let answers = Answers::from_ag_ui(body.get("resume"), messages).map_err(invalid)?;
        let query = last_user_text(messages, |message| match message.get("content")? {
            Value::String(text) => Some(text.clone()),
            parts => text_parts(parts),
        });
        let query = optional_when(query, !answers.is_empty())?;
        Ok(AgUiRun {
            thread_id,
            run_id,
            request: with_user_query(body, query)?,
            answers,
        })
    }
}

/// A query that may be missing when the run answers interrupts.
fn optional_when(
    query: Result<String, InvalidRequest>,
    answering: bool,
) -> Result<Option<String>, InvalidRequest> {
    match query {
        Ok(query) => Ok(Some(query)),
        Err(_) if answering => Ok(None),
        Err(error) => Err(error),
    }
}

impl AiSdkChat {
    /// `POST /v1/ai-sdk/chat`: `id` (the chat: a thread id), `messages`
    /// (array; the last user message's `parts` hold text parts), `trigger`
    /// when present a string. A last message of the assistant's is a
    /// continuation: its answered approvals and client-tool outputs resume.
    pub fn parse(body: Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let chat_id = thread_of(&body, "id")?;
        if body.get("trigger").is_some_and(|v| !v.is_string()) {
            return Err(invalid("trigger must be a string"));
        }
        let messages = array_field(&body, "messages")?;
        let answers = Answers::from_ai_sdk(messages);
        let continues = messages
            .last()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .and_then(|m| m.get("id").and_then(Value::as_str))
            .map(str::to_owned);
        let query = last_user_text(messages, |message| text_parts(message.get("parts")?));
        let query = optional_when(query, !answers.is_empty())?;
        Ok(AiSdkChat {
            chat_id,
            request: with_user_query(body, query)?,
            answers,
            continues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ag_ui_input_gives_the_last_user_text_and_keeps_the_body() {
        let run = AgUiRun::parse(json!({
            "threadId": "t1", "runId": "r1", "tools": [], "context": [], "state": {"k": 1},
            "forwardedProps": {},
            "messages": [
                {"id": "1", "role": "user", "content": "first"},
                {"id": "2", "role": "assistant", "content": "ok"},
                {"id": "3", "role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]}
            ]
        }))
        .unwrap();
        assert_eq!((run.thread_id.as_str(), run.run_id.as_str()), ("t1", "r1"));
        assert!(run.answers.is_empty());
        assert_eq!(run.request.user_query(), "What is 2+2?");
        assert_eq!(run.request.as_object()["state"], json!({"k": 1}));
    }

    #[test]
    fn ag_ui_input_errors_name_the_field() {
        let cases = [
            (json!([]), "JSON object"),
            (
                json!({"runId": "r", "messages": []}),
                "threadId is required",
            ),
            (
                json!({"threadId": 1, "runId": "r", "messages": []}),
                "threadId must be a string",
            ),
            (
                json!({"threadId": "t", "runId": "r", "messages": {}}),
                "messages must be an array",
            ),
            (
                json!({"threadId": "t", "runId": "r", "messages": []}),
                "no user message",
            ),
            (
                json!({"threadId": "t", "runId": "r", "tools": {}, "messages": []}),
                "tools must be an array",
            ),
            (
                json!({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": ""}]}),
                "no text",
            ),
        ];
        for (body, expected) in cases {
            let error = AgUiRun::parse(body.clone()).unwrap_err().to_string();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn ai_sdk_chat_gives_the_last_user_text() {
        let chat = AiSdkChat::parse(json!({
            "id": "chat-1", "trigger": "submit-message",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}, {"type": "file", "url": "x"}]}]
        }))
        .unwrap();
        assert_eq!(chat.chat_id.as_str(), "chat-1");
        assert_eq!(chat.continues, None);
        assert_eq!(chat.request.user_query(), "hi");
        for (body, expected) in [
            (json!({"messages": []}), "id is required"),
            (
                json!({"id": "c", "messages": [{"role": "user", "parts": []}]}),
                "no text",
            ),
            (
                json!({"id": "c", "trigger": 1, "messages": []}),
                "trigger must be a string",
            ),
        ] {
            let error = AiSdkChat::parse(body.clone()).unwrap_err().to_string();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }
}
