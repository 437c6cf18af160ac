//! Coalescing text pieces for a client that reads slower than its worker
//! writes (issue 10's backpressure that understands token streams).
//!
//! Workers stream text a token or a character at a time; a client that has
//! fallen behind gains nothing from seeing each piece in its own frame. While
//! a stream's client is behind, consecutive plain pieces of one kind
//! (`AgentThoughtStream` or `FinalAnswerStream` whose payload is exactly
//! `{"char": <string>}`) wait here as one [`TextRun`] instead of being
//! framed; the run is written as a single event whose `char` is their
//! concatenation once anything else must be written or the client caught
//! up. The text is identical in fewer frames, in every output format.
//!
//! Only plain pieces merge: a piece with other payload fields or extra
//! top-level fields is written as it is (merging would drop or misplace
//! them), and control and terminal events always end the run first, so
//! order is kept. A merged event carries the log id of its last piece: a
//! follower resuming after it has seen every piece it holds.

use serde_json::json;

use crate::log::LogId;
use crate::protocol::{Event, event_type};

/// Consecutive text pieces of one event type, waiting to be written as one.
#[derive(Debug)]
pub(super) struct TextRun {
    event_type: &'static str,
    text: String,
    /// The log id of the last piece, if the pieces were logged.
    last_log_id: Option<LogId>,
}

impl TextRun {
    /// A run that starts with `event`, if it is a plain text piece.
    pub(super) fn start(event: &Event) -> Option<Self> {
        let (event_type, text) = plain_piece(event)?;
        Some(TextRun {
            event_type,
            text: text.to_owned(),
            last_log_id: event.log_id(),
        })
    }

    /// Adds `event` to the run if it is a plain piece of the same kind;
    /// `false` leaves the run as it was.
    pub(super) fn absorb(&mut self, event: &Event) -> bool {
        match plain_piece(event) {
            Some((event_type, text)) if event_type == self.event_type => {
                // Grown by a quarter rather than doubled: a run's capacity
                // counts toward its stream's budget, so it stays near its length.
                if self.text.capacity() - self.text.len() < text.len() {
                    self.text.reserve_exact(text.len().max(self.text.len() / 4));
                }
                self.text.push_str(text);
                self.last_log_id = event.log_id().or(self.last_log_id);
                true
            }
            _ => false,
        }
    }

    /// Bytes of text the run holds (what it costs while it waits).
    pub(super) fn len(&self) -> usize {
        self.text.len()
    }

    /// The one event the run stands for.
    pub(super) fn into_event(self) -> Event {
        let event = Event::new(self.event_type, json!({ "char": self.text }));
        match self.last_log_id {
            Some(id) => event.logged_as(id),
            None => event,
        }
    }
}

/// The kind and text of a plain text piece (see [`Event::plain_text`]).
fn plain_piece(event: &Event) -> Option<(&'static str, &str)> {
    let kind = match event.event_type() {
        event_type::THOUGHT => event_type::THOUGHT,
        event_type::ANSWER => event_type::ANSWER,
        _ => return None,
    };
    Some((kind, event.plain_text()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Event {
        Event::parse(json.as_bytes(), 1 << 20).unwrap()
    }

    #[test]
    fn plain_pieces_of_one_kind_merge_into_one_event_with_the_last_id() {
        let first = parse(r#"{"event_type":"FinalAnswerStream","payload":{"char":"a\"\n"}}"#)
            .logged_as(LogId::new(1, 0));
        let mut run = TextRun::start(&first).unwrap();
        let second = parse(r#"{"event_type":"FinalAnswerStream","payload":{"char":"é"}}"#)
            .logged_as(LogId::new(1, 1));
        assert!(run.absorb(&second));
        assert_eq!(run.len(), "a\"\né".len());
        let merged = run.into_event();
        assert_eq!(merged.log_id(), Some(LogId::new(1, 1)));
        assert_eq!(
            std::str::from_utf8(merged.json()).unwrap(),
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"a\"\né"}}"#
        );
    }

    #[test]
    fn other_kinds_fields_and_events_do_not_merge() {
        let answer = parse(r#"{"event_type":"FinalAnswerStream","payload":{"char":"a"}}"#);
        let mut run = TextRun::start(&answer).unwrap();
        for other in [
            r#"{"event_type":"AgentThoughtStream","payload":{"char":"b"}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b","index":1}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b"},"trace":1}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":1}}"#,
            r#"{"event_type":"FinalAnswerStreamEnd","payload":{}}"#,
            r#"{"event_type":"AgentToolCallStart","payload":{"char":"b"}}"#,
        ] {
            assert!(!run.absorb(&parse(other)), "{other}");
        }
        assert_eq!(run.len(), 1);
        assert!(TextRun::start(&parse(r#"{"event_type":"error","payload":{}}"#)).is_none());
    }
}
