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

/// Entries folded at most at once: bounds the work of any one append (a
/// log further over its share folds again at its next append).
pub const FOLD_BATCH: usize = 1000;

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

/// Folds a batch of a log's oldest entries after its folded head's last
/// entry, in time linear in what it folds: a text run's pieces are
/// gathered and encoded once, when the run closes.
#[derive(Debug)]
pub struct Folder {
    /// The head's last entry, while it may still grow (a plain text piece).
    reopened: Option<FoldedEntry>,
    /// The entry being built; text runs keep their pieces until closed.
    open: Option<Open>,
    closed: Vec<FoldedEntry>,
}

#[derive(Debug)]
struct Open {
    first: LogId,
    last: LogId,
    content: Content,
}

#[derive(Debug)]
enum Content {
    Text {
        event_type: &'static str,
        text: String,
    },
    Kept(Bytes),
}

/// What a [`Folder`] made.
#[derive(Debug, PartialEq, Eq)]
pub struct Folded {
    /// The head's last entry grew: it is replaced by the first of `entries`.
    pub replaces_last: bool,
    /// The entries to put at the end of the folded head, oldest first.
    pub entries: Vec<FoldedEntry>,
}

impl Folder {
    /// A folder continuing after `last`, the folded head's last entry.
    pub fn new(last: Option<&FoldedEntry>) -> Self {
        let reopened = last
            .filter(|last| plain_piece(&last.event).is_some())
            .cloned();
        let open = reopened.as_ref().map(|last| {
            let piece = plain_piece(&last.event).expect("filtered above");
            Open {
                first: last.first,
                last: last.last,
                content: Content::Text {
                    event_type: piece.event_type,
                    text: piece.text,
                },
            }
        });
        Folder {
            reopened,
            open,
            closed: Vec::new(),
        }
    }

    /// Folds `entry`, the oldest entry of the log not folded yet.
    pub fn push(&mut self, entry: &LogEntry) {
        let piece = plain_piece(&entry.event);
        if let (Some(piece), Some(open)) = (&piece, &mut self.open)
            && let Content::Text { event_type, text } = &mut open.content
            && *event_type == piece.event_type
            && text.len() + piece.text.len() <= FOLDED_TEXT_MAX
        {
            text.push_str(&piece.text);
            open.last = entry.id;
            return;
        }
        self.close();
        let content = match piece {
            Some(piece) => Content::Text {
                event_type: piece.event_type,
                text: piece.text,
            },
            None => Content::Kept(entry.event.clone()),
        };
        self.open = Some(Open {
            first: entry.id,
            last: entry.id,
            content,
        });
    }

    /// Everything folded, the last entry included.
    pub fn finish(mut self) -> Folded {
        self.close();
        let mut entries = self.closed;
        let replaces_last = match (&self.reopened, entries.first()) {
            (Some(reopened), Some(first)) if reopened.first == first.first => {
                if reopened.last == first.last {
                    // Nothing joined it: it stays as it is.
                    entries.remove(0);
                    false
                } else {
                    true
                }
            }
            _ => false,
        };
        Folded {
            replaces_last,
            entries,
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            let event = match open.content {
                Content::Text { event_type, text } => text_event(event_type, &text),
                Content::Kept(event) => event,
            };
            self.closed.push(FoldedEntry {
                first: open.first,
                last: open.last,
                event,
            });
        }
    }
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

    fn fold(last: Option<&FoldedEntry>, entries: &[LogEntry]) -> Folded {
        let mut folder = Folder::new(last);
        for entry in entries {
            folder.push(entry);
        }
        folder.finish()
    }

    fn text_of(entry: &FoldedEntry) -> serde_json::Value {
        serde_json::from_slice(&entry.event).unwrap()
    }

    #[test]
    fn plain_pieces_of_one_kind_merge_and_keep_their_first_and_last_ids() {
        let a = entry(
            1,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"a\"é"},"attempt":"x"}"#,
        );
        let b = entry(
            2,
            r#"{"event_type": "FinalAnswerStream", "payload": {"char": "b"}}"#,
        );
        let folded = fold(None, &[a.clone(), b.clone()]);
        assert!(!folded.replaces_last);
        let [merged] = &folded.entries[..] else {
            panic!("{folded:?}")
        };
        assert_eq!((merged.first, merged.last), (a.id, b.id));
        assert_eq!(
            text_of(merged),
            serde_json::json!({"event_type": "FinalAnswerStream", "payload": {"char": "a\"éb"}})
        );
        assert_eq!(merged.to_log_entry().id, b.id);
        // A later batch grows the head's last entry: it replaces it.
        let c = entry(
            3,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"c"}}"#,
        );
        let later = fold(Some(merged), std::slice::from_ref(&c));
        assert!(later.replaces_last);
        assert_eq!(
            (later.entries[0].first, later.entries[0].last),
            (a.id, c.id)
        );
        assert_eq!(text_of(&later.entries[0])["payload"]["char"], "a\"ébc");
    }

    #[test]
    fn other_kinds_fields_and_events_are_kept_as_they_are() {
        let answer = entry(
            1,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"a"}}"#,
        );
        let head = fold(None, &[answer]).entries.remove(0);
        for other in [
            r#"{"event_type":"AgentThoughtStream","payload":{"char":"b"}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b","index":1}}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"b"},"trace":1}"#,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":1}}"#,
            r#"{"event_type":"AgentToolCallStart","payload":{"char":"b"}}"#,
            r#"{"event_type":"worker_ack","payload":{}}"#,
        ] {
            let next = entry(2, other);
            let folded = fold(Some(&head), std::slice::from_ref(&next));
            assert!(!folded.replaces_last, "{other}");
            assert_eq!(folded.entries.len(), 1, "{other}");
            assert_eq!(folded.entries[0].first, next.id, "{other}");
            if !other.contains("AgentThoughtStream") {
                assert_eq!(
                    folded.entries[0].event, next.event,
                    "{other}: kept as it is"
                );
            }
        }
    }

    #[test]
    fn a_folded_text_stops_growing_at_its_bound() {
        let big = "x".repeat(FOLDED_TEXT_MAX);
        let full = entry(
            1,
            &format!(r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"{big}"}}}}"#),
        );
        let next = entry(
            2,
            r#"{"event_type":"FinalAnswerStream","payload":{"char":"y"}}"#,
        );
        assert_eq!(fold(None, &[full, next]).entries.len(), 2);
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
