//! Replays that real runs and real links need (issue 18): a long run replays
//! whole from the start in every format with the default log bound, on the
//! embedded log and on Redis, and a client on a slow link paces its replay
//! instead of being cut off as a slow consumer.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::SubscriptionBound;
use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_core::log::LogLimits;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_core::{EventLog, Job};
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_worker::publish_event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Redis,
}

async fn gateway(backend: Backend, limits: LogLimits) -> TestGateway {
    let bus: Arc<dyn EventLog> = match backend {
        Backend::Embedded => Arc::new(EmbeddedBus::with_log_limits(
            SubscriptionBound::messages(4096),
            limits,
        )),
        Backend::Redis => {
            let config = RedisConfig {
                client_name: format!("t-replay-{}", std::process::id()),
                subscription: SubscriptionBound::messages(4096),
                log: limits,
                ..RedisConfig::new(REDIS_URL)
            };
            Arc::new(RedisBus::connect(config).await.expect("Redis"))
        }
    };
    TestGateway::start_on(bus, SessionConfig::default(), |_| {}).await
}

/// A session whose creator left at once (it goes on without it) and its job.
async fn unattended_session(gw: &TestGateway) -> Job {
    let (response, job) = gw
        .open(json!({"user_query": "q", "on_disconnect": "continue"}))
        .await;
    drop(response);
    job
}

async fn emit(gw: &TestGateway, job: &Job, event_type: &str, payload: Value) {
    publish_event(
        gw.bus.as_ref(),
        job.session_id,
        Some("a"),
        event_type,
        payload,
    )
    .await
    .expect("the log takes the event");
}

/// The answer text of an SSE body in `format`, and whether it ended the
/// way that format ends a completed run.
fn answer_of(body: &str, format: &str) -> (String, bool) {
    let mut text = String::new();
    let mut completed = false;
    for data in body
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
    {
        if data == "[DONE]" {
            continue;
        }
        let event: Value = serde_json::from_str(data).expect("JSON frame");
        let (kind, delta) = match format {
            "native" => (&event["event_type"], &event["payload"]["char"]),
            _ => (&event["type"], &event["delta"]),
        };
        match (format, kind.as_str().unwrap_or_default()) {
            ("native", "FinalAnswerStream")
            | ("ag-ui", "TEXT_MESSAGE_CONTENT")
            | ("ai-sdk", "text-delta") => text.push_str(delta.as_str().unwrap()),
            ("native", "FinalAnswerStreamEnd")
            | ("ag-ui", "RUN_FINISHED")
            | ("ai-sdk", "finish") => completed = true,
            (_, "error" | "RUN_ERROR") => panic!("{format}: {data}"),
            _ => {}
        }
    }
    (text, completed)
}

/// Bytes Redis holds for a session's log: its appended entries, its folded
/// head and its metadata.
async fn redis_bytes(job: &Job) -> i64 {
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut total = 0;
    let id = job.session_id;
    for key in [id.log_key(), id.folded_key(), id.meta_key()] {
        let bytes: Option<i64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        total += bytes.unwrap_or_default();
    }
    total
}

/// 100,000 pieces of 10 characters (1 MB of text, ~7 MB as events): a
/// 10-minute agent run streamed a token at a time.
async fn a_run_of_100_000_pieces_replays_whole_in_every_format(backend: Backend) {
    const PIECES: usize = 100_000;
    let gw = gateway(backend, LogLimits::default()).await;
    let job = unattended_session(&gw).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let started = Instant::now();
    let mut text = String::with_capacity(PIECES * 10);
    for i in 0..PIECES {
        let piece = format!("{i:09} ");
        emit(&gw, &job, "FinalAnswerStream", json!({ "char": piece })).await;
        text.push_str(&piece);
    }
    emit(&gw, &job, "FinalAnswerStreamEnd", json!({})).await;
    let published = started.elapsed();
    let id = job.session_id;
    for format in ["native", "ag-ui", "ai-sdk"] {
        let started = Instant::now();
        let response = client()
            .get(format!(
                "{}/v1/react/sessions/{id}/events?format={format}",
                gw.url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{format}");
        let body = tokio::time::timeout(Duration::from_secs(60), response.text())
            .await
            .expect("the replay ends in time")
            .unwrap();
        let (replayed, completed) = answer_of(&body, format);
        assert!(completed, "{format}: the replay ends as a completed run");
        assert_eq!(replayed.len(), text.len(), "{format}");
        assert!(replayed == text, "{format}: the whole text, in order");
        eprintln!(
            "{backend:?} {format}: replayed {PIECES} pieces ({} KB of frames) in {:?}",
            body.len() / 1000,
            started.elapsed()
        );
    }
    if let Backend::Redis = backend {
        let bytes = redis_bytes(&job).await;
        eprintln!(
            "Redis holds {} KB for the session (published in {published:?})",
            bytes / 1000
        );
        assert!(
            bytes < 6 << 20,
            "{bytes} B: the log stays near its 4 MiB bound"
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_100_000_pieces_replays_whole_in_every_format_embedded() {
    a_run_of_100_000_pieces_replays_whole_in_every_format(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_100_000_pieces_replays_whole_in_every_format_redis() {
    a_run_of_100_000_pieces_replays_whole_in_every_format(Backend::Redis).await;
}

/// A follower behind a slow link: an 8 KiB receive buffer, reading 4 KiB
/// every 10 ms (~400 KB/s).
async fn slow_follow(url: &str, path: &str) -> tokio::net::TcpStream {
    let mut stream = narrow_connection(url, 8192).await;
    let request = format!("GET {path} HTTP/1.1\r\nhost: gw\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// 6 MB of history read at ~400 KB/s, far beyond the stream's 1 MiB budget:
/// the log waits for the client instead of the budget cutting it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_a_slow_link_replays_six_megabytes_whole() {
    const EVENTS: usize = 6000;
    let limits = LogLimits {
        max_bytes: 16 << 20,
        ..LogLimits::default()
    };
    let gw = gateway(Backend::Redis, limits).await;
    let job = unattended_session(&gw).await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    for i in 0..EVENTS {
        // Tool calls, which do not fold: 6,000 events of ~1 KB reach the client.
        let input = format!("{i:06}{}", "x".repeat(1000));
        emit(
            &gw,
            &job,
            "AgentToolCallStart",
            json!({"tool_name": "t", "tool_input": input}),
        )
        .await;
    }
    emit(&gw, &job, "FinalAnswerStreamEnd", json!({})).await;

    let path = format!("/v1/react/sessions/{}/events", job.session_id);
    let mut stream = slow_follow(&gw.url, &path).await;
    let started = Instant::now();
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the replay keeps coming")
            .unwrap();
        body.extend_from_slice(&chunk[..read]);
        if read == 0 || body.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("the replay took over a minute");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body = String::from_utf8_lossy(&body);
    let calls = body.matches(r#""event_type":"AgentToolCallStart""#).count();
    assert!(
        !body.contains("slow_consumer"),
        "cut off as a slow consumer"
    );
    assert_eq!(calls, EVENTS, "every event of the history");
    assert!(body.contains(r#""event_type":"FinalAnswerStreamEnd""#));
    eprintln!(
        "replayed {} MB to a ~400 KB/s reader in {:?}",
        body.len() / 1_000_000,
        started.elapsed()
    );
    gw.stop().await;
}

/// The issue 18 reproduction, as an AG-UI page sees it: a run of 12,000
/// pieces, then a reload that replays it by its run id (`RUN_ERROR
/// history_lost` before, with the log capped at 10,000 entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ag_ui_run_of_12_000_pieces_replays_whole_by_its_run_id() {
    const PIECES: usize = 12_000;
    let gw = gateway(Backend::Redis, LogLimits::default()).await;
    let run_id = format!("run-{}", sse_bridge_core::SessionId::new());
    let input = json!({
        "threadId": "thread-1", "runId": run_id, "state": {}, "tools": [], "context": [],
        "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "Write a long answer"}]
    });
    let response = client()
        .post(format!("{}/v1/ag-ui", gw.url))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The page reloads at once: the run goes on for --cancel-grace.
    drop(response);
    let job = gw.take_job().await;
    emit(&gw, &job, "worker_ack", json!({})).await;
    let mut text = String::new();
    for i in 0..PIECES {
        let piece = format!("{i} ");
        emit(&gw, &job, "FinalAnswerStream", json!({ "char": piece })).await;
        text.push_str(&piece);
    }
    emit(&gw, &job, "FinalAnswerStreamEnd", json!({})).await;
    let replay = client()
        .get(format!("{}/v1/ag-ui/runs/{run_id}/events", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), replay.text())
        .await
        .expect("the replay ends in time")
        .unwrap();
    let (replayed, completed) = answer_of(&body, "ag-ui");
    assert!(completed, "RUN_FINISHED");
    assert!(replayed == text, "the whole text, in order");
    gw.stop().await;
}
