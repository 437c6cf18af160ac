//! The wire contract of `PROTOCOL.md` §1–2 as validated Rust types.
//!
//! Everything that crosses a process boundary is parsed here exactly once:
//! a [`SessionId`] is always a lowercase hyphenated UUID v4, an [`Event`] is
//! always a JSON object with a non-empty string `event_type`, a [`Job`] always
//! carries an object `request` with a non-empty `user_query`. Code past this
//! module never re-checks those facts.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::thread::{InvalidThreadId, ResumeEntry, ThreadId};

mod batch;
mod event;

pub use batch::batch;
pub(crate) use event::text_of;
pub use event::{Event, MalformedEvent, reserved};

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Event types with a meaning to the gateway (unknown types are forwarded unchanged).
pub mod event_type {
    pub const WORKER_ACK: &str = "worker_ack";
    pub const WORKER_HEARTBEAT: &str = "worker_heartbeat";
    pub const THOUGHT: &str = "AgentThoughtStream";
    pub const TOOL_CALL_START: &str = "AgentToolCallStart";
    pub const TOOL_CALL_END: &str = "AgentToolCallEnd";
    pub const ANSWER: &str = "FinalAnswerStream";
    pub const ANSWER_END: &str = "FinalAnswerStreamEnd";
    pub const ERROR: &str = "error";
    /// Terminal, not an error: the run waits for outside input (PROTOCOL §8).
    pub const INTERRUPT: &str = "interrupt";
    // Richer events (PROTOCOL §9), optional for workers.
    pub const STEP_START: &str = "AgentStepStart";
    pub const STEP_END: &str = "AgentStepEnd";
    /// A tool call's input streamed as JSON text, before its `AgentToolCallStart`.
    pub const TOOL_INPUT: &str = "AgentToolCallInputStream";
    pub const STATE_SNAPSHOT: &str = "StateSnapshot";
    /// An RFC 6902 patch of the state.
    pub const STATE_DELTA: &str = "StateDelta";
    pub const SOURCE: &str = "Source";
    pub const FILE: &str = "File";
    pub const DATA: &str = "Data";
    pub const USAGE: &str = "Usage";
    /// Control message, gateway → worker.
    pub const CANCEL: &str = "cancel";
}

/// Error codes carried by `error` events (PROTOCOL §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    AckTimeout,
    IdleTimeout,
    SessionTimeout,
    BrokerUnavailable,
    WorkerLost,
    WorkerError,
    Cancelled,
    SlowConsumer,
    ServerShutdown,
    HistoryLost,
    TooManyEvents,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AckTimeout => "ack_timeout",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::SessionTimeout => "session_timeout",
            ErrorCode::BrokerUnavailable => "broker_unavailable",
            ErrorCode::WorkerLost => "worker_lost",
            ErrorCode::WorkerError => "worker_error",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::ServerShutdown => "server_shutdown",
            ErrorCode::HistoryLost => "history_lost",
            ErrorCode::TooManyEvents => "too_many_events",
        }
    }
}

impl ErrorCode {
    /// Every code, for parsing one back from an `error` event.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::AckTimeout,
        ErrorCode::IdleTimeout,
        ErrorCode::SessionTimeout,
        ErrorCode::BrokerUnavailable,
        ErrorCode::WorkerLost,
        ErrorCode::WorkerError,
        ErrorCode::Cancelled,
        ErrorCode::SlowConsumer,
        ErrorCode::ServerShutdown,
        ErrorCode::HistoryLost,
        ErrorCode::TooManyEvents,
    ];

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == label)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session id: a UUID v4, always rendered lowercase and hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A fresh random id; only the gateway makes these (PROTOCOL §1).
    pub fn new() -> Self {
        SessionId(uuid::Uuid::new_v4())
    }

    /// Redis Pub/Sub channel the worker publishes this session's events on.
    pub fn event_channel(&self) -> String {
        format!("sse_session:{self}")
    }

    /// Redis Pub/Sub channel the gateway publishes control messages on.
    pub fn control_channel(&self) -> String {
        format!("sse_control:{self}")
    }

    /// Redis Stream holding this session's event log (PROTOCOL §4).
    pub fn log_key(&self) -> String {
        format!("sse_events:{self}")
    }

    /// Redis hash holding this session's metadata (PROTOCOL §4).
    pub fn meta_key(&self) -> String {
        format!("sse_session_meta:{self}")
    }

    /// Redis Stream holding this session's log's folded head
    /// (`crate::log::fold`).
    pub fn folded_key(&self) -> String {
        format!("sse_folded:{self}")
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Why a string is not a [`SessionId`].
#[derive(Debug, thiserror::Error)]
#[error("session id must be a lowercase hyphenated UUID v4, got {0:?}")]
pub struct InvalidSessionId(String);

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidSessionId(s.chars().take(64).collect());
        // Only the canonical form: a session id names Redis channels, so two
        // spellings of one UUID would be two different channels.
        let is_canonical = s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase());
        let uuid = uuid::Uuid::try_parse(s).map_err(|_| invalid())?;
        if !is_canonical || uuid.get_version_num() != 4 {
            return Err(invalid());
        }
        Ok(SessionId(uuid))
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The job the gateway dispatches to the workers (PROTOCOL §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub session_id: SessionId,
    /// The client's POST body, unchanged.
    pub request: SessionRequest,
    /// Unix milliseconds.
    pub created_at: u64,
    /// A resume (PROTOCOL §8): the interrupted run this one continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_session_id: Option<SessionId>,
    /// The interrupted run's request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_request: Option<Map<String, Value>>,
    /// The interrupts `request.resume` answers, as the worker sent them (an
    /// extension: a stateless worker learns what it asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<Vec<Value>>,
}

impl Job {
    pub fn new(session_id: SessionId, request: SessionRequest) -> Self {
        Job {
            session_id,
            request,
            created_at: unix_ms(),
            parent_session_id: None,
            parent_request: None,
            interrupts: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("in-memory JSON serialisation")
    }

    pub fn from_json(raw: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(raw)
    }
}

/// What a client may ask to happen to the worker when it disconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDisconnect {
    /// Publish `cancel` on the control channel (the default).
    #[default]
    Cancel,
    /// Let the worker finish regardless.
    Continue,
}

impl OnDisconnect {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDisconnect::Cancel => "cancel",
            OnDisconnect::Continue => "continue",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "cancel" => Some(OnDisconnect::Cancel),
            "continue" => Some(OnDisconnect::Continue),
            _ => None,
        }
    }
}

/// A validated `POST /v1/react/sessions` body.
///
/// Holds the client's object unchanged (it is forwarded to the worker as is)
/// and guarantees a non-empty string `user_query`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct SessionRequest {
    body: Map<String, Value>,
}

/// Why a request body is refused; the message becomes the 422 `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("user_query is required")]
    MissingQuery,
    #[error("user_query must be a string")]
    QueryNotString,
    #[error("user_query must not be empty")]
    EmptyQuery,
    #[error("model_alias must be a string")]
    ModelAliasNotString,
    #[error("on_disconnect must be \"cancel\" or \"continue\"")]
    BadOnDisconnect,
    #[error("thread_id: {0}")]
    BadThreadId(crate::thread::InvalidThreadId),
    #[error("{0}")]
    BadResume(String),
    #[error("resume needs the thread_id of the interrupted run")]
    ResumeWithoutThread,
    /// An AG-UI or AI SDK body that is not what its client sends.
    #[error("{0}")]
    Input(String),
}

impl SessionRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidRequest> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| InvalidRequest::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// The body as JSON (what the job carries).
    pub fn as_object(&self) -> &Map<String, Value> {
        &self.body
    }

    pub fn from_value(value: Value) -> Result<Self, InvalidRequest> {
        let Value::Object(body) = value else {
            return Err(InvalidRequest::NotObject);
        };
        // A resume continues its parent's query (the gateway fills it in).
        let resuming = body.get("resume").is_some_and(|v| !v.is_null());
        Self::validated(body, !resuming)
    }

    /// An agent-UI run that answers interrupts and asks nothing new: valid
    /// without `user_query`, which the gateway takes from the parent run.
    pub fn answering(body: Map<String, Value>) -> Result<Self, InvalidRequest> {
        Self::validated(body, false)
    }

    fn validated(body: Map<String, Value>, query_required: bool) -> Result<Self, InvalidRequest> {
        match body.get("user_query") {
            None | Some(Value::Null) if !query_required => {}
            None | Some(Value::Null) => return Err(InvalidRequest::MissingQuery),
            Some(Value::String(q)) if q.trim().is_empty() => {
                return Err(InvalidRequest::EmptyQuery);
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(InvalidRequest::QueryNotString),
        }
        if matches!(body.get("model_alias"), Some(v) if !v.is_string() && !v.is_null()) {
            return Err(InvalidRequest::ModelAliasNotString);
        }
        let request = SessionRequest { body };
        request.on_disconnect_checked()?;
        let thread = request.thread_id()?;
        if request.resume()?.is_some() && thread.is_none() {
            return Err(InvalidRequest::ResumeWithoutThread);
        }
        Ok(request)
    }

    /// `thread_id`, when the run belongs to a thread (PROTOCOL §8).
    pub fn thread_id(&self) -> Result<Option<ThreadId>, InvalidRequest> {
        match self.body.get("thread_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => id.parse().map(Some).map_err(InvalidRequest::BadThreadId),
            Some(_) => Err(InvalidRequest::BadThreadId(InvalidThreadId)),
        }
    }

    /// `resume`: the entries answering the thread's open interrupts.
    pub fn resume(&self) -> Result<Option<Vec<ResumeEntry>>, InvalidRequest> {
        match self.body.get("resume") {
            None | Some(Value::Null) => Ok(None),
            Some(value) => ResumeEntry::parse_all(value)
                .map(Some)
                .map_err(InvalidRequest::BadResume),
        }
    }

    /// Sets a field the gateway decides (`thread_id`, `resume`, `user_query`
    /// of a resume), keeping the request valid.
    pub fn set(&mut self, field: &str, value: Value) {
        self.body.insert(field.to_owned(), value);
    }

    pub fn user_query(&self) -> &str {
        self.body
            .get("user_query")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn model_alias(&self) -> Option<&str> {
        self.body.get("model_alias").and_then(Value::as_str)
    }

    pub fn on_disconnect(&self) -> OnDisconnect {
        self.on_disconnect_checked().unwrap_or_default()
    }

    fn on_disconnect_checked(&self) -> Result<OnDisconnect, InvalidRequest> {
        match self.body.get("on_disconnect") {
            None | Some(Value::Null) => Ok(OnDisconnect::Cancel),
            Some(Value::String(s)) => {
                OnDisconnect::from_label(s).ok_or(InvalidRequest::BadOnDisconnect)
            }
            Some(_) => Err(InvalidRequest::BadOnDisconnect),
        }
    }
}

impl<'de> Deserialize<'de> for SessionRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SessionRequest::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The `cancel` control message (PROTOCOL §2), gateway → worker.
pub fn cancel_message(reason: &str) -> Vec<u8> {
    Event::new(event_type::CANCEL, serde_json::json!({ "reason": reason })).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_and_rejects_non_canonical_forms() {
        let id = SessionId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert!(text.to_uppercase().parse::<SessionId>().is_err());
        assert!(text.replace('-', "").parse::<SessionId>().is_err());
        // A v1 UUID is not ours.
        assert!(
            "c232ab00-9414-11ec-b3c8-9f6bdeced846"
                .parse::<SessionId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<SessionId>().is_err());
        assert_eq!(id.event_channel(), format!("sse_session:{text}"));
        assert_eq!(id.control_channel(), format!("sse_control:{text}"));
    }

    #[test]
    fn session_request_validation() {
        assert!(matches!(
            SessionRequest::parse(b"{"),
            Err(InvalidRequest::NotJson(_))
        ));
        assert_eq!(SessionRequest::parse(b"[]"), Err(InvalidRequest::NotObject));
        assert_eq!(
            SessionRequest::parse(b"{}"),
            Err(InvalidRequest::MissingQuery)
        );
        assert_eq!(
            SessionRequest::parse(br#"{"user_query":1}"#),
            Err(InvalidRequest::QueryNotString)
        );
        assert_eq!(
            SessionRequest::parse(br#"{"user_query":"  "}"#),
            Err(InvalidRequest::EmptyQuery)
        );
        assert_eq!(
            SessionRequest::parse(br#"{"user_query":"q","model_alias":3}"#),
            Err(InvalidRequest::ModelAliasNotString)
        );
        assert_eq!(
            SessionRequest::parse(br#"{"user_query":"q","on_disconnect":"maybe"}"#),
            Err(InvalidRequest::BadOnDisconnect)
        );
        let ok = SessionRequest::parse(br#"{"user_query":"q","model_alias":"m","x":[1]}"#).unwrap();
        assert_eq!(ok.user_query(), "q");
        assert_eq!(ok.model_alias(), Some("m"));
        assert_eq!(ok.on_disconnect(), OnDisconnect::Cancel);
    }

    #[test]
    fn job_round_trips_with_the_request_unchanged() {
        let request = SessionRequest::parse(br#"{"user_query":"q","extra":{"k":true}}"#).unwrap();
        let job = Job::new(SessionId::new(), request);
        let back = Job::from_json(&job.to_json()).unwrap();
        assert_eq!(back, job);
        let v: Value = serde_json::from_slice(&job.to_json()).unwrap();
        assert_eq!(v["request"]["extra"]["k"], true);
        assert_eq!(v["session_id"], job.session_id.to_string());
    }
}
