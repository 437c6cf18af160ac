//! What the AG-UI and AI SDK encoders both track of a stream: the reasoning
//! and text part that is open, the tool calls waiting for their result, the
//! tool calls whose input is streaming, and the ids all of them were given.
//! Each format decides what its frames say; this decides which part an
//! event belongs to, the same way for both.

use bytes::BytesMut;
use serde_json::Value;

/// A text-like part: at most one of each kind is open at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Reasoning,
    Text,
}

/// The open parts and pending tool calls of one stream.
#[derive(Debug)]
pub(super) struct Parts {
    ids: Ids,
    reasoning: Option<String>,
    text: Option<String>,
    /// Tool calls waiting for their result: (tool call id, tool name).
    calls: Vec<(String, String)>,
    /// Tool calls whose input is streaming (started, not yet complete).
    streaming: Vec<String>,
}

/// How a tool call's start relates to its streamed input.
pub(super) struct CallStart {
    pub id: String,
    /// Its input streamed before (`AgentToolCallInputStream`): the client
    /// already has the call open.
    pub streamed: bool,
}

impl Parts {
    /// `scope` prefixes the ids made (see [`Ids`]).
    pub(super) fn new(scope: Option<&str>) -> Self {
        Parts {
            ids: Ids::new(scope),
            reasoning: None,
            text: None,
            calls: Vec::new(),
            streaming: Vec::new(),
        }
    }

    /// A fresh id of `kind` (`result-3`, `call-4`).
    pub(super) fn next_id(&mut self, kind: &str) -> String {
        self.ids.next(kind)
    }

    /// The id of the open `part`; when none is open, a new one is made
    /// (named `kind`) and announced with `open` first.
    pub(super) fn open(
        &mut self,
        part: Part,
        kind: &str,
        out: &mut BytesMut,
        open: impl FnOnce(&str, &mut BytesMut),
    ) -> &str {
        let slot = match part {
            Part::Reasoning => &mut self.reasoning,
            Part::Text => &mut self.text,
        };
        if slot.is_none() {
            let id = self.ids.next(kind);
            open(&id, out);
            *slot = Some(id);
        }
        slot.as_deref().expect("opened above")
    }

    /// Closes `part`: its id, if it was open.
    pub(super) fn close(&mut self, part: Part) -> Option<String> {
        match part {
            Part::Reasoning => self.reasoning.take(),
            Part::Text => self.text.take(),
        }
    }

    /// A tool call started (`AgentToolCallStart` of `name`): its id (the
    /// worker's, the streamed input's, or a new one), now waiting for its result.
    pub(super) fn start_call(&mut self, payload: &Value, name: &str) -> CallStart {
        let worker_id = tool_call_id(payload);
        let streamed = worker_id
            .as_deref()
            .and_then(|id| self.streaming.iter().position(|s| s == id))
            .map(|at| self.streaming.remove(at));
        let start = match streamed {
            Some(id) => CallStart { id, streamed: true },
            None => CallStart {
                id: worker_id.unwrap_or_else(|| self.ids.next("call")),
                streamed: false,
            },
        };
        self.calls.push((start.id.clone(), name.to_owned()));
        start
    }

    /// A tool call ended (`AgentToolCallEnd` of `name`): the call it ends,
    /// by the worker's `tool_call_id`, else the oldest open call of that
    /// tool (of any tool when none of that name is open); `None` when no
    /// call is open at all.
    pub(super) fn end_call(&mut self, payload: &Value, name: &str) -> Option<String> {
        if let Some(id) = tool_call_id(payload) {
            self.calls.retain(|(open, _)| *open != id);
            return Some(id);
        }
        let index = self
            .calls
            .iter()
            .position(|(_, tool)| tool == name)
            .or(if self.calls.is_empty() { None } else { Some(0) })?;
        Some(self.calls.remove(index).0)
    }

    /// A piece of call `id`'s input streamed: `true` when it is the first
    /// (the call opens now).
    pub(super) fn stream_input(&mut self, id: &str) -> bool {
        if self.streaming.iter().any(|s| s == id) {
            return false;
        }
        self.streaming.push(id.to_owned());
        true
    }

    /// The calls whose input was streaming and never completed.
    pub(super) fn take_streaming(&mut self) -> Vec<String> {
        std::mem::take(&mut self.streaming)
    }
}

/// The worker's `tool_call_id`, when it sent one (PROTOCOL §8).
pub(super) fn tool_call_id(payload: &Value) -> Option<String> {
    payload
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Makes a stream's ids: `<kind>-<n>`, or `<kind>-<scope>-<n>` when ids
/// must be unique beyond the stream (AG-UI messages accumulate across runs).
#[derive(Debug)]
struct Ids {
    scope: Option<String>,
    made: u64,
}

impl Ids {
    fn new(scope: Option<&str>) -> Self {
        Ids {
            scope: scope.map(str::to_owned),
            made: 0,
        }
    }

    fn next(&mut self, kind: &str) -> String {
        self.made += 1;
        match &self.scope {
            Some(scope) => format!("{kind}-{scope}-{}", self.made),
            None => format!("{kind}-{}", self.made),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_part_keeps_its_id_until_closed_and_ids_count_across_kinds() {
        let mut parts = Parts::new(Some("s"));
        let mut out = BytesMut::new();
        let mut announced = Vec::new();
        let mut open = |parts: &mut Parts, part, kind| {
            parts
                .open(part, kind, &mut out, |id, _| announced.push(id.to_owned()))
                .to_owned()
        };
        assert_eq!(open(&mut parts, Part::Text, "message"), "message-s-1");
        assert_eq!(open(&mut parts, Part::Text, "message"), "message-s-1");
        assert_eq!(
            open(&mut parts, Part::Reasoning, "reasoning"),
            "reasoning-s-2"
        );
        assert_eq!(parts.close(Part::Text).as_deref(), Some("message-s-1"));
        assert_eq!(parts.close(Part::Text), None);
        assert_eq!(open(&mut parts, Part::Text, "message"), "message-s-3");
        assert_eq!(announced, ["message-s-1", "reasoning-s-2", "message-s-3"]);
    }

    #[test]
    fn results_pair_with_calls_by_worker_id_else_oldest_of_the_tool() {
        let mut parts = Parts::new(None);
        let a = parts.start_call(&json!({}), "search");
        let b = parts.start_call(&json!({}), "fetch");
        let c = parts.start_call(&json!({}), "search");
        let d = parts.start_call(&json!({"tool_call_id": "w-1"}), "fetch");
        assert_eq!((a.id.as_str(), b.id.as_str()), ("call-1", "call-2"));
        assert!(!c.streamed && d.id == "w-1");
        let end = |parts: &mut Parts, payload, name| parts.end_call(&payload, name);
        assert_eq!(
            end(&mut parts, json!({"tool_call_id": "w-1"}), "x").as_deref(),
            Some("w-1")
        );
        assert_eq!(
            end(&mut parts, json!({}), "search").as_deref(),
            Some("call-1")
        );
        assert_eq!(
            end(&mut parts, json!({}), "other").as_deref(),
            Some("call-2")
        );
        assert_eq!(
            end(&mut parts, json!({}), "search").as_deref(),
            Some("call-3")
        );
        assert_eq!(end(&mut parts, json!({}), "search"), None);
    }

    #[test]
    fn a_streamed_input_opens_its_call_once_and_its_start_completes_it() {
        let mut parts = Parts::new(None);
        assert!(parts.stream_input("t-1"));
        assert!(!parts.stream_input("t-1"));
        assert!(parts.stream_input("t-2"));
        let start = parts.start_call(&json!({"tool_call_id": "t-1"}), "search");
        assert!(start.streamed && start.id == "t-1");
        assert_eq!(parts.take_streaming(), ["t-2"]);
        assert_eq!(parts.end_call(&json!({}), "search").as_deref(), Some("t-1"));
    }
}
