//! Sessions as Durable Streams: a session's log read as a JSON-mode stream
//! (`/v1/stream/sessions/{id}`), without I/O.
//!
//! * Offsets are the log's ids ([`LogId`]), shown as `<ms>_<seq>` with both
//!   parts zero-padded to 20 digits (every `u64` fits): strictly increasing
//!   with the log, sorting as strings, and never confused with a stored
//!   stream's offsets (whose parts are 16 digits). The zero id is the start.
//! * A page is the events after an offset as one JSON array, each event the
//!   compact JSON a follower of `GET /v1/react/sessions/{id}/events` gets
//!   (reserved envelope fields left out), in the log's order; like that
//!   follower, a reader sees one `worker_ack` — the log's first entry — and
//!   not the acks of attempts that came later.
//! * The stream is closed once a read reaches the session's terminal event.

use std::fmt;

use bytes::Bytes;

use super::offset::BadOffset;
use crate::log::{LogEntry, LogId};
use crate::protocol::{Event, event_type};

/// Digits of each part of an offset.
const WIDTH: usize = 20;

/// A session offset: the id of the last log entry a reader has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogOffset(pub LogId);

impl fmt::Display for LogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}_{:020}", self.0.ms, self.0.seq)
    }
}

impl LogOffset {
    /// Parses an offset this module wrote (exactly; nothing else is one).
    pub fn parse(text: &str) -> Result<LogOffset, BadOffset> {
        let bad = || BadOffset(text.chars().take(64).collect());
        let (ms, seq) = text.split_once('_').ok_or_else(bad)?;
        let part = |s: &str| {
            (s.len() == WIDTH && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(LogOffset(LogId::new(part(ms)?, part(seq)?)))
    }
}

/// Where a session read starts, from the `offset` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFrom {
    /// `-1`, no offset, or the zero offset: the log's first entry.
    Start,
    /// `now`: after the log's last entry, whatever it is when the read runs.
    Tail,
    /// After this entry.
    After(LogId),
}

impl LogFrom {
    /// The `offset` query parameter (`None`: absent).
    pub fn parse(text: Option<&str>) -> Result<LogFrom, BadOffset> {
        match text {
            None | Some("-1") => Ok(LogFrom::Start),
            Some("now") => Ok(LogFrom::Tail),
            Some(other) => match LogOffset::parse(other)?.0 {
                LogId::ZERO => Ok(LogFrom::Start),
                id => Ok(LogFrom::After(id)),
            },
        }
    }

    /// The cursor a log read takes (`None`: from the start).
    pub fn after(self) -> Option<LogId> {
        match self {
            LogFrom::After(id) => Some(id),
            LogFrom::Start | LogFrom::Tail => None,
        }
    }
}

/// One page of a session's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPage {
    /// The events as one JSON array (`[]` when none).
    pub body: Bytes,
    /// Whether the array holds any event.
    pub has_data: bool,
    /// Where the next read starts: the last entry read, or where this one started.
    pub next: LogOffset,
    /// The terminal event is in this page or before it: nothing will follow.
    pub closed: bool,
}

/// The page of `entries` (read after `after`, oldest first). `ended`: the
/// session's metadata already named its terminal event when the read began;
/// `complete`: the read reached the log's end.
pub fn page(
    after: Option<LogId>,
    entries: &[LogEntry],
    ended: bool,
    complete: bool,
) -> SessionPage {
    let mut body = Vec::with_capacity(2 + entries.iter().map(|e| e.event.len() + 1).sum::<usize>());
    body.push(b'[');
    let mut terminal = false;
    let mut count = 0usize;
    for (index, entry) in entries.iter().enumerate() {
        // Entries were checked when they were appended; one that no longer
        // parses (never expected) is left out rather than breaking the array.
        let Ok(event) = Event::parse(&entry.event, usize::MAX) else {
            continue;
        };
        terminal = event.is_terminal();
        // Only the log's first entry is the session's ack; a reader past it
        // has had it.
        let first_of_log = after.is_none() && index == 0;
        if event.event_type() == event_type::WORKER_ACK && !first_of_log {
            continue;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.json());
        count += 1;
    }
    body.push(b']');
    let next = entries
        .last()
        .map(|e| e.id)
        .or(after)
        .unwrap_or(LogId::ZERO);
    SessionPage {
        body: Bytes::from(body),
        has_data: count > 0,
        next: LogOffset(next),
        closed: complete && (ended || terminal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64, json: &str) -> LogEntry {
        LogEntry {
            id: LogId::new(ms, 0),
            event: Bytes::from(json.to_owned()),
        }
    }

    #[test]
    fn offsets_round_trip_sort_as_strings_and_differ_from_stored_streams() {
        let ids = [
            LogId::ZERO,
            LogId::new(0, 9),
            LogId::new(9, 0),
            LogId::new(1_764_460_800_123, 3),
            LogId::new(1_764_460_800_123, 10),
            LogId::new(u64::MAX, u64::MAX),
        ];
        let shown: Vec<String> = ids.iter().map(|id| LogOffset(*id).to_string()).collect();
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(sorted, shown);
        for (text, id) in shown.iter().zip(ids) {
            assert_eq!(LogOffset::parse(text), Ok(LogOffset(id)));
        }
        for bad in [
            "",
            "1-2",
            "0000000000000000_0000000000000001",
            "00000000000000000001_0000000000000000000x",
            "99999999999999999999_00000000000000000000",
        ] {
            assert!(LogOffset::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(LogFrom::parse(Some(&shown[0])), Ok(LogFrom::Start));
        assert_eq!(LogFrom::parse(None), Ok(LogFrom::Start));
        assert_eq!(LogFrom::parse(Some("now")), Ok(LogFrom::Tail));
    }

    #[test]
    fn a_page_is_the_events_without_envelope_fields_or_later_acks() {
        let entries = [
            entry(
                1,
                r#"{"event_type":"worker_ack","payload":{},"attempt":"a"}"#,
            ),
            entry(
                2,
                r#"{"event_type":"worker_ack","payload":{},"attempt":"b"}"#,
            ),
            entry(
                3,
                r#"{"event_type":"FinalAnswerStream", "payload":{"char":"x"}}"#,
            ),
        ];
        let page = page(None, &entries, false, true);
        assert_eq!(
            page.body,
            r#"[{"event_type":"worker_ack","payload":{}},{"event_type":"FinalAnswerStream","payload":{"char":"x"}}]"#
        );
        assert_eq!(page.next, LogOffset(LogId::new(3, 0)));
        assert!(page.has_data && !page.closed);
        let later = super::page(Some(LogId::new(1, 0)), &entries[1..2], false, true);
        assert_eq!((later.body.as_ref(), later.has_data), (&b"[]"[..], false));
        assert_eq!(later.next, LogOffset(LogId::new(2, 0)));
    }

    #[test]
    fn the_terminal_event_closes_the_stream_once_read_to_the_end() {
        let end = [entry(
            7,
            r#"{"event_type":"FinalAnswerStreamEnd","payload":{}}"#,
        )];
        assert!(page(Some(LogId::new(6, 0)), &end, false, true).closed);
        assert!(!page(Some(LogId::new(6, 0)), &end, false, false).closed);
        let empty = page(Some(LogId::new(7, 0)), &[], true, true);
        assert!(empty.closed && !empty.has_data);
        assert_eq!(empty.next, LogOffset(LogId::new(7, 0)));
        assert_eq!(page(None, &[], false, true).next, LogOffset(LogId::ZERO));
    }
}
