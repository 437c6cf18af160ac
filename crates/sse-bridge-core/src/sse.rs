//! Server-Sent Events framing for `POST /v1/react/sessions` (PROTOCOL §3.5–3.6).
//!
//! Exactly `data: <compact json>\n\n` per event and `: ping\n\n` as the
//! heartbeat comment: no `event:`/`id:` lines, so a client that splits on
//! `\n\n` and tests `startsWith('data: ')` reads every event. Compact JSON
//! escapes every newline inside strings, so a payload cannot break a frame.

use bytes::{BufMut, BytesMut};

use crate::protocol::Event;

/// The heartbeat comment.
pub const PING: &[u8] = b": ping\n\n";

/// Appends one `data:` frame for `event` to `out`.
pub fn write_event(out: &mut BytesMut, event: &Event) {
    out.put_slice(b"data: ");
    out.put_slice(event.json());
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_are_exactly_data_json_blank_line() {
        let mut out = BytesMut::new();
        write_event(
            &mut out,
            &Event::new("FinalAnswerStream", json!({"char": "a\n\ndata: x"})),
        );
        assert_eq!(
            &out[..],
            b"data: {\"event_type\":\"FinalAnswerStream\",\"payload\":{\"char\":\"a\\n\\ndata: x\"}}\n\n"
        );
    }
}
