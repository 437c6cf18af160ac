//! Batches on a session's event channel. A worker's SDK sends the events
//! that queued up while its last append was in flight in one call, and the
//! Redis log publishes what one call appended as one message: a JSON array
//! of events, each with its own `log_id` — but only to sessions whose
//! gateway wrote `batches` in their metadata, so a gateway that predates
//! batches never sees one from a session it created. Anything else on the
//! channel is one event (or malformed, and skipped as such).

use serde_json::value::RawValue;

/// The events of a batch message, borrowed from it; `None` when `raw` is
/// not a JSON array (one event, or not JSON at all).
pub fn batch(raw: &[u8]) -> Option<Vec<&RawValue>> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'[' {
        return None;
    }
    serde_json::from_slice(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_is_a_batch_of_its_elements_as_sent() {
        let raw =
            br#" [{"event_type":"A","log_id":"1-0"}, {"event_type":"B","payload":{"x":[1]}}]"#;
        let events: Vec<&str> = batch(raw).unwrap().iter().map(|e| e.get()).collect();
        assert_eq!(
            events,
            [
                r#"{"event_type":"A","log_id":"1-0"}"#,
                r#"{"event_type":"B","payload":{"x":[1]}}"#
            ]
        );
    }

    #[test]
    fn anything_else_is_not_a_batch() {
        assert!(batch(br#"{"event_type":"A"}"#).is_none());
        assert!(batch(b"[not json").is_none());
        assert!(batch(b"").is_none());
        assert_eq!(batch(b"[]").map(|b| b.len()), Some(0));
    }
}
