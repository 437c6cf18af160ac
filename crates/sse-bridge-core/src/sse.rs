//! Server-Sent Events framing (PROTOCOL §3.5–3.6, §4).
//!
//! `POST /v1/react/sessions` gets exactly `data: <compact json>\n\n` per
//! event ([`Framing::DataOnly`]): no `event:`/`id:` lines, so a client that
//! splits on `\n\n` and tests `startsWith('data: ')` reads every event.
//! `GET …/events` serves `EventSource`s ([`Framing::WithIds`]): a logged
//! event's frame starts with `id: <log id>`, so the browser resumes from it.
//! `: ping\n\n` is the heartbeat comment. Compact JSON escapes every newline
//! inside strings, so a payload cannot break a frame. LF only, never CRLF.

use std::time::Duration;

use bytes::{BufMut, BytesMut};

use crate::protocol::Event;

/// The heartbeat comment.
pub const PING: &[u8] = b": ping\n\n";

/// Whether frames carry the event's log id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    DataOnly,
    WithIds,
}

/// Appends one frame for `event` to `out`.
pub fn write_event(out: &mut BytesMut, event: &Event, framing: Framing) {
    if let (Framing::WithIds, Some(id)) = (framing, event.log_id()) {
        out.put_slice(format!("id: {id}\n").as_bytes());
    }
    out.put_slice(b"data: ");
    out.put_slice(event.json());
    out.put_slice(b"\n\n");
}

/// Appends the `retry:` hint: how long an `EventSource` waits before it
/// reconnects.
pub fn write_retry(out: &mut BytesMut, delay: Duration) {
    out.put_slice(format!("retry: {}\n\n", delay.as_millis()).as_bytes());
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
            Framing::DataOnly,
        );
        assert_eq!(
            &out[..],
            b"data: {\"event_type\":\"FinalAnswerStream\",\"payload\":{\"char\":\"a\\n\\ndata: x\"}}\n\n"
        );
    }

    #[test]
    fn logged_events_carry_their_id_for_event_source_clients() {
        let event = Event::new("X", json!({})).logged_as(crate::log::LogId::new(17, 2));
        let mut out = BytesMut::new();
        write_event(&mut out, &event, Framing::WithIds);
        write_event(&mut out, &event, Framing::DataOnly);
        write_retry(&mut out, Duration::from_millis(1500));
        assert_eq!(
            &out[..],
            &b"id: 17-2\ndata: {\"event_type\":\"X\",\"payload\":{}}\n\ndata: {\"event_type\":\"X\",\"payload\":{}}\n\nretry: 1500\n\n"[..]
        );
    }
}
