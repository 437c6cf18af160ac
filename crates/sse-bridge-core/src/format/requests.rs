//! The request bodies of the agent-UI endpoints, turned into a
//! [`SessionRequest`]: the job's `request` is the client's body unchanged
//! plus `user_query` (the last user message's text), so workers written for
//! `POST /v1/react/sessions` run unchanged.

use serde_json::{Map, Value};

use crate::protocol::{InvalidRequest, SessionRequest};

/// A validated AG-UI `RunAgentInput`.
#[derive(Debug)]
pub struct AgUiRun {
    pub thread_id: String,
    pub run_id: String,
    pub request: SessionRequest,
}

/// A validated AI SDK chat request (`DefaultChatTransport`'s body).
#[derive(Debug)]
pub struct AiSdkChat {
    pub chat_id: String,
    pub request: SessionRequest,
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

/// Adds `user_query` to `body` and validates it as a session request.
fn with_user_query(
    mut body: Map<String, Value>,
    query: String,
) -> Result<SessionRequest, InvalidRequest> {
    body.insert("user_query".into(), Value::String(query));
    SessionRequest::from_value(Value::Object(body))
}

impl AgUiRun {
    /// `POST /v1/ag-ui`: `threadId`, `runId` (strings), `messages` (array;
    /// the last user message's `content` is a string or text parts),
    /// optional `tools` and `context` (arrays), `state`, `forwardedProps`.
    pub fn parse(body: Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let thread_id = string_field(&body, "threadId")?;
        let run_id = string_field(&body, "runId")?;
        for optional_array in ["tools", "context"] {
            if body.get(optional_array).is_some_and(|v| !v.is_array()) {
                return Err(invalid(format!("{optional_array} must be an array")));
            }
        }
        let query = last_user_text(array_field(&body, "messages")?, |message| {
            match message.get("content")? {
                Value::String(text) => Some(text.clone()),
                parts => text_parts(parts),
            }
        })?;
        Ok(AgUiRun {
            thread_id,
            run_id,
            request: with_user_query(body, query)?,
        })
    }
}

impl AiSdkChat {
    /// `POST /v1/ai-sdk/chat`: `id` (the chat), `messages` (array; the last
    /// user message's `parts` hold text parts), `trigger` when present a string.
    pub fn parse(body: Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let chat_id = string_field(&body, "id")?;
        if body.get("trigger").is_some_and(|v| !v.is_string()) {
            return Err(invalid("trigger must be a string"));
        }
        let query = last_user_text(array_field(&body, "messages")?, |message| {
            text_parts(message.get("parts")?)
        })?;
        Ok(AiSdkChat {
            chat_id,
            request: with_user_query(body, query)?,
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
        assert_eq!(chat.chat_id, "chat-1");
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
