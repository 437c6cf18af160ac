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
        }
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

/// A worker event: a JSON object with a non-empty string `event_type`.
///
/// Kept as its compact JSON text: the whole object, extra top-level fields
/// included (PROTOCOL §2), in the publisher's key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    event_type: Box<str>,
    /// Compact JSON: no whitespace outside strings, so no raw newline at all
    /// (JSON forbids unescaped control characters inside strings).
    json: Box<[u8]>,
}

/// Why a channel message is not an [`Event`]; each variant is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedEvent {
    #[error("message exceeds max_event_bytes")]
    TooLarge,
    #[error("message is not valid JSON")]
    NotJson,
    #[error("message is not a JSON object")]
    NotObject,
    #[error("message has no non-empty string event_type")]
    NoEventType,
}

impl MalformedEvent {
    pub fn label(self) -> &'static str {
        match self {
            MalformedEvent::TooLarge => "too_large",
            MalformedEvent::NotJson => "not_json",
            MalformedEvent::NotObject => "not_object",
            MalformedEvent::NoEventType => "no_event_type",
        }
    }
}

/// The one field the gateway reads; serde still validates the rest of the
/// object (ignored values are parsed, not skipped blindly).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event_type: Option<&'a serde_json::value::RawValue>,
}

impl Event {
    /// Builds an event from its parts (what workers and the gateway itself emit).
    pub fn new(event_type: &str, payload: Value) -> Self {
        #[derive(Serialize)]
        struct Parts<'a> {
            event_type: &'a str,
            payload: Value,
        }
        let json = serde_json::to_vec(&Parts {
            event_type,
            payload,
        })
        .expect("serialising a Value cannot fail");
        Event {
            event_type: event_type.into(),
            json: json.into(),
        }
    }

    /// A gateway-made terminal `error` event.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Event::new(
            event_type::ERROR,
            serde_json::json!({ "error": message.into(), "code": code.as_str() }),
        )
    }

    /// Parses one raw channel message, refusing anything over `max_bytes`.
    ///
    /// This is the gateway's per-event hot path: it validates the whole
    /// message with serde_json without building a tree, reads only
    /// `event_type`, and keeps the text minus insignificant whitespace —
    /// the same compact JSON a parse-and-reserialise round trip yields, at a
    /// fraction of the cost (`cargo bench -p sse-bridge-core`).
    pub fn parse(raw: &[u8], max_bytes: usize) -> Result<Self, MalformedEvent> {
        if raw.len() > max_bytes {
            return Err(MalformedEvent::TooLarge);
        }
        // serde_json does not check UTF-8 inside strings it ignores.
        std::str::from_utf8(raw).map_err(|_| MalformedEvent::NotJson)?;
        // Only objects: serde would also map an array onto the struct.
        if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
                Ok(_) => MalformedEvent::NotObject,
                Err(_) => MalformedEvent::NotJson,
            });
        }
        let envelope: Envelope = serde_json::from_slice(raw).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => MalformedEvent::NoEventType,
            _ => MalformedEvent::NotJson,
        })?;
        let event_type = envelope
            .event_type
            .and_then(|raw| serde_json::from_str::<std::borrow::Cow<str>>(raw.get()).ok())
            .filter(|t| !t.is_empty())
            .ok_or(MalformedEvent::NoEventType)?;
        Ok(Event {
            event_type: event_type.into(),
            json: minify(raw).into(),
        })
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The compact JSON text of the event.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    pub fn to_json(&self) -> Vec<u8> {
        self.json.to_vec()
    }
}

/// Drops the whitespace between the tokens of valid JSON, copying the runs
/// in between whole.
fn minify(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut run_start, mut in_string, mut escaped) = (0, false, false);
    for (i, &byte) in raw.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
            out.extend_from_slice(&raw[run_start..i]);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&raw[run_start..]);
    out
}

/// The job the gateway dispatches to the workers (PROTOCOL §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub session_id: SessionId,
    /// The client's POST body, unchanged.
    pub request: SessionRequest,
    /// Unix milliseconds.
    pub created_at: u64,
}

impl Job {
    pub fn new(session_id: SessionId, request: SessionRequest) -> Self {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Job {
            session_id,
            request,
            created_at,
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
}

impl SessionRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidRequest> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| InvalidRequest::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self, InvalidRequest> {
        let Value::Object(body) = value else {
            return Err(InvalidRequest::NotObject);
        };
        match body.get("user_query") {
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
        Ok(request)
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
            Some(Value::String(s)) if s == "cancel" => Ok(OnDisconnect::Cancel),
            Some(Value::String(s)) if s == "continue" => Ok(OnDisconnect::Continue),
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
    fn event_parse_accepts_objects_with_event_type_and_keeps_extra_fields() {
        let e = Event::parse(br#"{"event_type":"X","payload":{"a":1},"trace":"t"}"#, 1024).unwrap();
        assert_eq!(e.event_type(), "X");
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"event_type":"X","payload":{"a":1},"trace":"t"}"#
        );
    }

    #[test]
    fn event_parse_names_what_is_wrong() {
        assert_eq!(Event::parse(b"nope", 1024), Err(MalformedEvent::NotJson));
        assert_eq!(Event::parse(b"[1]", 1024), Err(MalformedEvent::NotObject));
        assert_eq!(
            Event::parse(br#"{"payload":{}}"#, 1024),
            Err(MalformedEvent::NoEventType)
        );
        assert_eq!(
            Event::parse(br#"{"event_type":""}"#, 1024),
            Err(MalformedEvent::NoEventType)
        );
        assert_eq!(
            Event::parse(br#"{"event_type":7}"#, 1024),
            Err(MalformedEvent::NoEventType)
        );
        assert_eq!(
            Event::parse(br#"{"event_type":"X"}"#, 5),
            Err(MalformedEvent::TooLarge)
        );
    }

    #[test]
    fn raw_control_characters_inside_strings_are_not_json() {
        let raw = b"{\"event_type\":\"X\",\"payload\":{\"char\":\"a\nb\"}}";
        assert_eq!(Event::parse(raw, 1024), Err(MalformedEvent::NotJson));
        let raw = b"{\"event_type\":\"X\",\"payload\":{\"char\":\"a\rb\"}}";
        assert_eq!(Event::parse(raw, 1024), Err(MalformedEvent::NotJson));
    }

    #[test]
    fn invalid_utf8_or_trailing_garbage_is_not_json() {
        assert_eq!(
            Event::parse(b"{\"event_type\":\"X\",\"p\":\"\xff\"}", 1024),
            Err(MalformedEvent::NotJson)
        );
        assert_eq!(
            Event::parse(br#"{"event_type":"X"} {}"#, 1024),
            Err(MalformedEvent::NotJson)
        );
        assert_eq!(
            Event::parse(br#"{"event_type":"X","p":[1,}"#, 1024),
            Err(MalformedEvent::NotJson)
        );
    }

    #[test]
    fn minified_json_matches_a_reserialisation() {
        let raw = br#" { "event_type" : "X" , "payload" : { "s" : "a \" b\\" , "n" : [ 1 , 2.5 , true , null ] } } "#;
        let event = Event::parse(raw, 1024).unwrap();
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<Value>(raw).unwrap()).unwrap();
        assert_eq!(event.json(), &reserialised[..]);
        assert_eq!(Event::parse(event.json(), 1024).unwrap(), event);
    }

    #[test]
    fn reserialised_event_has_no_raw_newline() {
        let raw = b"{\n  \"event_type\": \"FinalAnswerStream\",\n  \"payload\": {\"char\": \"a\\n\\ndata: b\"}\n}";
        let json = Event::parse(raw, 1024).unwrap().to_json();
        assert!(!json.contains(&b'\n'));
        assert_eq!(
            json,
            br#"{"event_type":"FinalAnswerStream","payload":{"char":"a\n\ndata: b"}}"#
        );
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
