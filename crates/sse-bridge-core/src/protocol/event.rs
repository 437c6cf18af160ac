//! [`Event`]: one worker message, parsed once on the gateway's hot path.
//!
//! Parsing validates the whole JSON object without building a tree, reads
//! `event_type` and the reserved envelope fields (`log_id`, `attempt`;
//! PROTOCOL §4) and keeps the compact text *without* the reserved fields, so
//! what a client receives is byte for byte what the worker meant, on every
//! endpoint. The text of a thought or answer piece (most of a stream's
//! events) is read the first time an encoder or the coalescing asks, and
//! kept with the event for the others: the native format, which needs only
//! the text as it is, never pays for it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ErrorCode, event_type};
use crate::log::LogId;

/// Reserved envelope fields (PROTOCOL §4): transport metadata that the
/// gateway removes before forwarding.
pub mod reserved {
    /// The event's entry id in the session's log, added by the log on publish.
    pub const LOG_ID: &str = "log_id";
    /// The id of the job delivery (attempt) that produced the event.
    pub const ATTEMPT: &str = "attempt";
}

/// A worker event: a JSON object with a non-empty string `event_type`.
///
/// Kept as its compact JSON text: the whole object, extra top-level fields
/// included (PROTOCOL §2), in the publisher's key order, minus the reserved
/// envelope fields, which are read into [`Event::log_id`] and
/// [`Event::attempt`] instead.
#[derive(Debug, Clone)]
pub struct Event {
    event_type: Box<str>,
    /// Compact JSON: no whitespace outside strings, so no raw newline at all
    /// (JSON forbids unescaped control characters inside strings).
    json: Box<[u8]>,
    log_id: Option<LogId>,
    attempt: Option<Box<str>>,
    /// Idempotency key of a worker's publish, stored with its log entry (not
    /// part of the JSON): a retry after an ambiguous failure finds it.
    key: Option<Box<str>>,
    /// A thought or answer piece's text, once read (see [`Event::text`]).
    piece: OnceLock<Option<TextPiece>>,
}

/// Events are equal by what they are, whether or not their text was read yet.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.event_type,
            &self.json,
            self.log_id,
            &self.attempt,
            &self.key,
        ) == (
            &other.event_type,
            &other.json,
            other.log_id,
            &other.attempt,
            &other.key,
        )
    }
}

impl Eq for Event {}

/// The text of a thought or answer piece, read once per event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextPiece {
    /// `payload.char` as text: a string as it is, nothing as empty, any
    /// other value as its JSON.
    text: Box<str>,
    /// The event is exactly `{"event_type", "payload": {"char": <string>}}`.
    plain: bool,
}

impl TextPiece {
    /// The piece of a parsed piece's compact `json`.
    fn read(json: &[u8]) -> Option<Self> {
        let mut reader = serde_json::Deserializer::from_slice(json);
        let envelope = (&mut reader)
            .deserialize_map(EnvelopeVisitor { input: json })
            .ok()?;
        Some(Self::of(envelope.payload, envelope.others))
    }

    /// The piece whose payload is `payload`, with `others` top-level
    /// members besides its type and payload.
    fn of(payload: Option<&RawValue>, others: usize) -> Self {
        let members = payload.and_then(|raw| {
            let mut reader = serde_json::Deserializer::from_str(raw.get());
            (&mut reader).deserialize_any(PayloadVisitor).ok()
        });
        let Some(PayloadMembers {
            count,
            char: Some(char),
        }) = members
        else {
            return TextPiece {
                text: "".into(),
                plain: false,
            };
        };
        let char = char.get();
        let is_string = char.starts_with('"');
        let text: Box<str> = if is_string {
            match char[1..char.len() - 1].contains('\\') {
                // Validated JSON: a string without escapes is its own text.
                false => char[1..char.len() - 1].into(),
                true => serde_json::from_str::<Cow<str>>(char)
                    .map(Into::into)
                    .unwrap_or_default(),
            }
        } else {
            let value = serde_json::from_str(char).unwrap_or(Value::Null);
            text_of(&value).into()
        };
        TextPiece {
            text,
            plain: is_string && count == 1 && others == 0,
        }
    }

    /// The piece of a gateway-made event (see [`Event::new`]).
    fn of_value(event_type: &str, payload: &Value) -> Option<Self> {
        if !is_piece(event_type) {
            return None;
        }
        let char = payload.get("char");
        let text = text_of(char.unwrap_or(&Value::Null)).into();
        let plain = matches!(char, Some(Value::String(_)))
            && payload
                .as_object()
                .is_some_and(|members| members.len() == 1);
        Some(TextPiece { text, plain })
    }
}

/// A payload field as text: strings as they are, nothing as empty,
/// anything else as JSON.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_piece(kind: &str) -> bool {
    matches!(kind, event_type::THOUGHT | event_type::ANSWER)
}

/// What a piece's payload holds: how many members, and its `char`.
struct PayloadMembers<'a> {
    count: usize,
    char: Option<&'a RawValue>,
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = PayloadMembers<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = PayloadMembers {
            count: 0,
            char: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            members.count += 1;
            if key == "char" {
                members.char = Some(value);
            }
        }
        Ok(members)
    }
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
    #[error("message has a log_id that is not a stream id or an attempt that is not a string")]
    BadEnvelope,
}

impl MalformedEvent {
    pub fn label(self) -> &'static str {
        match self {
            MalformedEvent::TooLarge => "too_large",
            MalformedEvent::NotJson => "not_json",
            MalformedEvent::NotObject => "not_object",
            MalformedEvent::NoEventType => "no_event_type",
            MalformedEvent::BadEnvelope => "bad_envelope",
        }
    }
}

/// The top-level members the gateway reads, and where the reserved ones
/// sit in the input so they can be cut out. Every other value is still
/// validated by serde_json (read as a raw value, not skipped blindly).
#[derive(Default)]
struct Envelope<'a> {
    event_type: Option<&'a RawValue>,
    log_id: Option<&'a RawValue>,
    attempt: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
    /// Members besides the event type, the reserved ones and one payload.
    others: usize,
    /// Byte ranges of the reserved members, each with its leading comma (or,
    /// for the first member, everything after the `{`).
    cuts: Vec<Range<usize>>,
    duplicate: bool,
}

struct EnvelopeVisitor<'a> {
    input: &'a [u8],
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'de> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        let base = self.input.as_ptr() as usize;
        // The end of the previous member's value; before the first member,
        // just after the opening brace.
        let mut previous_end = self
            .input
            .iter()
            .position(|&b| b == b'{')
            .map_or(0, |i| i + 1);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            let end = value.get().as_ptr() as usize - base + value.get().len();
            let slot = match key.as_ref() {
                "event_type" => &mut envelope.event_type,
                reserved::LOG_ID => &mut envelope.log_id,
                reserved::ATTEMPT => &mut envelope.attempt,
                "payload" if envelope.payload.is_none() => {
                    envelope.payload = Some(value);
                    previous_end = end;
                    continue;
                }
                _ => {
                    envelope.others += 1;
                    previous_end = end;
                    continue;
                }
            };
            envelope.duplicate |= slot.replace(value).is_some();
            if key != "event_type" {
                envelope.cuts.push(previous_end..end);
            }
            previous_end = end;
        }
        Ok(envelope)
    }
}

impl Event {
    /// Builds an event from its parts (what workers and the gateway itself emit).
    pub fn new(event_type: &str, payload: Value) -> Self {
        #[derive(Serialize)]
        struct Parts<'a> {
            event_type: &'a str,
            payload: Value,
        }
        let piece = OnceLock::from(TextPiece::of_value(event_type, &payload));
        let json = serde_json::to_vec(&Parts {
            event_type,
            payload,
        })
        .expect("serialising a Value cannot fail");
        Event {
            event_type: event_type.into(),
            json: json.into(),
            log_id: None,
            attempt: None,
            key: None,
            piece,
        }
    }

    /// A gateway-made terminal `error` event.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Event::new(
            event_type::ERROR,
            serde_json::json!({ "error": message.into(), "code": code.as_str() }),
        )
    }

    /// The same event, sent by `attempt` (see [`Event::to_wire`]).
    pub fn from_attempt(mut self, attempt: Option<&str>) -> Self {
        self.attempt = attempt.map(Into::into);
        self
    }

    /// The same event with an idempotency key (see [`Event::key`]).
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The idempotency key a worker gave this publish, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The same event, read from the log under `id`.
    pub fn logged_as(mut self, id: LogId) -> Self {
        self.log_id = Some(id);
        self
    }

    /// Parses one raw channel message, refusing anything over `max_bytes`.
    ///
    /// This is the gateway's per-event hot path: it validates the whole
    /// message with serde_json without building a tree, reads only
    /// `event_type` and the reserved fields, and keeps the text minus
    /// insignificant whitespace and reserved fields — the same compact JSON
    /// a parse-and-reserialise round trip yields, at a fraction of the cost
    /// (`cargo bench -p sse-bridge-core`).
    pub fn parse(raw: &[u8], max_bytes: usize) -> Result<Self, MalformedEvent> {
        if raw.len() > max_bytes {
            return Err(MalformedEvent::TooLarge);
        }
        // serde_json does not check UTF-8 inside strings it ignores.
        std::str::from_utf8(raw).map_err(|_| MalformedEvent::NotJson)?;
        // Only objects: a map visitor would reject an array, but as a type error.
        if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
                Ok(_) => MalformedEvent::NotObject,
                Err(_) => MalformedEvent::NotJson,
            });
        }
        let mut reader = serde_json::Deserializer::from_slice(raw);
        let envelope = (&mut reader)
            .deserialize_map(EnvelopeVisitor { input: raw })
            .and_then(|envelope| reader.end().map(|()| envelope))
            .map_err(|_| MalformedEvent::NotJson)?;
        if envelope.duplicate {
            return Err(MalformedEvent::BadEnvelope);
        }
        let event_type = envelope
            .event_type
            .and_then(|raw| serde_json::from_str::<Cow<str>>(raw.get()).ok())
            .filter(|t| !t.is_empty())
            .ok_or(MalformedEvent::NoEventType)?;
        let log_id = match envelope.log_id {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<Cow<str>>(raw.get())
                    .ok()
                    .and_then(|id| id.parse::<LogId>().ok())
                    .ok_or(MalformedEvent::BadEnvelope)?,
            ),
        };
        let attempt = match envelope.attempt {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<Cow<str>>(raw.get())
                    .map_err(|_| MalformedEvent::BadEnvelope)?
                    .into(),
            ),
        };
        let json = if envelope.cuts.is_empty() {
            minify(raw)
        } else {
            without(raw, &envelope.cuts)
        };
        Ok(Event {
            event_type: event_type.into(),
            json: json.into(),
            log_id,
            attempt,
            key: None,
            piece: OnceLock::new(),
        })
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The compact JSON text a client receives (no reserved fields).
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The text of a thought or answer piece (`AgentThoughtStream`,
    /// `FinalAnswerStream`): its `payload.char`, a string as it is, absent
    /// or null as empty, any other value as JSON; `None` for other events.
    pub fn text(&self) -> Option<&str> {
        self.piece().map(|piece| &*piece.text)
    }

    /// The text of a *plain* piece, one that is exactly `{"event_type",
    /// "payload": {"char": <string>}}`: pieces that may be merged.
    pub fn plain_text(&self) -> Option<&str> {
        self.piece()
            .filter(|piece| piece.plain)
            .map(|piece| &*piece.text)
    }

    /// Bytes the event holds on the heap, for budgets.
    pub fn heap_bytes(&self) -> usize {
        let text = self.piece.get().and_then(Option::as_ref);
        self.json.len() + text.map_or(0, |piece| piece.text.len())
    }

    fn piece(&self) -> Option<&TextPiece> {
        if !is_piece(&self.event_type) {
            return None;
        }
        self.piece
            .get_or_init(|| TextPiece::read(&self.json))
            .as_ref()
    }

    pub fn to_json(&self) -> Vec<u8> {
        self.json.to_vec()
    }

    /// The entry id in the session's log, for events that came through it.
    pub fn log_id(&self) -> Option<LogId> {
        self.log_id
    }

    /// The attempt that sent the event, if it said.
    pub fn attempt(&self) -> Option<&str> {
        self.attempt.as_deref()
    }

    /// The text a worker sends: the event plus its `attempt` (never a
    /// `log_id`: the log assigns that).
    pub fn to_wire(&self) -> Vec<u8> {
        let Some(attempt) = &self.attempt else {
            return self.to_json();
        };
        let mut wire = self.json[..self.json.len() - 1].to_vec();
        wire.extend_from_slice(b",\"attempt\":");
        serde_json::to_writer(&mut wire, attempt).expect("writing a string to a Vec");
        wire.push(b'}');
        wire
    }

    /// The event's `payload` as JSON (`Null` when absent).
    pub fn payload(&self) -> Value {
        serde_json::from_slice::<Value>(&self.json)
            .ok()
            .and_then(|mut v| v.get_mut("payload").map(Value::take))
            .unwrap_or(Value::Null)
    }

    /// The code of an `error` event's payload, when it is one the gateway knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        #[derive(serde::Deserialize)]
        struct ErrorEvent<'a> {
            #[serde(borrow)]
            payload: Option<ErrorPayload<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorPayload<'a> {
            code: Option<&'a str>,
        }
        let code = serde_json::from_slice::<ErrorEvent>(&self.json)
            .ok()
            .and_then(|e| e.payload?.code);
        code.and_then(ErrorCode::from_label)
    }

    /// `FinalAnswerStreamEnd`, `error` or `interrupt`: the session's last event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.event_type(),
            event_type::ANSWER_END | event_type::ERROR | event_type::INTERRUPT
        )
    }
}

/// `raw` minified, with the byte ranges `cuts` (ascending) left out.
fn without(raw: &[u8], cuts: &[Range<usize>]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(raw.len());
    let mut from = 0;
    for cut in cuts {
        kept.extend_from_slice(&raw[from..cut.start]);
        from = cut.end;
    }
    kept.extend_from_slice(&raw[from..]);
    let mut json = minify(&kept);
    // A cut first member leaves the comma that followed it: `{,"a":1}`.
    if json.starts_with(b"{,") {
        json.remove(1);
    }
    json
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_pieces_text_is_read_once_and_plain_only_when_nothing_else_is_there() {
        let parse = |raw: &str| Event::parse(raw.as_bytes(), 1024).unwrap();
        let piece = parse(
            r#"{ "payload" : {"char":"a\"\u00e9"}, "event_type":"FinalAnswerStream","log_id":"1-2"}"#,
        );
        assert_eq!(piece.text(), Some("a\"é"));
        assert_eq!(
            piece.plain_text(),
            Some("a\"é"),
            "reserved fields do not count"
        );
        for (raw, text) in [
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":"x","seq":1}}"#,
                "x",
            ),
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":"x"},"trace":1}"#,
                "x",
            ),
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":7}}"#,
                "7",
            ),
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":null}}"#,
                "",
            ),
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":{"a": [1, 2]}}}"#,
                r#"{"a":[1,2]}"#,
            ),
            (r#"{"event_type":"AgentThoughtStream","payload":"x"}"#, ""),
            (r#"{"event_type":"AgentThoughtStream"}"#, ""),
            (
                r#"{"event_type":"AgentThoughtStream","payload":{"char":"x"},"payload":{"char":"y"}}"#,
                "x",
            ),
        ] {
            let event = parse(raw);
            assert_eq!(event.text(), Some(text), "{raw}");
            assert_eq!(event.plain_text(), None, "{raw}");
            // What the encoders read from the payload before (`text_of`).
            let from_payload = text_of(&event.payload()["char"]);
            let duplicate = raw.contains(r#""payload":{"char":"y"}"#);
            assert!(duplicate || from_payload == text, "{raw}");
        }
        assert_eq!(
            parse(r#"{"event_type":"X","payload":{"char":"x"}}"#).text(),
            None
        );
        let made = Event::new("AgentThoughtStream", serde_json::json!({"char": "m"}));
        assert_eq!((made.text(), made.plain_text()), (Some("m"), Some("m")));
        let made = Event::new(
            "AgentThoughtStream",
            serde_json::json!({"char": "m", "i": 1}),
        );
        assert_eq!((made.text(), made.plain_text()), (Some("m"), None));
        assert_eq!(made.heap_bytes(), made.json().len() + 1);
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
    fn reserved_fields_are_read_and_cut_wherever_they_are() {
        let cases: [&[u8]; 4] = [
            br#"{"event_type":"X","payload":{"a":1},"attempt":"w1","log_id":"5-1"}"#,
            br#"{"log_id":"5-1","attempt":"w1","event_type":"X","payload":{"a":1}}"#,
            br#"{ "attempt" : "w1" , "event_type" : "X" , "log_id" : "5-1" , "payload" : { "a" : 1 } }"#,
            br#"{"event_type":"X","log_id":"5-1","payload":{"a":1},"attempt":"w1"}"#,
        ];
        for raw in cases {
            let e = Event::parse(raw, 1024).unwrap();
            assert_eq!(
                e.json(),
                br#"{"event_type":"X","payload":{"a":1}}"#,
                "{}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(e.log_id(), Some(LogId::new(5, 1)));
            assert_eq!(e.attempt(), Some("w1"));
        }
    }

    #[test]
    fn reserved_names_inside_payloads_are_left_alone() {
        let raw = br#"{"event_type":"X","payload":{"log_id":"x","attempt":7}}"#;
        let e = Event::parse(raw, 1024).unwrap();
        assert_eq!(e.json(), &raw[..]);
        assert_eq!((e.log_id(), e.attempt()), (None, None));
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        for raw in [
            &br#"{"event_type":"X","log_id":"nope"}"#[..],
            br#"{"event_type":"X","log_id":5}"#,
            br#"{"event_type":"X","attempt":1}"#,
            br#"{"event_type":"X","attempt":"a","attempt":"b"}"#,
        ] {
            assert_eq!(Event::parse(raw, 1024), Err(MalformedEvent::BadEnvelope));
        }
    }

    #[test]
    fn wire_form_carries_the_attempt_and_parses_back() {
        let e = Event::new("X", serde_json::json!({"c": "\""})).from_attempt(Some("a\"1"));
        let wire = e.to_wire();
        assert_eq!(
            wire,
            br#"{"event_type":"X","payload":{"c":"\""},"attempt":"a\"1"}"#
        );
        let back = Event::parse(&wire, 1024).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            Event::new("X", Value::Null).to_wire(),
            br#"{"event_type":"X","payload":null}"#
        );
    }
}
