//! The behaviour every [`EventLog`] backend must share, as one check run
//! against each (the embedded log in `sse-bridge-core`'s tests, the Redis
//! log in `sse-bridge-redis`'s): the attempt rule, refusals after the end,
//! gateway ends, reads, folding a long log's head, followers and alias
//! claims. The Redis side runs the rules in Lua and the embedded side in
//! Rust; this is what keeps them equal.

use std::time::Duration;

use serde_json::json;
use sse_bridge_core::log::{
    Appended, Claim, Ending, EventLog, HistoryLost, LogEntry, LogId, LogLimits, PageLimit, Refusal,
    SessionMeta,
};
use sse_bridge_core::protocol::{ErrorCode, Event, OnDisconnect, event_type};
use sse_bridge_core::{Delivery, SessionId, Subscription};

fn event(kind: &str, attempt: &str) -> Event {
    Event::new(kind, json!({"char": "x"})).from_attempt(Some(attempt))
}

/// A session recorded in `log` (anonymous, native, cancel on disconnect).
pub async fn created(log: &dyn EventLog) -> SessionId {
    let id = SessionId::new();
    let meta = SessionMeta::new("anonymous", "native", OnDisconnect::Cancel);
    log.create(id, &meta).await.expect("create");
    id
}

fn logged(appended: Appended) -> LogId {
    match appended {
        Appended::Logged { id, .. } => id,
        other => panic!("expected Logged, got {other:?}"),
    }
}

/// The next live message, parsed.
async fn next_live(sub: &mut Subscription) -> Event {
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv())
        .await
        .expect("a live message in time");
    let Delivery::Message(raw) = delivery else {
        panic!("{delivery:?}")
    };
    Event::parse(&raw, 1 << 20).expect("a valid event")
}

/// The next `count` live events, whether they come one message each or
/// in batch messages (a JSON array: the Redis log's batches).
async fn next_live_events(sub: &mut Subscription, count: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < count {
        let delivery = tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv())
            .await
            .expect("a live message in time");
        let Delivery::Message(raw) = delivery else {
            panic!("{delivery:?}")
        };
        match sse_bridge_core::protocol::batch(&raw) {
            Some(batch) => events.extend(
                batch
                    .iter()
                    .map(|e| Event::parse(e.get().as_bytes(), 1 << 20).expect("a valid event")),
            ),
            None => events.push(Event::parse(&raw, 1 << 20).expect("a valid event")),
        }
    }
    assert_eq!(events.len(), count, "no more than asked for");
    events
}

/// The bounds a log under [`check_event_log`] must have: [`PIECES`] events
/// are far more than they hold, and attempts go stale after [`LIVE`].
pub const CHECK_LIMITS: LogLimits = LogLimits {
    max_bytes: 4000,
    ttl: Duration::from_secs(60),
    live: LIVE,
};

/// The liveness window ([`sse_bridge_core::log::LogLimits::live`]) of
/// [`CHECK_LIMITS`].
pub const LIVE: Duration = Duration::from_secs(1);

/// Longer than [`LIVE`], with room for a slow machine.
const STALE: Duration = Duration::from_millis(1300);

/// Events appended to outgrow [`CHECK_LIMITS`].
const PIECES: usize = 300;

/// Runs every check against a log bounded by [`CHECK_LIMITS`].
pub async fn check_event_log(log: &dyn EventLog) {
    unknown_sessions_are_refused(log).await;
    attempt_rule_and_live_messages(log).await;
    batches_admit_each_event_and_stop_at_the_first_refusal(log).await;
    takeover_before_output(log).await;
    gateway_end_is_exclusive(log).await;
    reads_page_and_fold_long_logs(log).await;
    followers_are_counted(log).await;
    aliases_belong_to_their_first_owner(log).await;
}

async fn aliases_belong_to_their_first_owner(log: &dyn EventLog) {
    let alias = format!("chat:{}", SessionId::new());
    assert_eq!(log.resolve_alias(&alias).await.unwrap(), None);
    let first = created(log).await;
    let claim = |owner: &'static str, id| log.claim_alias(&alias, owner, id);
    assert_eq!(claim("key:alice", first).await.unwrap(), Claim::Bound);
    assert_eq!(log.resolve_alias(&alias).await.unwrap(), Some(first));
    let second = created(log).await;
    assert_eq!(claim("key:alice", second).await.unwrap(), Claim::Bound);
    assert_eq!(
        log.resolve_alias(&alias).await.unwrap(),
        Some(second),
        "the owner's later session takes its name over"
    );
    let intruder = created(log).await;
    for other in ["key:bob", "jwt::alice"] {
        assert_eq!(claim(other, intruder).await.unwrap(), Claim::Taken);
    }
    assert_eq!(
        log.resolve_alias(&alias).await.unwrap(),
        Some(second),
        "a refused claim changes nothing"
    );
    let other_kind = alias.replacen("chat:", "ag-ui-run:", 1);
    assert_eq!(
        log.claim_alias(&other_kind, "key:bob", intruder)
            .await
            .unwrap(),
        Claim::Bound,
        "each kind of alias is a namespace of its own"
    );
    let mut meta = SessionMeta::new("anonymous", "ai-sdk", OnDisconnect::Cancel);
    meta.chat_id = Some("c1".into());
    let labelled = SessionId::new();
    log.create(labelled, &meta).await.unwrap();
    assert_eq!(
        log.meta(labelled)
            .await
            .unwrap()
            .unwrap()
            .chat_id
            .as_deref(),
        Some("c1")
    );
}

async fn batches_admit_each_event_and_stop_at_the_first_refusal(log: &dyn EventLog) {
    let id = created(log).await;
    let mut live = log.subscribe(&id.event_channel()).await.unwrap();
    let first = [
        event(event_type::WORKER_ACK, "a"),
        event(event_type::ANSWER, "a"),
        event(event_type::WORKER_HEARTBEAT, "a"),
        event(event_type::ANSWER, "a"),
    ];
    let outcomes = log.append_batch(id, &first, false).await.unwrap();
    let [ack, piece, beat, second_piece] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    let (ack, piece, second_piece) = (logged(*ack), logged(*piece), logged(*second_piece));
    assert!(matches!(beat, Appended::Published { .. }), "{beat:?}");
    assert!(ack < piece && piece < second_piece);
    let received: Vec<_> = next_live_events(&mut live, 4)
        .await
        .iter()
        .map(|e| (e.event_type().to_owned(), e.log_id()))
        .collect();
    assert_eq!(
        received,
        [
            (event_type::WORKER_ACK.to_owned(), Some(ack)),
            (event_type::ANSWER.to_owned(), Some(piece)),
            (event_type::WORKER_HEARTBEAT.to_owned(), None),
            (event_type::ANSWER.to_owned(), Some(second_piece)),
        ],
        "each event of a batch is delivered with its own log id"
    );

    let foreign = [event(event_type::ANSWER, "b")];
    assert_eq!(
        log.append_batch(id, &foreign, false).await.unwrap(),
        [Appended::Refused(Refusal::Foreign)]
    );
    let ending = [
        event(event_type::ANSWER, "a"),
        event(event_type::ANSWER_END, "a"),
        event(event_type::ANSWER, "a"),
        event(event_type::ANSWER, "a"),
    ];
    let outcomes = log.append_batch(id, &ending, false).await.unwrap();
    assert!(matches!(
        outcomes[..2],
        [Appended::Logged { .. }, Appended::Logged { .. }]
    ));
    assert_eq!(outcomes[2..], [Appended::Refused(Refusal::Ended); 2]);
    let ended = logged(outcomes[1]);
    assert_eq!(log.meta(id).await.unwrap().unwrap().ended, Some(ended));
    let types: Vec<_> = log
        .read(id, None, ALL)
        .await
        .unwrap()
        .entries
        .iter()
        .map(|e| {
            Event::parse(&e.event, 1 << 20)
                .unwrap()
                .event_type()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        [
            event_type::WORKER_ACK,
            event_type::ANSWER,
            event_type::ANSWER,
            event_type::ANSWER,
            event_type::ANSWER_END
        ],
        "a refused event is neither logged nor published, nor what follows it"
    );
    let received = next_live_events(&mut live, 2).await;
    assert_eq!(received[1].log_id(), Some(ended));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), live.recv())
            .await
            .is_err(),
        "nothing after the terminal event"
    );
}

async fn unknown_sessions_are_refused(log: &dyn EventLog) {
    let id = SessionId::new();
    assert_eq!(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
        Appended::Refused(Refusal::UnknownSession)
    );
    let terminal = Event::error(ErrorCode::IdleTimeout, "x");
    assert_eq!(log.end(id, &terminal).await.unwrap(), Ending::Unknown);
    assert!(log.meta(id).await.unwrap().is_none());
    let page = log.read(id, None, ALL).await.unwrap();
    assert!(page.entries.is_empty() && !page.known);
    assert_eq!(log.add_followers(id, 1).await.unwrap(), None);
}

async fn attempt_rule_and_live_messages(log: &dyn EventLog) {
    let id = created(log).await;
    let meta = log.meta(id).await.unwrap().expect("metadata");
    assert_eq!(
        (meta.principal.as_str(), meta.format.as_str()),
        ("anonymous", "native")
    );
    assert_eq!(
        (meta.on_disconnect, meta.ended, meta.followers),
        (OnDisconnect::Cancel, None, 1)
    );
    let mut live = log.subscribe(&id.event_channel()).await.unwrap();

    let refused = log
        .append(id, &event(event_type::ANSWER, "a"))
        .await
        .unwrap();
    assert_eq!(refused, Appended::Refused(Refusal::NotAcked));
    let ack = logged(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
    );
    let piece = logged(
        log.append(id, &event(event_type::ANSWER, "a"))
            .await
            .unwrap(),
    );
    assert!(piece > ack);
    let foreign = log
        .append(id, &event(event_type::ANSWER, "b"))
        .await
        .unwrap();
    assert_eq!(foreign, Appended::Refused(Refusal::Foreign));
    assert!(matches!(
        log.append(id, &event(event_type::WORKER_HEARTBEAT, "a"))
            .await
            .unwrap(),
        Appended::Published { .. }
    ));
    let beat_b = log
        .append(id, &event(event_type::WORKER_HEARTBEAT, "b"))
        .await
        .unwrap();
    assert_eq!(beat_b, Appended::Refused(Refusal::Foreign));

    let received = next_live(&mut live).await;
    assert_eq!(
        (received.event_type(), received.log_id()),
        (event_type::WORKER_ACK, Some(ack))
    );
    let received = next_live(&mut live).await;
    assert_eq!(received.log_id(), Some(piece));
    assert_eq!(
        received.json(),
        br#"{"event_type":"FinalAnswerStream","payload":{"char":"x"}}"#
    );
    let received = next_live(&mut live).await;
    assert_eq!(
        (received.event_type(), received.log_id()),
        (event_type::WORKER_HEARTBEAT, None)
    );

    // Another attempt acks while this one is live: refused, nothing changes.
    let busy = log
        .append(id, &event(event_type::WORKER_ACK, "b"))
        .await
        .unwrap();
    assert_eq!(busy, Appended::Refused(Refusal::Busy));
    // Another attempt acks after output of a stale one: the session is lost,
    // never spliced.
    tokio::time::sleep(STALE).await;
    let lost = log
        .append(id, &event(event_type::WORKER_ACK, "b"))
        .await
        .unwrap();
    assert_eq!(lost, Appended::Refused(Refusal::Lost));
    let received = next_live(&mut live).await;
    assert_eq!(received.event_type(), event_type::ERROR);
    assert!(
        std::str::from_utf8(received.json())
            .unwrap()
            .contains(r#""code":"worker_lost""#)
    );
    let ended = log.meta(id).await.unwrap().unwrap().ended;
    assert_eq!(ended, received.log_id());
    let after = log
        .append(id, &event(event_type::ANSWER, "a"))
        .await
        .unwrap();
    assert_eq!(after, Appended::Refused(Refusal::Ended));
    let terminal = Event::error(ErrorCode::IdleTimeout, "x");
    assert_eq!(
        log.end(id, &terminal).await.unwrap(),
        Ending::AlreadyEnded(ended.unwrap())
    );

    let entries = log.read(id, None, ALL).await.unwrap().entries;
    let ids: Vec<LogId> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![ack, piece, ended.unwrap()]);
}

async fn takeover_before_output(log: &dyn EventLog) {
    let id = created(log).await;
    logged(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
    );
    // A heartbeat keeps the attempt live although its ack is older than LIVE.
    tokio::time::sleep(LIVE * 3 / 5).await;
    assert!(matches!(
        log.append(id, &event(event_type::WORKER_HEARTBEAT, "a"))
            .await
            .unwrap(),
        Appended::Published { .. }
    ));
    tokio::time::sleep(LIVE * 3 / 5).await;
    let busy = log
        .append(id, &event(event_type::WORKER_ACK, "b"))
        .await
        .unwrap();
    assert_eq!(busy, Appended::Refused(Refusal::Busy));
    tokio::time::sleep(STALE).await;
    let takeover = log
        .append(id, &event(event_type::WORKER_ACK, "b"))
        .await
        .unwrap();
    logged(takeover);
    let old = log
        .append(id, &event(event_type::ANSWER, "a"))
        .await
        .unwrap();
    assert_eq!(old, Appended::Refused(Refusal::Foreign));
    logged(
        log.append(id, &event(event_type::ANSWER, "b"))
            .await
            .unwrap(),
    );
    let end = logged(
        log.append(id, &event(event_type::ANSWER_END, "b"))
            .await
            .unwrap(),
    );
    assert_eq!(log.meta(id).await.unwrap().unwrap().ended, Some(end));
}

async fn gateway_end_is_exclusive(log: &dyn EventLog) {
    let id = created(log).await;
    logged(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
    );
    let mut live = log.subscribe(&id.event_channel()).await.unwrap();
    let terminal = Event::error(ErrorCode::Cancelled, "cancelled by the client");
    let Ending::Appended(end) = log.end(id, &terminal).await.unwrap() else {
        panic!("the first end appends")
    };
    let received = next_live(&mut live).await;
    assert_eq!(
        (received.json(), received.log_id()),
        (terminal.json(), Some(end))
    );
    assert_eq!(
        log.end(id, &terminal).await.unwrap(),
        Ending::AlreadyEnded(end)
    );
    let late = log
        .append(id, &event(event_type::ANSWER, "a"))
        .await
        .unwrap();
    assert_eq!(late, Appended::Refused(Refusal::Ended));
    let last = log
        .read(id, None, ALL)
        .await
        .unwrap()
        .entries
        .pop()
        .unwrap();
    assert_eq!((last.id, &last.event[..]), (end, terminal.json()));
}

/// Pages of at most this many entries and bytes.
fn page(entries: usize, bytes: usize) -> PageLimit {
    PageLimit { entries, bytes }
}

const ALL: PageLimit = PageLimit {
    entries: 10_000,
    bytes: usize::MAX,
};

/// The answer text and the other events' types of `entries`, in order.
fn replayed(entries: &[LogEntry]) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut others = Vec::new();
    for entry in entries {
        let event: serde_json::Value = serde_json::from_slice(&entry.event).expect("JSON");
        match event["event_type"].as_str() {
            Some(event_type::ANSWER) => text.push_str(event["payload"]["char"].as_str().unwrap()),
            other => others.push(other.unwrap_or_default().to_owned()),
        }
    }
    (text, others)
}

async fn reads_page_and_fold_long_logs(log: &dyn EventLog) {
    let id = created(log).await;
    let ack = logged(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
    );
    let second = logged(
        log.append(id, &event(event_type::ANSWER, "a"))
            .await
            .unwrap(),
    );
    let read = log.read(id, Some(ack), page(10, 1 << 20)).await.unwrap();
    assert_eq!(
        read.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert!(read.lost.is_none() && !read.more);
    let parsed = Event::parse(&read.entries[0].event, 1 << 20).unwrap();
    assert_eq!(
        parsed.json(),
        br#"{"event_type":"FinalAnswerStream","payload":{"char":"x"}}"#
    );
    let tail = log.read(id, Some(second), page(10, 1 << 20)).await.unwrap();
    assert!(tail.entries.is_empty() && !tail.more);
    let first_only = log.read(id, None, page(10, 1)).await.unwrap();
    assert_eq!(
        first_only.entries.len(),
        1,
        "at least one entry, however small the page"
    );
    assert!(first_only.more);

    // A run far longer than the bound: its head folds, and it replays whole.
    let mut pieces = vec![second];
    for n in 0..PIECES {
        let kind = if n == PIECES / 2 {
            event_type::TOOL_CALL_START
        } else {
            event_type::ANSWER
        };
        pieces.push(logged(log.append(id, &event(kind, "a")).await.unwrap()));
    }
    let whole = log.read(id, None, ALL).await.unwrap();
    assert!(whole.lost.is_none() && !whole.more);
    let (text, others) = replayed(&whole.entries);
    assert_eq!(text, "x".repeat(PIECES), "every piece's text, in order");
    assert_eq!(
        others,
        [event_type::WORKER_ACK, event_type::TOOL_CALL_START]
    );
    assert!(
        whole.entries.len() < PIECES / 2,
        "{} entries: the head was folded",
        whole.entries.len()
    );
    let ids: Vec<LogId> = whole.entries.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert_eq!(ids.last(), pieces.last(), "served up to the last entry");
    // A resume after any served entry is exact; one inside a folded text
    // event cannot be served without repeating text.
    for (n, entry) in whole.entries.iter().enumerate() {
        let rest = log.read(id, Some(entry.id), ALL).await.unwrap();
        assert!(rest.lost.is_none());
        assert_eq!(rest.entries, whole.entries[n + 1..], "after entry {n}");
    }
    // A piece not served under its own id was merged into a later entry.
    let inside = *pieces
        .iter()
        .find(|piece| !ids.contains(piece))
        .expect("a piece folded into a later entry");
    let read = log.read(id, Some(inside), ALL).await.unwrap();
    assert_eq!(read.lost, Some(HistoryLost::Merged));
    assert!(read.entries.is_empty());
    let paged = log.read(id, None, page(3, usize::MAX)).await.unwrap();
    assert_eq!((paged.entries.len(), paged.more), (3, true));
    assert_eq!(paged.entries, whole.entries[..3]);

    // Events that do not fold fill the folded head: its oldest are dropped.
    let mut last = second;
    for _ in 0..PIECES {
        last = logged(
            log.append(id, &event(event_type::TOOL_CALL_START, "a"))
                .await
                .unwrap(),
        );
    }
    let from_start = log.read(id, None, ALL).await.unwrap();
    assert_eq!(from_start.lost, Some(HistoryLost::Dropped));
    assert!(from_start.entries.is_empty());
    let old = log.read(id, Some(ack), ALL).await.unwrap();
    assert_eq!(old.lost, Some(HistoryLost::Dropped));
    let recent = log.read(id, Some(last), ALL).await.unwrap();
    assert!(recent.lost.is_none() && recent.entries.is_empty());
}

async fn followers_are_counted(log: &dyn EventLog) {
    let id = created(log).await;
    assert_eq!(log.add_followers(id, 1).await.unwrap(), Some(2));
    assert_eq!(log.add_followers(id, -2).await.unwrap(), Some(0));
    assert_eq!(log.meta(id).await.unwrap().unwrap().followers, 0);
}
