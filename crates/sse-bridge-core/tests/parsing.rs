//! Properties of the parsers and the framing, for any input: no input
//! panics a parser, and any JSON payload a worker sends comes out of the
//! SSE framing, read by a simple client parser, as the same JSON.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;
use sse_bridge_core::format::{Encoder, Native};
use sse_bridge_core::log::LogId;
use sse_bridge_core::protocol::{Event, SessionRequest};
use sse_bridge_core::sse::Framing;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        // Any text: newlines, `data:`, quotes, controls, non-ASCII.
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a minimal browser client does: split on a blank line, keep the
/// `data: ` line of each frame.
fn client_parse(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .unwrap()
        .split_terminator("\n\n")
        .filter_map(|frame| frame.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

proptest! {
    #[test]
    fn any_payload_survives_framing(payload in json_value(), event_type in "[A-Za-z_]{1,20}") {
        // As a worker publishes it (pretty-printed, newlines and all) ...
        let sent = serde_json::json!({"event_type": event_type, "payload": payload});
        let raw = serde_json::to_vec_pretty(&sent).unwrap();
        let event = Event::parse(&raw, usize::MAX).unwrap();
        let mut out = BytesMut::new();
        Native::new(Framing::WithIds).event(&event.logged_as(LogId::new(1, 2)), &mut out);
        // ... and as a client reads it: the same JSON, compact (compared as
        // text: parsing floats back is lossy in the test's JSON library).
        prop_assert_eq!(client_parse(&out), vec![serde_json::to_string(&sent).unwrap()]);
    }

    #[test]
    fn no_input_panics_the_parsers(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Event::parse(&raw, 1 << 20);
        let _ = SessionRequest::parse(&raw);
        if let Ok(text) = std::str::from_utf8(&raw) {
            let _ = text.parse::<LogId>();
        }
    }

    #[test]
    fn log_ids_round_trip(ms in any::<u64>(), seq in any::<u64>()) {
        let id = LogId::new(ms, seq);
        prop_assert_eq!(id.to_string().parse::<LogId>(), Ok(id));
    }

    #[test]
    fn json_shaped_inputs_do_not_panic_the_parsers(value in json_value()) {
        let raw = serde_json::to_vec(&value).unwrap();
        let _ = Event::parse(&raw, 1 << 20);
        let _ = SessionRequest::from_value(value.clone());
        let _ = sse_bridge_core::format::AgUiRun::parse(value.clone());
        let _ = sse_bridge_core::format::AiSdkChat::parse(value);
    }
}
