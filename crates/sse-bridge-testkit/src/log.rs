//! The behaviour every [`EventLog`] backend must share, as one check run
//! against each (the embedded log in `sse-bridge-core`'s tests, the Redis
//! log in `sse-bridge-redis`'s): the attempt rule, refusals after the end,
//! gateway ends, reads, trimming and followers. The Redis side runs the rule
//! in Lua and the embedded side in Rust; this is what keeps them equal.

use std::time::Duration;

use serde_json::json;
use sse_bridge_core::log::{Appended, Ending, EventLog, LogId, Refusal, SessionMeta};
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

/// The liveness window ([`sse_bridge_core::log::LogLimits::live`]) a log
/// under [`check_event_log`] must be configured with.
pub const LIVE: Duration = Duration::from_secs(1);

/// Longer than [`LIVE`], with room for a slow machine.
const STALE: Duration = Duration::from_millis(1300);

/// Runs every check; `trim_batch` events are enough to make the backend trim
/// (the log was configured with a smaller `max_len` and `live` = [`LIVE`]).
pub async fn check_event_log(log: &dyn EventLog, trim_batch: usize) {
    unknown_sessions_are_refused(log).await;
    attempt_rule_and_live_messages(log).await;
    takeover_before_output(log).await;
    gateway_end_is_exclusive(log).await;
    reads_page_and_detect_trimmed_history(log, trim_batch).await;
    followers_are_counted(log).await;
    aliases_name_live_sessions(log).await;
}

async fn aliases_name_live_sessions(log: &dyn EventLog) {
    let alias = format!("chat:{}", SessionId::new());
    assert_eq!(log.resolve_alias(&alias).await.unwrap(), None);
    let first = created(log).await;
    log.bind_alias(&alias, first).await.unwrap();
    assert_eq!(log.resolve_alias(&alias).await.unwrap(), Some(first));
    let second = created(log).await;
    log.bind_alias(&alias, second).await.unwrap();
    assert_eq!(
        log.resolve_alias(&alias).await.unwrap(),
        Some(second),
        "taken over"
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
    let page = log.read(id, None, 10).await.unwrap();
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

    let entries = log.read(id, None, 100).await.unwrap().entries;
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
        .read(id, None, 100)
        .await
        .unwrap()
        .entries
        .pop()
        .unwrap();
    assert_eq!((last.id, &last.event[..]), (end, terminal.json()));
}

async fn reads_page_and_detect_trimmed_history(log: &dyn EventLog, trim_batch: usize) {
    let id = created(log).await;
    let first = logged(
        log.append(id, &event(event_type::WORKER_ACK, "a"))
            .await
            .unwrap(),
    );
    let second = logged(
        log.append(id, &event(event_type::ANSWER, "a"))
            .await
            .unwrap(),
    );
    let page = log.read(id, Some(first), 10).await.unwrap();
    assert_eq!(
        page.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert!(!page.history_lost);
    let parsed = Event::parse(&page.entries[0].event, 1 << 20).unwrap();
    assert_eq!(
        parsed.json(),
        br#"{"event_type":"FinalAnswerStream","payload":{"char":"x"}}"#
    );
    assert!(
        log.read(id, Some(second), 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    let mut last = second;
    for _ in 0..trim_batch {
        last = logged(
            log.append(id, &event(event_type::ANSWER, "a"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        log.read(id, None, 5).await.unwrap().entries.len(),
        5,
        "limit"
    );
    assert!(log.read(id, Some(first), 10).await.unwrap().history_lost);
    assert!(log.read(id, None, 10).await.unwrap().history_lost);
    let tail = log.read(id, Some(last), 10).await.unwrap();
    assert!(!tail.history_lost && tail.entries.is_empty());
}

async fn followers_are_counted(log: &dyn EventLog) {
    let id = created(log).await;
    assert_eq!(log.add_followers(id, 1).await.unwrap(), Some(2));
    assert_eq!(log.add_followers(id, -2).await.unwrap(), Some(0));
    assert_eq!(log.meta(id).await.unwrap().unwrap().followers, 0);
}
