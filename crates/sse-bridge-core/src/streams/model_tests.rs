//! The stream model's rules, without I/O.

use super::*;
use crate::streams::ProducerHeaders;

const LIMITS: StreamLimits = StreamLimits {
    max_stream_bytes: 64,
    max_total_bytes: 1 << 20,
    max_producers: 2,
};

fn stream(content_type: &str) -> StreamState {
    StreamState::new(content_type.into(), Expiry::Never, 0, 1)
}

fn post(body: &str) -> AppendRequest {
    AppendRequest {
        content_type: None,
        body: Bytes::from(body.to_owned()),
        close: false,
        stream_seq: None,
        producer: None,
    }
}

fn by(mut request: AppendRequest, id: &str, epoch: u64, seq: u64) -> AppendRequest {
    request.producer = Some(ProducerHeaders {
        id: id.into(),
        epoch,
        seq,
    });
    request
}

fn body(s: &StreamState, from: ReadFrom) -> String {
    String::from_utf8(s.read(from, 1 << 20).unwrap().body.to_vec()).unwrap()
}

#[test]
fn bytes_read_back_exactly_from_any_offset_returned() {
    let mut s = stream("text/plain");
    let AppendOutcome::Appended { tail, .. } = s.append(&post("hello "), 1, &LIMITS) else {
        panic!()
    };
    s.append(&post("world"), 2, &LIMITS);
    assert_eq!(body(&s, ReadFrom::Start), "hello world");
    assert_eq!(body(&s, ReadFrom::At(tail)), "world");
    let page = s.read(ReadFrom::Tail, 1024).unwrap();
    assert!(page.up_to_date && !page.has_data && page.body.is_empty());
    assert_eq!(page.next, Offset(11));
}

#[test]
fn json_messages_are_one_array_and_pages_end_between_messages() {
    let mut s = stream("application/json");
    s.append(&post(r#"[{"a":1},{"b":2}]"#), 1, &LIMITS);
    s.append(&post("3"), 2, &LIMITS);
    assert_eq!(body(&s, ReadFrom::Start), r#"[{"a":1},{"b":2},3]"#);
    assert_eq!(body(&s, ReadFrom::At(Offset(2))), "[3]");
    let page = s.read(ReadFrom::Start, 1).unwrap();
    assert_eq!(
        (page.body.as_ref(), page.up_to_date),
        (br#"[{"a":1}]"#.as_slice(), false)
    );
    assert_eq!(body(&s, ReadFrom::Tail), "[]");
    assert_eq!(
        s.append(&post("[]"), 3, &LIMITS),
        AppendOutcome::BadBody(JsonBodyError::EmptyArray)
    );
}

#[test]
fn producers_dedupe_fence_and_close_once() {
    let mut s = stream("text/plain");
    assert!(matches!(
        s.append(&by(post("a"), "p", 0, 0), 1, &LIMITS),
        AppendOutcome::Appended { .. }
    ));
    assert!(matches!(
        s.append(&by(post("a"), "p", 0, 0), 1, &LIMITS),
        AppendOutcome::Duplicate { last_seq: 0, .. }
    ));
    assert!(matches!(
        s.append(&by(post("b"), "p", 1, 0), 1, &LIMITS),
        AppendOutcome::Appended { .. }
    ));
    assert_eq!(
        s.append(&by(post("z"), "p", 0, 1), 1, &LIMITS),
        AppendOutcome::StaleEpoch { current: 1 }
    );
    let mut close = by(post(""), "p", 1, 1);
    close.close = true;
    assert!(matches!(
        s.append(&close, 1, &LIMITS),
        AppendOutcome::Appended { closed: true, .. }
    ));
    assert!(matches!(
        s.append(&close, 1, &LIMITS),
        AppendOutcome::Duplicate { closed: true, .. }
    ));
    assert_eq!(
        s.append(&post("late"), 1, &LIMITS),
        AppendOutcome::Closed { tail: Offset(2) }
    );
    assert_eq!(body(&s, ReadFrom::Start), "ab");
}

#[test]
fn old_data_is_dropped_past_the_bound_and_reads_of_it_are_gone() {
    let mut s = stream("application/octet-stream");
    for _ in 0..5 {
        s.append(&post(&"x".repeat(20)), 1, &LIMITS);
    }
    assert!(s.bytes() <= LIMITS.max_stream_bytes);
    assert!(s.read(ReadFrom::At(Offset(0)), 1024).is_none());
    assert_eq!(s.read(ReadFrom::Start, 1024).unwrap().body.len(), 60);
}

#[test]
fn forks_inherit_up_to_the_offset_and_a_sub_offset_into_the_next_batch() {
    let mut s = stream("application/json");
    s.append(&post("[1,2]"), 1, &LIMITS);
    s.append(&post("[3,4,5]"), 1, &LIMITS);
    let request = ForkRequest {
        source: "src".into(),
        offset: Some(Offset(2)),
        sub_offset: 2,
    };
    let mut fork = s.fork(&request, None, Expiry::Never, 1, 2).unwrap();
    assert_eq!(body(&fork, ReadFrom::Start), "[1,2,3,4]");
    fork.append(&post("9"), 1, &LIMITS);
    assert_eq!(body(&fork, ReadFrom::At(Offset(4))), "[9]");
    let too_far = ForkRequest {
        sub_offset: 4,
        ..request.clone()
    };
    assert!(s.fork(&too_far, None, Expiry::Never, 1, 3).is_err());
    let past_tail = ForkRequest {
        offset: Some(Offset(9)),
        sub_offset: 0,
        ..request
    };
    assert_eq!(
        s.fork(&past_tail, None, Expiry::Never, 1, 3).unwrap_err(),
        ForkError::BadOffset
    );
}
