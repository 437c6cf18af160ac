//! The machine's behaviour, with made-up instants: every timeout, the
//! ack handshake, merging for a client that falls behind, attempts and ends.

use super::*;
use crate::sse::Framing;

const ACK: &[u8] = br#"{"event_type":"worker_ack","payload":{}}"#;
const END: &[u8] = br#"{"event_type":"FinalAnswerStreamEnd","payload":{}}"#;

fn piece(c: &str) -> Vec<u8> {
    format!(r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"{c}"}}}}"#).into_bytes()
}

impl SessionMachine {
    /// The answer pieces written to `out`.
    fn text_of(&self, out: &BytesMut) -> String {
        frames(out)
            .iter()
            .filter_map(|f| f.split_once("data: ").map(|(_, json)| json))
            .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .filter(|e| e["event_type"] == "FinalAnswerStream")
            .filter_map(|e| e["payload"]["char"].as_str().map(str::to_owned))
            .collect()
    }
}

fn frames(out: &BytesMut) -> Vec<String> {
    std::str::from_utf8(out)
        .unwrap()
        .split_terminator("\n\n")
        .map(str::to_owned)
        .collect()
}

fn native(framing: Framing) -> Box<dyn Encoder> {
    Box::new(crate::format::Native::new(framing))
}

fn machine() -> (SessionMachine, Instant) {
    let t0 = Instant::now();
    (
        SessionMachine::new(SessionConfig::default(), native(Framing::DataOnly), t0, t0),
        t0,
    )
}

fn expired(progress: Progress) -> ErrorCode {
    match progress {
        Progress::Expired(failure) => failure.code,
        other => panic!("expected Expired, got {other:?}"),
    }
}

fn entry(id: u64, raw: &[u8]) -> LogEntry {
    LogEntry {
        id: LogId::new(id, 0),
        event: bytes::Bytes::copy_from_slice(raw),
    }
}

fn with_log_id(raw: &[u8], id: u64) -> Vec<u8> {
    let mut message = raw[..raw.len() - 1].to_vec();
    message.extend_from_slice(format!(r#","log_id":"{id}-0"}}"#).as_bytes());
    message
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn early_events_are_held_until_the_ack_then_delivered_in_order() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    assert_eq!(m.on_message(&piece("a"), t0, &mut out), Progress::Continue);
    assert_eq!(m.on_message(&piece("b"), t0, &mut out), Progress::Continue);
    assert!(out.is_empty());
    assert_eq!(m.on_message(ACK, t0, &mut out), Progress::Continue);
    let f = frames(&out);
    assert_eq!(f.len(), 3);
    assert!(f[0].contains("worker_ack"));
    assert!(f[1].contains(r#""char":"a""#) && f[2].contains(r#""char":"b""#));
}

#[test]
fn while_the_client_is_behind_text_pieces_merge_and_other_events_keep_their_place() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    out.clear();
    m.pace(true, t0, &mut out);
    for c in ["a", "b", "c"] {
        m.on_message(&piece(c), t0, &mut out);
    }
    assert!(out.is_empty(), "merged, not written");
    assert_eq!(m.unwritten_bytes(), 3);
    let tool = br#"{"event_type":"AgentToolCallStart","payload":{"tool_name":"t","tool_input":1}}"#;
    m.on_message(tool, t0, &mut out);
    for c in ["d", "e"] {
        m.on_message(&piece(c), t0, &mut out);
    }
    // Caught up: the second run is written.
    m.pace(false, t0, &mut out);
    m.on_message(&piece("f"), t0, &mut out);
    let f = frames(&out);
    assert_eq!(f.len(), 4, "{f:?}");
    assert!(f[0].contains(r#""char":"abc""#), "{f:?}");
    assert!(f[1].contains("AgentToolCallStart"));
    assert!(f[2].contains(r#""char":"de""#) && f[3].contains(r#""char":"f""#));
    assert_eq!(m.stats().forwarded, 1 + 7, "every piece counts");
    // The terminal event writes what was merged first.
    m.pace(true, t0, &mut out);
    m.on_message(&piece("g"), t0, &mut out);
    assert_eq!(
        m.on_message(END, t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
    let f = frames(&out);
    assert!(f[4].contains(r#""char":"g""#) && f[5].contains("FinalAnswerStreamEnd"));
    assert_eq!(m.text_of(&out), "abcdefg");
}

#[test]
fn terminal_event_held_before_ack_finishes_right_after_it() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(&piece("a"), t0, &mut out);
    m.on_message(END, t0, &mut out);
    assert_eq!(
        m.on_message(ACK, t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
    assert_eq!(frames(&out).len(), 3);
    // Nothing is written after the terminal frame.
    let len = out.len();
    m.on_message(&piece("late"), t0, &mut out);
    assert_eq!(out.len(), len);
}

#[test]
fn no_ack_in_time_is_one_ack_timeout_error() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    assert_eq!(m.deadline(), t0 + secs(10));
    let Progress::Expired(failure) = m.on_timer(t0 + secs(10), &mut out) else {
        panic!("the ack deadline passed")
    };
    assert_eq!(failure.code, ErrorCode::AckTimeout);
    assert!(
        out.is_empty(),
        "the driver writes the failure, through the log"
    );
    assert_eq!(
        m.fail(&failure, t0 + secs(10), &mut out),
        Progress::Finished(Outcome::Failed(ErrorCode::AckTimeout))
    );
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert!(
        f[0].starts_with("data: ") && f[0].contains(r#""code":"ack_timeout""#),
        "{f:?}"
    );
}

#[test]
fn worker_error_before_ack_ends_at_once() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    let err = br#"{"event_type":"error","payload":{"error":"boom","code":"worker_error"}}"#;
    assert_eq!(
        m.on_message(err, t0, &mut out),
        Progress::Finished(Outcome::WorkerError)
    );
}

#[test]
fn duplicate_acks_are_dropped_and_heartbeats_not_forwarded() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    m.on_message(ACK, t0, &mut out);
    m.on_message(br#"{"event_type":"worker_heartbeat"}"#, t0, &mut out);
    m.on_message(
        br#"{"event_type":"Custom","payload":1,"x":2}"#,
        t0,
        &mut out,
    );
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(f[1], r#"data: {"event_type":"Custom","payload":1,"x":2}"#);
    assert_eq!(m.stats().duplicate_acks, 1);
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    for bad in [
        &b"not json"[..],
        b"[1,2]",
        br#"{"payload":{}}"#,
        &vec![b' '; 2 * 1024 * 1024],
    ] {
        assert_eq!(m.on_message(bad, t0, &mut out), Progress::Continue);
    }
    // `[1,2]` is a batch of two events that are not objects.
    assert_eq!(m.stats().malformed, 5);
    assert_eq!(
        m.on_message(END, t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
    assert_eq!(frames(&out).len(), 2);
}

#[test]
fn idle_timeout_counts_from_the_last_event() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    m.on_message(&piece("a"), t0 + secs(100), &mut out);
    assert_eq!(m.on_timer(t0 + secs(200), &mut out), Progress::Continue);
    assert_eq!(
        m.deadline(),
        t0 + secs(215),
        "the next ping comes before the idle deadline"
    );
    assert_eq!(
        expired(m.on_timer(t0 + secs(220), &mut out)),
        ErrorCode::IdleTimeout
    );
}

#[test]
fn max_duration_wins_over_a_chatty_worker() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    let mut t = t0;
    while t < t0 + secs(30 * 60) {
        t += secs(60);
        m.on_message(&piece("x"), t, &mut out);
    }
    assert_eq!(expired(m.on_timer(t, &mut out)), ErrorCode::SessionTimeout);
}

#[test]
fn heartbeating_worker_that_goes_silent_is_lost() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    m.on_message(
        br#"{"event_type":"worker_heartbeat"}"#,
        t0 + secs(1),
        &mut out,
    );
    // The ping at 15 s comes first, then the third missed interval at 16 s.
    assert_eq!(m.on_timer(t0 + secs(15), &mut out), Progress::Continue);
    assert_eq!(m.deadline(), t0 + secs(16));
    assert_eq!(
        expired(m.on_timer(t0 + secs(16), &mut out)),
        ErrorCode::WorkerLost
    );
}

#[test]
fn pings_when_nothing_was_written_for_a_heartbeat() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    out.clear();
    assert_eq!(m.deadline(), t0 + secs(15));
    m.on_timer(t0 + secs(15), &mut out);
    assert_eq!(&out[..], sse::PING);
    assert_eq!(m.deadline(), t0 + secs(30));
}

#[test]
fn broker_loss_ends_the_session_unless_the_link_returns_in_time() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    m.on_link(false, t0 + secs(1));
    m.on_link(true, t0 + secs(5));
    assert_eq!(m.on_timer(t0 + secs(11), &mut out), Progress::Continue);
    m.on_link(false, t0 + secs(20));
    assert_eq!(m.on_timer(t0 + secs(29), &mut out), Progress::Continue);
    assert_eq!(m.deadline(), t0 + secs(30));
    assert_eq!(
        expired(m.on_timer(t0 + secs(30), &mut out)),
        ErrorCode::BrokerUnavailable
    );
}

#[test]
fn events_held_before_the_ack_are_bounded_in_bytes() {
    let t0 = Instant::now();
    let config = SessionConfig {
        buffer_bytes: 2 * piece("a").len(),
        ..SessionConfig::default()
    };
    let mut m = SessionMachine::new(config, native(Framing::DataOnly), t0, t0);
    let mut out = BytesMut::new();
    m.on_message(&piece("a"), t0, &mut out);
    m.on_message(&piece("b"), t0, &mut out);
    assert_eq!(
        expired(m.on_message(&piece("c"), t0, &mut out)),
        ErrorCode::TooManyEvents
    );
}

#[test]
fn a_session_over_max_events_ends_with_too_many_events() {
    let t0 = Instant::now();
    let config = SessionConfig {
        max_events: 3,
        ..SessionConfig::default()
    };
    let mut m = SessionMachine::new(config, native(Framing::DataOnly), t0, t0);
    let mut out = BytesMut::new();
    m.on_message(ACK, t0, &mut out);
    m.on_message(&piece("a"), t0, &mut out);
    m.on_message(&piece("b"), t0, &mut out);
    assert_eq!(
        expired(m.on_message(&piece("c"), t0, &mut out)),
        ErrorCode::TooManyEvents
    );
    assert_eq!(frames(&out).len(), 3);
}

#[test]
fn an_error_before_the_ack_never_follows_a_held_terminal_event() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_message(&piece("a"), t0, &mut out);
    m.on_message(END, t0, &mut out);
    let err = br#"{"event_type":"error","payload":{"error":"boom","code":"worker_error"}}"#;
    assert_eq!(
        m.on_message(err, t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
    let f = frames(&out);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f[1].contains("FinalAnswerStreamEnd"));
}

#[test]
fn logged_events_are_taken_once_from_replay_and_live_alike() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_entry(&entry(1, ACK), t0, &mut out);
    m.on_entry(&entry(2, &piece("a")), t0, &mut out);
    // The same events arrive live (subscribed before the log was read).
    m.on_message(&with_log_id(ACK, 1), t0, &mut out);
    m.on_message(&with_log_id(&piece("a"), 2), t0, &mut out);
    m.on_message(&with_log_id(&piece("b"), 3), t0, &mut out);
    assert_eq!(m.text_of(&out), "ab");
    assert_eq!(m.stats().already_seen, 2);
    assert_eq!(m.last_log_id(), Some(LogId::new(3, 0)));
    assert!(!m.has_live_output());
    assert_eq!(
        m.on_entry(&entry(4, END), t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
}

#[test]
fn a_resuming_machine_streams_after_its_cursor_with_ids() {
    let t0 = Instant::now();
    let mut m = SessionMachine::new(SessionConfig::default(), native(Framing::WithIds), t0, t0)
        .resuming(LogId::new(5, 0));
    let mut out = BytesMut::new();
    m.on_entry(&entry(5, &piece("old")), t0, &mut out);
    m.on_entry(&entry(6, &piece("new")), t0, &mut out);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert!(
        f[0].starts_with("id: 6-0\ndata: {") && f[0].contains("new"),
        "{f:?}"
    );
}

#[test]
fn gateway_errors_read_from_the_log_keep_their_code() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    m.on_entry(&entry(1, ACK), t0, &mut out);
    let lost = Event::error(ErrorCode::WorkerLost, "x");
    assert_eq!(
        m.on_entry(&entry(2, lost.json()), t0, &mut out),
        Progress::Finished(Outcome::Failed(ErrorCode::WorkerLost))
    );
}

#[test]
fn live_only_events_follow_the_attempt_rule() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    let of = |raw: &[u8], attempt: &str| {
        let mut message = raw[..raw.len() - 1].to_vec();
        message.extend_from_slice(format!(r#","attempt":"{attempt}"}}"#).as_bytes());
        message
    };
    m.on_message(&of(&piece("early-b"), "b"), t0, &mut out);
    m.on_message(&of(ACK, "a"), t0, &mut out);
    m.on_message(&of(&piece("a"), "a"), t0, &mut out);
    m.on_message(&of(&piece("b"), "b"), t0, &mut out);
    assert_eq!(m.text_of(&out), "a");
    assert_eq!(m.stats().foreign, 2, "the held event of b and the late one");
    assert!(m.has_live_output());
    assert_eq!(
        m.on_message(&of(ACK, "c"), t0, &mut out),
        Progress::Continue,
        "a is live: c's ack is dropped"
    );
    assert_eq!(m.stats().foreign, 3);
    // Past the window (three heartbeats) and its resolution.
    let stale = t0 + SessionConfig::default().worker_heartbeat * 4;
    assert_eq!(
        expired(m.on_message(&of(ACK, "c"), stale, &mut out)),
        ErrorCode::WorkerLost
    );
}

#[test]
fn a_batch_message_is_its_events_one_by_one_and_a_bad_one_is_skipped_alone() {
    let (mut m, t0) = machine();
    let mut out = BytesMut::new();
    let message = [
        with_log_id(ACK, 1),
        with_log_id(&piece("a"), 2),
        br#""not an event""#.to_vec(),
        with_log_id(&piece("b"), 3),
    ]
    .join(&b","[..]);
    let message = [&b"["[..], &message, b"]"].concat();
    assert_eq!(m.on_message(&message, t0, &mut out), Progress::Continue);
    assert_eq!(m.text_of(&out), "ab");
    assert_eq!(m.stats().malformed, 1, "the string in the batch");
    assert_eq!(m.last_log_id(), Some(LogId::new(3, 0)));
    let end = format!("[{}]", String::from_utf8(with_log_id(END, 4)).unwrap());
    assert_eq!(
        m.on_message(end.as_bytes(), t0, &mut out),
        Progress::Finished(Outcome::Completed)
    );
    // A message that only starts like an array is one (malformed) event.
    let (mut m, t0) = machine();
    m.on_message(b"[{\"event_type\":", t0, &mut out);
    assert_eq!(m.stats().malformed, 1);
}
