//! Sessions as Durable Streams (`/v1/stream/sessions/{id}`): a session's
//! log read through the protocol — catch-up pages, long-poll and SSE — on
//! the embedded log and on the real Redis. The tests play the worker with
//! the Rust SDK's `publish_event`, so every event goes through the log as a
//! real worker's does.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::log::LogLimits;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_core::{Job, SubscriptionBound};
use sse_bridge_gateway::Auth;
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::redis::{REDIS_URL, unique};

const LIMIT: Duration = Duration::from_secs(20);
const ALICE: &str = "key-a";
const BOB: &str = "key-b";
const WORKER: &str = "key-w";
/// Attempts go stale this long after their last event.
const LIVE: Duration = Duration::from_millis(600);

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    /// A gateway where `alice` and `bob` hold API keys.
    async fn gateway(self) -> TestGateway {
        let limits = LogLimits {
            live: LIVE,
            ..LogLimits::default()
        };
        let bus: std::sync::Arc<dyn sse_bridge_core::EventLog> = match self {
            Backend::Embedded => {
                std::sync::Arc::new(sse_bridge_core::embedded::EmbeddedBus::with_log_limits(
                    SubscriptionBound::messages(4096),
                    limits,
                ))
            }
            Backend::Redis => {
                let config = RedisConfig {
                    client_name: unique("t-ds-sessions"),
                    subscription: SubscriptionBound::messages(4096),
                    log: limits,
                    ..RedisConfig::new(REDIS_URL)
                };
                std::sync::Arc::new(RedisBus::connect(config).await.expect("Redis"))
            }
        };
        TestGateway::start_on(bus, SessionConfig::default(), |state| {
            state.auth = Auth::default()
                .with_api_keys([&format!("alice={ALICE}"), &format!("bob={BOB}")[..]])
                .unwrap()
                .with_worker_api_keys([&format!("w={WORKER}")[..]])
                .unwrap();
        })
        .await
    }
}

on_both_backends!(
    a_session_reads_as_its_followers_events_then_closes,
    long_poll_and_sse_wake_on_the_sessions_events,
    clients_cannot_write_and_other_principals_cannot_read,
    workers_publish_with_the_attempt_rule_and_exact_sequences,
    a_zombie_attempts_appends_get_403,
);

/// Alice starts a session; the job, and her POST's response (kept open).
async fn open(gw: &TestGateway) -> (reqwest::Response, Job) {
    let response = send_as(
        gw,
        ALICE,
        "POST",
        "/v1/react/sessions",
        Some(json!({"user_query": "q"})),
    )
    .await;
    assert_eq!(response.status(), 200);
    (response, gw.take_job().await)
}

fn path(job: &Job) -> String {
    format!("/v1/stream/sessions/{}", job.session_id)
}

/// `GET` of the session's stream as `token`, with `query`.
async fn get(gw: &TestGateway, token: &str, job: &Job, query: &str) -> reqwest::Response {
    send_as(gw, token, "GET", &format!("{}?{query}", path(job)), None).await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The events a session's follower reads, from the start to the end.
async fn followed(gw: &TestGateway, job: &Job) -> Vec<Value> {
    let path = format!("/v1/react/sessions/{}/events", job.session_id);
    let response = send_as(gw, ALICE, "GET", &path, None).await;
    read_all_frames(response, LIMIT)
        .await
        .into_iter()
        .map(|frame| frame.event)
        .collect()
}

/// Every event of the stream, read page by page from the start: the events
/// and the offsets the pages ended at.
async fn catch_up(gw: &TestGateway, job: &Job) -> (Vec<Value>, Vec<String>) {
    let (mut events, mut offsets) = (Vec::new(), Vec::new());
    let mut offset = "-1".to_owned();
    loop {
        let response = get(gw, ALICE, job, &format!("offset={offset}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        let next = header(&response, "stream-next-offset").unwrap().to_owned();
        let closed = header(&response, "stream-closed") == Some("true");
        let page: Vec<Value> = response.json().await.unwrap();
        events.extend(page);
        offsets.push(next.clone());
        if closed {
            return (events, offsets);
        }
        assert_ne!(next, offset, "a page that is not the end moves on");
        offset = next;
    }
}

async fn a_session_reads_as_its_followers_events_then_closes(backend: Backend) {
    let gw = backend.gateway().await;
    let (creator, job) = open(&gw).await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job, "AgentThoughtStream", json!({"char": "h"}))
        .await;
    let call = json!({"tool_name": "calculator", "tool_input": {"expression": "2+3"}});
    gw.emit(&job, "AgentToolCallStart", call).await;
    // A second attempt's ack while the first serves is refused by the log:
    // nothing of it may show.
    let refused = sse_bridge_worker::publish_event(
        gw.bus.as_ref(),
        job.session_id,
        Some("b"),
        "worker_ack",
        json!({}),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    for c in ["4", "2"] {
        gw.emit(&job, "FinalAnswerStream", json!({"char": c})).await;
    }

    // Open: the pages so far, and no Stream-Closed.
    let response = get(&gw, ALICE, &job, "offset=-1").await;
    assert_eq!(header(&response, "stream-up-to-date"), Some("true"));
    assert_eq!(header(&response, "stream-closed"), None);
    let tail = header(&response, "stream-next-offset").unwrap().to_owned();
    let open_page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(open_page.len(), 5);
    let head = send_as(&gw, ALICE, "HEAD", &path(&job), None).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "stream-next-offset"), Some(&tail[..]));
    let at_tail = get(&gw, ALICE, &job, &format!("offset={tail}")).await;
    assert_eq!(at_tail.status(), 200);
    assert_eq!(at_tail.text().await.unwrap(), "[]");

    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    let (events, offsets) = catch_up(&gw, &job).await;
    assert_eq!(events, followed(&gw, &job).await);
    assert_eq!(events, read_all(creator).await.events);
    assert_eq!(events.last().unwrap()["event_type"], "FinalAnswerStreamEnd");
    assert!(events.iter().all(|e| e.get("attempt").is_none()));

    // From the open page's tail on: the end alone, closed.
    let rest = get(&gw, ALICE, &job, &format!("offset={tail}")).await;
    assert_eq!(header(&rest, "stream-closed"), Some("true"));
    let last = header(&rest, "stream-next-offset").unwrap().to_owned();
    assert!(last > tail, "offsets sort as strings: {last} > {tail}");
    assert_eq!(offsets.last(), Some(&last));
    let rest: Vec<Value> = rest.json().await.unwrap();
    assert_eq!(
        rest,
        [json!({"event_type": "FinalAnswerStreamEnd", "payload": {}})]
    );
    // At the end: nothing, closed, and a long-poll answers at once.
    let end = get(&gw, ALICE, &job, &format!("offset={last}&live=long-poll")).await;
    assert_eq!(end.status(), 204);
    assert_eq!(header(&end, "stream-closed"), Some("true"));
    let head = send_as(&gw, ALICE, "HEAD", &path(&job), None).await;
    assert_eq!(header(&head, "stream-closed"), Some("true"));
    assert_eq!(header(&head, "stream-next-offset"), Some(&last[..]));
    gw.stop().await;
}

async fn long_poll_and_sse_wake_on_the_sessions_events(backend: Backend) {
    let gw = backend.gateway().await;
    let (_creator, job) = open(&gw).await;
    gw.emit(&job, "worker_ack", json!({})).await;
    let now = get(&gw, ALICE, &job, "offset=now").await;
    let tail = header(&now, "stream-next-offset").unwrap().to_owned();
    let sse = get(&gw, ALICE, &job, "offset=-1&live=sse").await;
    assert_eq!(header(&sse, "content-type"), Some("text/event-stream"));
    let poll = {
        let (url, id, tail) = (gw.url.clone(), job.session_id, tail.clone());
        tokio::spawn(async move {
            client()
                .get(format!(
                    "{url}/v1/stream/sessions/{id}?offset={tail}&live=long-poll"
                ))
                .bearer_auth(ALICE)
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.emit(&job, "FinalAnswerStream", json!({"char": "5"}))
        .await;
    let woken = tokio::time::timeout(LIMIT, poll).await.unwrap().unwrap();
    assert_eq!(woken.status(), 200);
    let page: Vec<Value> = woken.json().await.unwrap();
    assert_eq!(
        page,
        [json!({"event_type": "FinalAnswerStream", "payload": {"char": "5"}})]
    );
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;

    // The SSE tail: data events then a closing control event, then the end.
    let text = tokio::time::timeout(LIMIT, sse.text())
        .await
        .unwrap()
        .unwrap();
    let mut events = Vec::new();
    let mut closed = false;
    for part in text.split("\n\n").filter(|p| !p.is_empty()) {
        let (kind, data) = part.split_once('\n').unwrap();
        let data = data.strip_prefix("data:").unwrap();
        let value: Value = serde_json::from_str(data).unwrap();
        match kind {
            "event: data" => events.extend(value.as_array().unwrap().iter().cloned()),
            "event: control" => closed = value["streamClosed"] == true,
            other => panic!("{other}"),
        }
    }
    assert!(closed, "{text}");
    assert_eq!(events, followed(&gw, &job).await);
    gw.stop().await;
}

async fn clients_cannot_write_and_other_principals_cannot_read(backend: Backend) {
    let gw = backend.gateway().await;
    let (_creator, job) = open(&gw).await;
    gw.emit(&job, "worker_ack", json!({})).await;
    let body = Some(json!([{"event_type": "FinalAnswerStreamEnd", "payload": {}}]));
    for (method, status) in [("POST", 403), ("PUT", 405), ("DELETE", 405)] {
        let response = send_as(&gw, ALICE, method, &path(&job), body.clone()).await;
        assert_eq!(response.status(), status, "{method}");
        let detail: Value = response.json().await.unwrap();
        assert!(detail["detail"].is_string(), "{method}: {detail}");
    }
    for method in ["GET", "HEAD"] {
        let response = send_as(&gw, BOB, method, &path(&job), None).await;
        assert_eq!(response.status(), 404, "{method}");
    }
    let unknown = send_as(&gw, ALICE, "GET", "/v1/stream/sessions/nope", None).await;
    assert_eq!(unknown.status(), 404);
    let stored_offset = "0000000000000000_0000000000000000";
    let bad = get(&gw, ALICE, &job, &format!("offset={stored_offset}")).await;
    assert_eq!(bad.status(), 400);
    // The session goes on, untouched.
    let page: Vec<Value> = get(&gw, ALICE, &job, "offset=-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page, [json!({"event_type": "worker_ack", "payload": {}})]);
    gw.stop().await;
}

/// A worker's `POST` of `events` as producer `w`, attempt `epoch`, request `seq`.
async fn publish(
    gw: &TestGateway,
    job: &Job,
    epoch: u64,
    seq: u64,
    events: Value,
) -> reqwest::Response {
    client()
        .post(format!("{}{}", gw.url, path(job)))
        .bearer_auth(WORKER)
        .header("content-type", "application/json")
        .header("producer-id", "w")
        .header("producer-epoch", epoch.to_string())
        .header("producer-seq", seq.to_string())
        .body(events.to_string())
        .send()
        .await
        .unwrap()
}

fn ack() -> Value {
    json!({"event_type": "worker_ack", "payload": {}})
}

fn piece(c: &str) -> Value {
    json!({"event_type": "FinalAnswerStream", "payload": {"char": c}})
}

async fn workers_publish_with_the_attempt_rule_and_exact_sequences(backend: Backend) {
    let gw = backend.gateway().await;
    let (creator, job) = open(&gw).await;
    // Events before the ack are refused; the ack binds attempt 0.
    let early = publish(&gw, &job, 0, 0, piece("x")).await;
    assert_eq!(early.status(), 409);
    let acked = publish(&gw, &job, 0, 1, ack()).await;
    assert_eq!(acked.status(), 200);
    assert!(header(&acked, "stream-next-offset").is_some());
    // Another attempt while 0 is live: fenced, told the owner's epoch.
    let second = publish(&gw, &job, 1, 0, ack()).await;
    assert_eq!(second.status(), 403);
    assert_eq!(header(&second, "producer-epoch"), Some("0"));
    // A batch, its retry (204, nothing appended twice), a gap (409).
    let batch = json!([piece("4"), piece("2")]);
    assert_eq!(publish(&gw, &job, 0, 2, batch.clone()).await.status(), 200);
    let again = publish(&gw, &job, 0, 2, batch).await;
    assert_eq!(again.status(), 204);
    let gap = publish(&gw, &job, 0, 9, piece("!")).await;
    assert_eq!(gap.status(), 409);
    assert_eq!(header(&gap, "producer-expected-seq"), Some("3"));
    // A client may never append, a worker may never read another's session.
    let by_client = send_as(&gw, ALICE, "POST", &path(&job), Some(piece("?"))).await;
    assert_eq!(by_client.status(), 403);
    let end = json!({"event_type": "FinalAnswerStreamEnd", "payload": {}});
    let ended = publish(&gw, &job, 0, 3, end.clone()).await;
    assert_eq!(header(&ended, "stream-closed"), Some("true"));
    // One terminal event: the session is closed to everyone after it.
    let after = publish(&gw, &job, 0, 4, end).await;
    assert_eq!(after.status(), 409);
    assert_eq!(header(&after, "stream-closed"), Some("true"));
    let events = read_all(creator).await.events;
    assert_eq!(
        kinds(&events),
        [
            "worker_ack",
            "FinalAnswerStream",
            "FinalAnswerStream",
            "FinalAnswerStreamEnd"
        ]
    );
    let (streamed, _) = catch_up(&gw, &job).await;
    assert_eq!(streamed, events);
    gw.stop().await;
}

async fn a_zombie_attempts_appends_get_403(backend: Backend) {
    let gw = backend.gateway().await;
    let (_creator, job) = open(&gw).await;
    assert_eq!(publish(&gw, &job, 0, 0, ack()).await.status(), 200);
    // Attempt 0 goes silent before any output; attempt 1 takes over.
    tokio::time::sleep(LIVE + Duration::from_millis(300)).await;
    assert_eq!(publish(&gw, &job, 1, 0, ack()).await.status(), 200);
    assert_eq!(publish(&gw, &job, 1, 1, piece("a")).await.status(), 200);
    // The zombie wakes up: fenced, and told the current epoch.
    let zombie = publish(&gw, &job, 0, 1, piece("z")).await;
    assert_eq!(zombie.status(), 403);
    assert_eq!(header(&zombie, "producer-epoch"), Some("1"));
    let detail: Value = zombie.json().await.unwrap();
    assert!(detail["detail"].is_string());
    let page: Vec<Value> = get(&gw, ALICE, &job, "offset=-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page, [ack(), piece("a")]);
    gw.stop().await;
}
