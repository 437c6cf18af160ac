//! Folding a long log's head, so a session of any length replays whole
//! within a bound in bytes (issue 18).
//!
//! A log keeps its newest entries as they were appended (the *tail*, at most
//! half of [`LogLimits::max_bytes`](super::LogLimits)). When the tail
//! outgrows that, its oldest entries are *folded*: consecutive plain text
//! pieces of one kind (`AgentThoughtStream` or `FinalAnswerStream` whose
//! payload is exactly `{"char": <string>}`, the same rule as the gateway's
//! coalescing) become one event holding their concatenated text, and every
//! other event is kept as it is. A 100,000-piece answer thus costs its text
//! plus a few bytes per [`FOLDED_TEXT_MAX`], not 60–100 bytes per piece, and
//! a replay from the start serves the folded head first, then the tail —
//! the same text and the same tool calls in fewer events.
//!
//! A folded entry knows the first and last log ids it stands for and is
//! served under the last one, so a resume after it is exact; a cursor
//! strictly inside it cannot be served without repeating text, which is the
//! one place a replay honestly answers `history_lost`. The folded head is
//! bounded too (the other half of `max_bytes`): past it its oldest entries
//! are dropped, and only a replay that needs them is refused.
//!
//! This module is the rule, pure: the embedded log applies it in Rust, and
//! `functions.lua` applies the same rule in Redis; the log conformance
//! checks (`sse-bridge-testkit::log`) hold the two to the same outcomes.

use bytes::Bytes;
use serde::Deserialize;

use super::{LogEntry, LogId};
use crate::protocol::event_type;

/// A folded text event's text grows no larger than this: it bounds the frame
/// a replay writes at once and how much a resume inside it would repeat.
pub const FOLDED_TEXT_MAX: usize = 8 * 1024;

/// Once a log's appended entries are over their share (`tail_bytes`), the
/// oldest are folded until they are down to this: folding runs once per
/// quarter of the share, not at every append.
pub fn fold_target(tail_bytes: usize) -> usize {
    tail_bytes - tail_bytes / 4
}

/// One entry of a folded head: the log's entries `first..=last`, as one event
/// (or a single entry kept as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedEntry {
    pub first: LogId,
    pub last: LogId,
    pub event: Bytes,
}

impl FoldedEntry {
    /// The entry a reader receives: served under the last id it covers.
    pub fn to_log_entry(&self) -> LogEntry {
        LogEntry {
            id: self.last,
            event: self.event.clone(),
        }
    }
}

/// What folding one more log entry after a folded head's last entry does.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// The last folded entry becomes this one (the entry's text joined it).
    Merge(FoldedEntry),
    /// The entry is folded as a new entry of its own.
    Append(FoldedEntry),
}

/// Folds `entry` (the oldest of the tail) after `last`, the folded head's
/// last entry if it has one.
pub fn fold(last: Option<&FoldedEntry>, entry: &LogEntry) -> Fold {
    let alone = || FoldedEntry {
        first: entry.id,
        last: entry.id,
        event: entry.event.clone(),
    };
    let Some(piece) = plain_piece(&entry.event) else {
        return Fold::Append(alone());
    };
    if let Some(last) = last
        && let Some(run) = plain_piece(&last.event)
        && run.event_type == piece.event_type
        && run.text.len() + piece.text.len() <= FOLDED_TEXT_MAX
    {
        return Fold::Merge(FoldedEntry {
            first: last.first,
            last: entry.id,
            event: text_event(piece.event_type, &(run.text + &piece.text)),
        });
    }
    Fold::Append(alone())
}

/// A plain text piece, as stored in a log (the sender's `attempt` may be
/// there: it is transport metadata, dropped on read anyway).
struct Piece {
    event_type: &'static str,
    text: String,
}

fn plain_piece(json: &[u8]) -> Option<Piece> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored<'a> {
        #[serde(borrow)]
        event_type: &'a str,
        payload: Payload,
        #[serde(rename = "attempt")]
        _attempt: Option<serde::de::IgnoredAny>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Payload {
        char: String,
    }
    let stored: Stored = serde_json::from_slice(json).ok()?;
    let event_type = match stored.event_type {
        event_type::THOUGHT => event_type::THOUGHT,
        event_type::ANSWER => event_type::ANSWER,
        _ => return None,
    };
    Some(Piece {
        event_type,
        text: stored.payload.char,
    })
}

fn text_event(event_type: &str, text: &str) -> Bytes {
    let event = serde_json::json!({ "event_type": event_type, "payload": { "char": text } });
    Bytes::from(serde_json::to_vec(&event).expect("serialising a Value cannot fail"))
}

/// Whether a replay after `after` (from the start when `None`) can be served
/// from a folded head whose entries start at `first` and a log from which
/// entries up to `dropped` (if any) are gone for good.
pub fn history_gap(
    after: Option<LogId>,
    dropped: Option<LogId>,
    first: Option<&FoldedEntry>,
) -> Option<HistoryLost> {
    if let Some(dropped) = dropped
        && after.is_none_or(|after| after < dropped)
    {
        return Some(HistoryLost::Dropped);
    }
    match (after, first) {
        (Some(after), Some(entry)) if entry.first <= after && after < entry.last => {
            Some(HistoryLost::Merged)
        }
        _ => None,
    }
}

/// Why a log cannot serve a replay from where it was asked to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryLost {
    /// The entries after the cursor (or the session's start) were dropped:
    /// the session outgrew its log's bound even folded.
    Dropped,
    /// The cursor lies inside a folded text event: the rest of that event
    /// cannot be served without repeating what the reader already has.
    Merged,
}

impl HistoryLost {
    /// The label the Redis functions answer with.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryLost::Dropped => "dropped",
            HistoryLost::Merged => "merged",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        [HistoryLost::Dropped, HistoryLost::Merged]
            .into_iter()
            .find(|lost| lost.as_str() == label)
    }

    /// What the reader is told, and what to do about it; `from_start`: the
    /// read had no cursor.
    pub fn explanation(self, from_start: bool) -> &'static str {
        match (self, from_start) {
            (HistoryLost::Dropped, false) => {
                "the events after this reader's position were dropped: the session outgrew \
                 its log's bound (--log-max-bytes) even folded"
            }
            (HistoryLost::Dropped, true) => {
                "the start of this session was dropped: it outgrew its log's bound \
                 (--log-max-bytes) even folded, so it cannot be replayed from the start"
            }
            (HistoryLost::Merged, _) => {
                "the events after this reader's position (its Last-Event-ID, or where a slow \
                 reader had got to) were folded with earlier ones to keep this long session's \
                 log within its bound: follow again without Last-Event-ID to replay the whole run"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, json: &str) -> LogEntry {
        LogEntry {
            id: LogId::new(1, seq),
            event: Bytes::copy_from_slice(json.as_bytes()),
        }
    }

    fn folded(fold: Fold) -> FoldedEntry {
        match fold {
            Fold::Merge(entry) | Fold::Append(entry) => entry,
        }
    }

    #[test]
    fn plain_pieces_of_one_kind_merge_and_keep_their_first_and_last_ids() {
        let a = entry(
            1,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"a\"é"},"attempt":"x"}"#,
        );
        let first = folded(fold(None, &a));
        assert_eq!((first.first, first.last), (a.id, a.id));
        let b = entry(
            2,
            r#"{"event_type": "FinalAnswerStream", "payload": {"char": "b"}}"#,
        );
        let Fold::Merge(merged) = fold(Some(&first), &b) else {
            panic!("pieces of one kind merge")
        };
        assert_eq!((merged.first, merged.last), (a.id, b.id));
        let value: serde_json::Value = serde_json::from_slice(&merged.event).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event_type": "FinalAnswerStream", "payload": {"char": "a\"éb"}})
        );
        assert_eq!(merged.to_log_entry().id, b.id);
    }

    #[test]
    fn other_kinds_fields_and_events_are_kept_as_they_are() {
        let answer = folded(fold(
            None,
            &entry(
                1,
                r#"{"event_type":"FinalAnswerStream","payload":{"char":"a"}}"#,
            ),
        ));
        for other in [
            r#"{"event_type":"AgentThoughtStream","payload":{"char":"b"}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b","index":1}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b"},"trace":1}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":1}}"#,
            r#"{"event_type":"AgentToolCallStart","payload":{"char":"b"}}"#,
            r#"{"event_type":"worker_ack","payload":{}}"#,
        ] {
            let next = entry(2, other);
            assert_eq!(
                fold(Some(&answer), &next),
                Fold::Append(FoldedEntry {
                    first: next.id,
                    last: next.id,
                    event: next.event.clone()
                }),
                "{other}"
            );
        }
    }

    #[test]
    fn a_folded_text_stops_growing_at_its_bound() {
        let big = "x".repeat(FOLDED_TEXT_MAX);
        let full = folded(fold(
            None,
            &entry(
                1,
                &format!(r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"{big}"}}}}"#),
            ),
        ));
        let next = entry(
            2,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"y"}}"#,
        );
        assert!(matches!(fold(Some(&full), &next), Fold::Append(_)));
    }

    #[test]
    fn only_cursors_inside_a_merged_event_or_before_dropped_entries_are_lost() {
        let merged = FoldedEntry {
            first: LogId::new(1, 3),
            last: LogId::new(1, 7),
            event: Bytes::new(),
        };
        let at = |seq| Some(LogId::new(1, seq));
        assert_eq!(history_gap(None, None, Some(&merged)), None);
        assert_eq!(history_gap(at(2), None, Some(&merged)), None);
        assert_eq!(
            history_gap(at(3), None, Some(&merged)),
            Some(HistoryLost::Merged)
        );
        assert_eq!(
            history_gap(at(6), None, Some(&merged)),
            Some(HistoryLost::Merged)
        );
        assert_eq!(history_gap(at(7), None, Some(&merged)), None, "exact");
        assert_eq!(
            history_gap(None, at(2), Some(&merged)),
            Some(HistoryLost::Dropped)
        );
        assert_eq!(history_gap(at(1), at(2), None), Some(HistoryLost::Dropped));
        assert_eq!(history_gap(at(2), at(2), None), None, "at the last dropped");
    }
}
