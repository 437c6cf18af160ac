//! Durable sessions through real HTTP (PROTOCOL §4): following and resuming
//! with `Last-Event-ID`, cursors, trimmed history, attempts, cancel grace,
//! `DELETE`, gateway-decided ends in the log — every scenario run twice,
//! on the embedded log and on the real Redis.
//!
//! The tests play the worker with the Rust SDK's `publish_event`, so each
//! event goes through the session log exactly as a real worker's does.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::log::{LogLimits, Refusal};
use sse_bridge_core::session::SessionConfig;
use sse_bridge_core::{Delivery, Job, SessionId, Subscription, SubscriptionBound};
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::redis::{REDIS_URL, unique};
use sse_bridge_worker::publish::{PublishError, Published};
use sse_bridge_worker::publish_event;

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    /// A gateway whose logs keep 4,000 bytes (half as appended, half
    /// folded), so 300 events fold a log's head, and whose attempts go
    /// stale after [`LIVE`].
    async fn gateway(self, config: SessionConfig) -> TestGateway {
        let limits = LogLimits {
            max_bytes: 4000,
            ttl: Duration::from_secs(60),
            live: LIVE,
        };
        self.gateway_with(config, limits).await
    }

    async fn gateway_with(self, config: SessionConfig, limits: LogLimits) -> TestGateway {
        let bus: std::sync::Arc<dyn sse_bridge_core::EventLog> = match self {
            Backend::Embedded => {
                std::sync::Arc::new(sse_bridge_core::embedded::EmbeddedBus::with_log_limits(
                    SubscriptionBound::messages(4096),
                    limits,
                ))
            }
            Backend::Redis => {
                let config = RedisConfig {
                    client_name: unique("t-durable"),
                    subscription: SubscriptionBound::messages(4096),
                    log: limits,
                    ..RedisConfig::new(REDIS_URL)
                };
                std::sync::Arc::new(RedisBus::connect(config).await.expect("Redis"))
            }
        };
        TestGateway::start_on(bus, config, |_| {}).await
    }
}

on_both_backends!(
    resume_after_a_cut_anywhere_delivers_every_event_once,
    concurrent_followers_and_the_creator_see_the_same_events,
    the_end_answers_204_and_unknown_sessions_404,
    cursors_are_parsed_strictly,
    a_run_longer_than_the_log_replays_whole_and_resumes_exactly_where_it_can,
    a_disconnect_cancels_only_after_the_grace_and_only_if_nobody_resumed,
    delete_cancels_the_worker_and_every_follower,
    gateway_timeouts_are_logged_and_cancel_the_worker,
    a_second_attempt_after_output_ends_the_session_instead_of_splicing,
    followers_resuming_during_a_full_speed_worker_never_see_a_gap_or_a_duplicate,
    shutdown_ends_the_creators_session_and_closes_followers_quietly,
);

/// The worker side: one event through the session log, as attempt `a`.
async fn emit(gw: &TestGateway, job: &Job, event_type: &str, payload: Value) -> Published {
    emit_as(gw, job, "a", event_type, payload)
        .await
        .expect("the log takes the event")
}

async fn emit_as(
    gw: &TestGateway,
    job: &Job,
    attempt: &str,
    event_type: &str,
    payload: Value,
) -> Result<Published, PublishError> {
    publish_event(
        gw.bus.as_ref(),
        job.session_id,
        Some(attempt),
        event_type,
        payload,
    )
    .await
}

/// The `i`th event of a session of `n`: ack, pieces `"i,"`, end.
fn nth(i: usize, n: usize) -> (&'static str, Value) {
    match i {
        0 => ("worker_ack", json!({})),
        i if i == n - 1 => ("FinalAnswerStreamEnd", json!({})),
        i => ("FinalAnswerStream", json!({ "char": format!("{i},") })),
    }
}

fn expected(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let (event_type, payload) = nth(i, n);
            json!({ "event_type": event_type, "payload": payload })
        })
        .collect()
}

fn events_of(frames: &[Frame]) -> Vec<Value> {
    frames.iter().map(|f| f.event.clone()).collect()
}

/// `events` with every run of consecutive answer pieces merged into one:
/// what a stream whose client fell behind may send (the text is the same).
fn answer_runs_merged(events: &[Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::new();
    for event in events {
        match (merged.last_mut(), event["payload"]["char"].as_str()) {
            (Some(last), Some(text))
                if last["event_type"] == "FinalAnswerStream"
                    && event["event_type"] == "FinalAnswerStream" =>
            {
                let joined = format!("{}{text}", last["payload"]["char"].as_str().unwrap());
                last["payload"]["char"] = Value::from(joined);
            }
            _ => merged.push(event.clone()),
        }
    }
    merged
}

/// Every frame has an id, and the ids grow strictly (as stream ids do).
fn assert_ids_increase(frames: &[Frame]) {
    let ids: Vec<(u64, u64)> = frames
        .iter()
        .map(|f| {
            let id = f.id.as_deref().expect("every logged frame has an id");
            let (ms, seq) = id.split_once('-').expect("a stream id");
            (ms.parse().unwrap(), seq.parse().unwrap())
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids do not grow: {ids:?}"
    );
}

fn sid(job: &Job) -> String {
    job.session_id.to_string()
}

async fn control_of(gw: &TestGateway, job: &Job) -> Subscription {
    gw.bus
        .subscribe(&job.session_id.control_channel())
        .await
        .unwrap()
}

/// The next `cancel` on a control subscription, within `within`.
async fn cancel_reason(control: &mut Subscription, within: Duration) -> Option<String> {
    match tokio::time::timeout(within, control.recv()).await {
        Ok(Delivery::Message(raw)) => {
            let cancel: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(cancel["event_type"], "cancel");
            Some(cancel["payload"]["reason"].as_str().unwrap().to_owned())
        }
        Ok(other) => panic!("control channel: {other:?}"),
        Err(_) => None,
    }
}

/// A session whose worker acked, with its creator, a follower that read
/// the ack, and a subscription to its control channel.
struct Acked {
    creator: reqwest::Response,
    job: Job,
    control: Subscription,
    follower: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
}

impl Acked {
    async fn open(gw: &TestGateway) -> Self {
        let (creator, job) = gw.open(json!({"user_query": "q"})).await;
        let control = control_of(gw, &job).await;
        emit(gw, &job, "worker_ack", json!({})).await;
        let response = follow(&client(), &gw.url, &sid(&job), None).await;
        let mut follower = Box::pin(response.bytes_stream());
        read_frames(&mut follower, 1).await;
        Acked {
            creator,
            job,
            control,
            follower,
        }
    }
}

async fn resume_after_a_cut_anywhere_delivers_every_event_once(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    const N: usize = 20;
    // Cut right after the ack, in the middle, and just before the end.
    for k in [1, N / 2, N - 1] {
        let (creator, job) = gw.open(json!({"user_query": "q"})).await;
        for i in 0..k {
            let (event_type, payload) = nth(i, N);
            emit(&gw, &job, event_type, payload).await;
        }
        let mut first = follow(&client(), &gw.url, &sid(&job), None)
            .await
            .bytes_stream();
        let mut frames = read_frames(&mut first, k).await;
        drop(first);
        for i in k..N {
            let (event_type, payload) = nth(i, N);
            emit(&gw, &job, event_type, payload).await;
        }
        let last_id = frames.last().unwrap().id.clone();
        let rest = follow(&client(), &gw.url, &sid(&job), last_id.as_deref()).await;
        frames.extend(read_all_frames(rest, LIMIT).await);
        assert_eq!(events_of(&frames), expected(N), "cut after {k}");
        assert_ids_increase(&frames);
        // The creator's POST carried the same events, data-only.
        let posted = read_all(creator).await;
        assert_eq!(posted.events, expected(N));
    }
    gw.stop().await;
}

async fn concurrent_followers_and_the_creator_see_the_same_events(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    const N: usize = 30;
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let (url, id) = (gw.url.clone(), sid(&job));
            tokio::spawn(async move {
                read_all_frames(follow(&client(), &url, &id, None).await, LIMIT).await
            })
        })
        .collect();
    for i in 1..N {
        let (event_type, payload) = nth(i, N);
        emit(&gw, &job, event_type, payload).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for follower in followers {
        let frames = follower.await.unwrap();
        assert_eq!(events_of(&frames), expected(N));
        assert_ids_increase(&frames);
    }
    assert_eq!(read_all(creator).await.events, expected(N));
    gw.stop().await;
}

async fn the_end_answers_204_and_unknown_sessions_404(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    for i in 0..3 {
        let (event_type, payload) = nth(i, 3);
        emit(&gw, &job, event_type, payload).await;
    }
    read_all(creator).await;
    let frames = read_all_frames(follow(&client(), &gw.url, &sid(&job), None).await, LIMIT).await;
    let terminal = frames[2].id.clone().unwrap();
    let done = follow(&client(), &gw.url, &sid(&job), Some(&terminal)).await;
    assert_eq!(done.status(), 204, "a resume from the terminal event");
    let before_end = frames[1].id.clone().unwrap();
    let last = read_all_frames(
        follow(&client(), &gw.url, &sid(&job), Some(&before_end)).await,
        LIMIT,
    )
    .await;
    assert_eq!(events_of(&last), vec![expected(3)[2].clone()]);

    for unknown in [SessionId::new().to_string(), "not-a-session".to_owned()] {
        let response = follow(&client(), &gw.url, &unknown, None).await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("unknown"),
            "{body}"
        );
    }
    gw.stop().await;
}

async fn cursors_are_parsed_strictly(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let (_creator, job) = gw.open(json!({"user_query": "q"})).await;
    for i in 0..3 {
        let (event_type, payload) = nth(i, 3);
        emit(&gw, &job, event_type, payload).await;
    }
    for bad in ["-1", "garbage", "1-2-3", "1-x"] {
        let response = follow(&client(), &gw.url, &sid(&job), Some(bad)).await;
        assert_eq!(response.status(), 422, "Last-Event-ID {bad:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("Last-Event-ID"),
            "{body}"
        );
    }
    // Empty and `0` mean the start, like an EventSource that saw nothing.
    for from_start in ["", "0"] {
        let frames = read_all_frames(
            follow(&client(), &gw.url, &sid(&job), Some(from_start)).await,
            LIMIT,
        )
        .await;
        assert_eq!(
            events_of(&frames),
            expected(3),
            "Last-Event-ID {from_start:?}"
        );
    }
    // The query parameter serves a first connection; the header wins over it.
    let all = read_all_frames(follow(&client(), &gw.url, &sid(&job), None).await, LIMIT).await;
    let after_ack = all[0].id.clone().unwrap();
    let query_url = format!(
        "{}/v1/react/sessions/{}/events?last_event_id={after_ack}",
        gw.url,
        sid(&job)
    );
    let by_query = read_all_frames(client().get(&query_url).send().await.unwrap(), LIMIT).await;
    assert_eq!(events_of(&by_query), expected(3)[1..]);
    let after_piece = all[1].id.clone().unwrap();
    let both = client()
        .get(&query_url)
        .header("last-event-id", &after_piece)
        .send()
        .await
        .unwrap();
    assert_eq!(
        events_of(&read_all_frames(both, LIMIT).await),
        expected(3)[2..]
    );
    let bad_query = client()
        .get(format!(
            "{}/v1/react/sessions/{}/events?last_event_id=-1",
            gw.url,
            sid(&job)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), 422);
    gw.stop().await;
}

async fn a_run_longer_than_the_log_replays_whole_and_resumes_exactly_where_it_can(
    backend: Backend,
) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let (_creator, job) = gw.open(json!({"user_query": "q"})).await;
    let Published::Logged { id: ack_id, .. } = emit(&gw, &job, "worker_ack", json!({})).await
    else {
        panic!("the ack is logged")
    };
    let mut pieces = Vec::new();
    for i in 1..300 {
        if let Published::Logged { id, .. } = emit(
            &gw,
            &job,
            "FinalAnswerStream",
            json!({ "char": format!("{i},") }),
        )
        .await
        {
            pieces.push(id);
        }
    }
    let text: String = (1..300).map(|i| format!("{i},")).collect();
    // From the start, and after the ack (which folding kept as it was):
    // every piece's text, then live.
    for cursor in [None, Some(ack_id.to_string())] {
        let mut stream = follow(&client(), &gw.url, &sid(&job), cursor.as_deref())
            .await
            .bytes_stream();
        let mut replayed = String::new();
        while replayed.len() < text.len() {
            for frame in read_frames(&mut stream, 1).await {
                assert!(frame.id.is_some(), "{cursor:?}: {frame:?}");
                if frame.event["event_type"] == "FinalAnswerStream" {
                    replayed.push_str(frame.event["payload"]["char"].as_str().unwrap());
                }
            }
        }
        assert_eq!(replayed, text, "{cursor:?}");
    }
    // Inside a folded text event: the rest cannot be served without
    // repeating text, and the reader is told so (no id: not an event of the log).
    let response = follow(&client(), &gw.url, &sid(&job), Some(&pieces[0].to_string())).await;
    let frames = read_all_frames(response, LIMIT).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].event["payload"]["code"], "history_lost");
    assert!(
        frames[0].event["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("without Last-Event-ID"),
        "{frames:?}"
    );
    assert_eq!(frames[0].id, None);
    // A follower in the appended part goes on as usual.
    let last = *pieces.last().unwrap();
    let mut recent = follow(&client(), &gw.url, &sid(&job), Some(&last.to_string()))
        .await
        .bytes_stream();
    emit(&gw, &job, "FinalAnswerStream", json!({"char": "next"})).await;
    let frames = read_frames(&mut recent, 1).await;
    assert_eq!(frames[0].event["payload"]["char"], "next");
    gw.stop().await;
}

async fn a_disconnect_cancels_only_after_the_grace_and_only_if_nobody_resumed(backend: Backend) {
    let config = SessionConfig {
        cancel_grace: Duration::from_millis(400),
        ..SessionConfig::default()
    };
    let gw = backend.gateway(config).await;

    // The creator leaves; a follower takes over within the grace: no cancel.
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    let mut control = control_of(&gw, &job).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    emit(&gw, &job, "FinalAnswerStream", json!({"char": "a"})).await;
    let mut body = creator.bytes_stream();
    read_events(&mut body, 2).await;
    drop(body);
    let mut follower = follow(&client(), &gw.url, &sid(&job), None)
        .await
        .bytes_stream();
    read_frames(&mut follower, 2).await;
    assert_eq!(
        cancel_reason(&mut control, Duration::from_millis(1000)).await,
        None
    );
    // The follower leaves too, and nobody comes back: cancel after the grace.
    drop(follower);
    let left = tokio::time::Instant::now();
    let reason = cancel_reason(&mut control, Duration::from_secs(5)).await;
    assert_eq!(reason.as_deref(), Some("client_disconnected"));
    assert!(
        left.elapsed() >= Duration::from_millis(300),
        "cancelled before the grace"
    );
    // The log says so to anyone who comes back later.
    let frames = read_all_frames(follow(&client(), &gw.url, &sid(&job), None).await, LIMIT).await;
    assert_eq!(frames.last().unwrap().event["payload"]["code"], "cancelled");
    let late = emit_as(&gw, &job, "a", "FinalAnswerStream", json!({"char": "b"})).await;
    assert!(matches!(late, Err(PublishError::Refused(_))), "{late:?}");

    // "on_disconnect": "continue" never cancels on disconnect.
    let (creator, job) = gw
        .open(json!({"user_query": "q", "on_disconnect": "continue"}))
        .await;
    let mut control = control_of(&gw, &job).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let mut body = creator.bytes_stream();
    read_events(&mut body, 1).await;
    drop(body);
    assert_eq!(
        cancel_reason(&mut control, Duration::from_millis(1200)).await,
        None
    );
    gw.stop().await;
}

async fn delete_cancels_the_worker_and_every_follower(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let Acked {
        creator,
        job,
        mut control,
        mut follower,
    } = Acked::open(&gw).await;
    let delete = |id: String| {
        let url = gw.url.clone();
        async move {
            client()
                .delete(format!("{url}/v1/react/sessions/{id}"))
                .send()
                .await
                .unwrap()
        }
    };
    let response = delete(sid(&job)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session_id": sid(&job), "status": "cancelled"})
    );
    assert_eq!(
        cancel_reason(&mut control, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("cancelled")
    );
    let end = read_frames(&mut follower, 1).await;
    assert_eq!(end[0].event["payload"]["code"], "cancelled");
    assert!(end[0].id.is_some(), "the cancel is in the log");
    let posted = read_all(creator).await;
    assert_eq!(
        posted.events.last().unwrap()["payload"]["code"],
        "cancelled"
    );

    let again: Value = delete(sid(&job)).await.json().await.unwrap();
    assert_eq!(again["status"], "already_ended");
    assert_eq!(delete(SessionId::new().to_string()).await.status(), 404);
    assert_eq!(delete("nope".into()).await.status(), 404);
    gw.stop().await;
}

async fn gateway_timeouts_are_logged_and_cancel_the_worker(backend: Backend) {
    let config = SessionConfig {
        idle_timeout: Duration::from_millis(300),
        max_duration: Duration::from_millis(900),
        ..SessionConfig::default()
    };
    let gw = backend.gateway(config).await;

    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    let mut control = control_of(&gw, &job).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let posted = read_all(creator).await;
    assert_eq!(
        posted.events.last().unwrap()["payload"]["code"],
        "idle_timeout"
    );
    let reason = cancel_reason(&mut control, Duration::from_secs(5)).await;
    assert_eq!(reason.as_deref(), Some("idle_timeout"));
    let frames = read_all_frames(follow(&client(), &gw.url, &sid(&job), None).await, LIMIT).await;
    assert_eq!(
        events_of(&frames)[1..],
        posted.events[1..],
        "the same end in the log"
    );
    let terminal = frames.last().unwrap().id.clone().unwrap();
    let done = follow(&client(), &gw.url, &sid(&job), Some(&terminal)).await;
    assert_eq!(done.status(), 204);

    // A chatty worker still meets max_duration.
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    let mut control = control_of(&gw, &job).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let chatter = {
        let (bus, job) = (gw.bus.clone(), job.clone());
        tokio::spawn(async move {
            for _ in 0..100 {
                let piece = json!({"char": "."});
                let sent = publish_event(
                    bus.as_ref(),
                    job.session_id,
                    Some("a"),
                    "FinalAnswerStream",
                    piece,
                );
                if sent.await.is_err() {
                    return; // refused: the session ended
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the session outlived max_duration");
        })
    };
    let posted = read_all(creator).await;
    assert_eq!(
        posted.events.last().unwrap()["payload"]["code"],
        "session_timeout"
    );
    assert_eq!(
        cancel_reason(&mut control, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("session_timeout")
    );
    chatter.await.unwrap();
    gw.stop().await;
}

/// How long after its last event an attempt of [`Backend::gateway`] is live.
const LIVE: Duration = Duration::from_millis(300);

async fn a_second_attempt_after_output_ends_the_session_instead_of_splicing(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;

    // Before output, a new attempt takes over seamlessly once the first is stale.
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    emit_as(&gw, &job, "a", "worker_ack", json!({}))
        .await
        .unwrap();
    let busy = emit_as(&gw, &job, "b", "worker_ack", json!({})).await;
    assert!(
        matches!(busy, Err(PublishError::Refused(Refusal::Busy))),
        "{busy:?}"
    );
    tokio::time::sleep(LIVE * 2).await;
    emit_as(&gw, &job, "b", "worker_ack", json!({}))
        .await
        .unwrap();
    let stale = emit_as(&gw, &job, "a", "FinalAnswerStream", json!({"char": "a"})).await;
    assert!(matches!(stale, Err(PublishError::Refused(_))));
    emit_as(&gw, &job, "b", "FinalAnswerStream", json!({"char": "b"}))
        .await
        .unwrap();
    emit_as(&gw, &job, "b", "FinalAnswerStreamEnd", json!({}))
        .await
        .unwrap();
    let posted = read_all(creator).await;
    assert_eq!(
        kinds(&posted.events),
        ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    );
    assert_eq!(posted.text("FinalAnswerStream"), "b");

    // After output, the session is lost rather than spliced — for the
    // creator and for every replay alike.
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    emit_as(&gw, &job, "a", "worker_ack", json!({}))
        .await
        .unwrap();
    emit_as(&gw, &job, "a", "FinalAnswerStream", json!({"char": "a"}))
        .await
        .unwrap();
    tokio::time::sleep(LIVE * 2).await;
    let second = emit_as(&gw, &job, "b", "worker_ack", json!({})).await;
    assert!(
        matches!(second, Err(PublishError::Refused(Refusal::Lost))),
        "{second:?}"
    );
    let late = emit_as(&gw, &job, "a", "FinalAnswerStream", json!({"char": "x"})).await;
    assert!(matches!(late, Err(PublishError::Refused(_))), "{late:?}");
    let posted = read_all(creator).await;
    assert_eq!(
        kinds(&posted.events),
        ["worker_ack", "FinalAnswerStream", "error"]
    );
    assert_eq!(posted.events[2]["payload"]["code"], "worker_lost");
    let replay = read_all_frames(follow(&client(), &gw.url, &sid(&job), None).await, LIMIT).await;
    assert_eq!(events_of(&replay), posted.events);
    gw.stop().await;
}

async fn followers_resuming_during_a_full_speed_worker_never_see_a_gap_or_a_duplicate(
    backend: Backend,
) {
    let gw = backend
        .gateway_with(SessionConfig::default(), LogLimits::default())
        .await;
    const N: usize = 3000;
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    let creator = tokio::spawn(read_all_within(creator, Duration::from_secs(60)));
    let worker = {
        let (bus, job) = (gw.bus.clone(), job.clone());
        tokio::spawn(async move {
            for i in 0..N {
                let (event_type, payload) = nth(i, N);
                publish_event(bus.as_ref(), job.session_id, Some("a"), event_type, payload)
                    .await
                    .unwrap();
                if i % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Two followers that each keep leaving after a few frames and resuming.
    let followers: Vec<_> = (0..2u64)
        .map(|seed| {
            let (url, id) = (gw.url.clone(), sid(&job));
            tokio::spawn(async move {
                let mut frames: Vec<Frame> = Vec::new();
                let mut rounds = 0u64;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while frames
                    .last()
                    .is_none_or(|f| f.event["event_type"] != "FinalAnswerStreamEnd")
                {
                    assert!(tokio::time::Instant::now() < deadline, "followers too slow");
                    rounds += 1;
                    let cursor = frames.last().and_then(|f| f.id.clone());
                    let response = follow(&client(), &url, &id, cursor.as_deref()).await;
                    assert_eq!(response.status(), 200);
                    let mut body = response.bytes_stream();
                    // 1..=24 frames this round, or whatever is left.
                    let take = (1 + (rounds * 7 + seed * 13) % 24) as usize;
                    let got = frames.len();
                    let take = take.min(N - got);
                    frames.extend(read_frames(&mut body, take).await);
                }
                (frames, rounds)
            })
        })
        .collect();
    worker.await.unwrap();
    for follower in followers {
        let (frames, rounds) = follower.await.unwrap();
        // Fewer when the follower fell behind and got merged pieces.
        assert!(rounds >= 50, "only {rounds} resumes");
        // Under load a reader may fall behind and get answer pieces merged.
        assert_eq!(
            answer_runs_merged(&events_of(&frames)),
            answer_runs_merged(&expected(N)),
            "after {rounds} resumes"
        );
        assert_ids_increase(&frames);
    }
    assert_eq!(
        answer_runs_merged(&creator.await.unwrap().events),
        answer_runs_merged(&expected(N))
    );
    gw.stop().await;
}

async fn shutdown_ends_the_creators_session_and_closes_followers_quietly(backend: Backend) {
    let gw = backend.gateway(SessionConfig::default()).await;
    let Acked {
        creator,
        mut control,
        follower,
        ..
    } = Acked::open(&gw).await;
    gw.shutdown.cancel();
    let posted = read_all(creator).await;
    assert_eq!(
        posted.events.last().unwrap()["payload"]["code"],
        "server_shutdown"
    );
    let rest = read_rest(follower, LIMIT, "the follower at shutdown").await;
    assert!(
        !rest.contains("data:"),
        "the follower got a frame: {rest:?}"
    );
    assert_eq!(
        cancel_reason(&mut control, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("server_shutdown")
    );
    gw.stop().await;
}

/// A worker that only PUBLISHes (seed style) still drives a session, live
/// only; a late follower learns that its history cannot be replayed.
#[tokio::test]
async fn publish_only_workers_still_work_live_only() {
    let gw = Backend::Redis.gateway(SessionConfig::default()).await;
    let (creator, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStream", json!({"char": "x"}))
        .await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    read_all(creator).await.assert_answered("x");
    let frames = tokio::time::timeout(LIMIT, async {
        loop {
            // The creator marks the end in the log as it leaves.
            let response = follow(&client(), &gw.url, &sid(&job), None).await;
            let frames = read_all_frames(response, LIMIT).await;
            if !frames.is_empty() {
                return frames;
            }
        }
    });
    let frames = frames.await.expect("the end was logged");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].event["payload"]["code"], "history_lost");
    gw.stop().await;
}

/// Only the gateway's subscriber connection drops (`CLIENT KILL TYPE
/// pubsub`: what a health-check timeout or `client-output-buffer-limit
/// pubsub` does) while workers keep publishing to nobody. A logged session
/// catches up from its log and completes with every event once; a
/// live-only one ends with `history_lost` instead of a silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscriber_link_loses_nothing_logged_and_ends_live_only_sessions_honestly() {
    let redis = sse_bridge_testkit::redis::RedisServer::start();
    let config = RedisConfig {
        client_name: unique("t-kill"),
        ..RedisConfig::new(redis.url())
    };
    let bus = std::sync::Arc::new(RedisBus::connect(config).await.unwrap());
    let gw = TestGateway::start_on(bus.clone(), SessionConfig::default(), |_| {}).await;
    const N: usize = 200;

    let (logged, job) = gw.open(json!({"user_query": "q"})).await;
    let (live_only, seed_job) = gw.open(json!({"user_query": "q"})).await;
    for i in 0..10 {
        let (event_type, payload) = nth(i, N);
        emit(&gw, &job, event_type, payload).await;
    }
    gw.publish(&seed_job, "worker_ack", json!({})).await;
    gw.publish(&seed_job, "FinalAnswerStream", json!({"char": "a"}))
        .await;
    let mut logged = logged.bytes_stream();
    let mut seen = read_events(&mut logged, 10).await;
    let mut live_only = live_only.bytes_stream();
    read_events(&mut live_only, 2).await;

    let mut admin = sse_bridge_testkit::redis::plain(&redis.url()).await;
    let killed = sse_bridge_testkit::redis::kill_clients(&mut admin, "pubsub").await;
    assert_eq!(killed, 1, "the gateway's one subscriber connection");
    // The worker goes on at once, into the outage and past it.
    for i in 10..N {
        let (event_type, payload) = nth(i, N);
        emit(&gw, &job, event_type, payload).await;
        gw.publish(&seed_job, "FinalAnswerStream", json!({"char": "b"}))
            .await;
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let rest = read_rest(logged, LIMIT, "the logged session").await;
    seen.extend(
        rest.split_terminator("\n\n")
            .filter_map(|frame| frame.strip_prefix("data: "))
            .map(|json| serde_json::from_str::<Value>(json).unwrap()),
    );
    if seen != expected(N) {
        let chars: Vec<String> = seen
            .iter()
            .map(|e| {
                format!(
                    "{}{}",
                    e["event_type"]
                        .as_str()
                        .unwrap_or("?")
                        .chars()
                        .next()
                        .unwrap(),
                    e["payload"]["char"].as_str().unwrap_or("")
                )
            })
            .collect();
        panic!(
            "every event once, in order; got {} events: {}",
            seen.len(),
            chars.join(" ")
        );
    }
    let rest = read_rest(live_only, LIMIT, "the live-only session").await;
    let last = rest.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.contains(r#""code":"history_lost""#), "{rest}");
    assert!(bus.link_up());
    gw.stop().await;
}
