//! Durable Streams on a Redis Cluster started by the test itself (3
//! masters): two `sse-bridge` gateways in `--redis-cluster` mode serve the
//! same streams.
//!
//! * Streams created and appended on gateway A (enough of them to land on
//!   every master) read the same on gateway B, page by page.
//! * An append on A wakes a long-poll and an SSE reader waiting on B, at
//!   once (not at the long-poll's timeout).
//! * Closing on A ends B's SSE reader with `streamClosed`.
//! * A fork whose source hashes to another slot is refused cleanly (`501`),
//!   one on the same slot works.
//! * A session started on A is followed to its end on B through
//!   `/v1/stream/sessions/{id}` by long-poll.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sse_bridge_core::streams::{escape, key};
use sse_bridge_testkit::cluster::{RedisCluster, key_slot};
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::redis::unique;
use sse_bridge_testkit::sse::{client, post_session};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

/// A gateway of the cluster, its long-polls waiting 10 s at most.
async fn gateway(cluster: &RedisCluster, jobs: &str, name: &str) -> (ChildProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let seeds = cluster.seeds_arg();
    let args = [
        "serve",
        "--listen",
        &listen,
        "--redis-url",
        &seeds,
        "--redis-cluster",
        "--redis-stream",
        jobs,
        "--stream-long-poll-timeout",
        "10s",
    ];
    let process = ChildProcess::spawn(bin(), &args, &[], name);
    let url = format!("http://{listen}");
    wait_healthy(&url, &process, Duration::from_secs(30)).await;
    (process, url)
}

/// The Redis key of an anonymous caller's stream `path` (its meta hash).
fn meta_key(path: &str) -> String {
    format!("sse_ds_meta:{{{}}}", escape(&key("anonymous", path)))
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn put_json(http: &reqwest::Client, url: &str, body: &str) -> reqwest::Response {
    http.put(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("PUT")
}

async fn post_json(http: &reqwest::Client, url: &str, body: &str) -> reqwest::Response {
    http.post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST")
}

/// `GET ?offset=-1` pages until up to date: every message and the tail.
async fn read_all(http: &reqwest::Client, url: &str) -> (Vec<Value>, String) {
    let mut offset = "-1".to_owned();
    let mut messages = Vec::new();
    loop {
        let page = http
            .get(format!("{url}?offset={offset}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(page.status(), 200, "{url}");
        let done = header(&page, "stream-up-to-date") == "true";
        offset = header(&page, "stream-next-offset");
        let body: Vec<Value> = page.json().await.expect("a JSON page");
        messages.extend(body);
        if done {
            return (messages, offset);
        }
    }
}

/// One SSE response, read event by event (`event:` name, `data:` text).
struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = Vec::new();
                for line in frame.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push(text.strip_prefix(' ').unwrap_or(text));
                    }
                }
                if !event.is_empty() {
                    return Some((event, data.join("\n")));
                }
                continue;
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Data messages until a control event says `upToDate` (or, with
    /// `closed`, `streamClosed`); at most 10 s (a woken reader takes
    /// milliseconds; the margin is for a loaded CI machine).
    async fn until(&mut self, closed: bool) -> Vec<Value> {
        let mut messages = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some((event, data)) = self.next().await {
                let value: Value = serde_json::from_str(&data).expect("JSON data");
                match event.as_str() {
                    "data" => messages.extend(value.as_array().cloned().unwrap_or_default()),
                    "control" if closed && value["streamClosed"] == true => return,
                    "control" if !closed && value["upToDate"] == true => return,
                    _ => {}
                }
            }
            panic!("the SSE response ended early");
        })
        .await
        .expect("the SSE reader was not woken in time");
        messages
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_serve_one_stream_and_wake_each_others_readers() {
    let cluster = RedisCluster::start(3, 0).await;
    let jobs = unique("sse_jobs_ds_cluster");
    let (_a, url_a) = gateway(&cluster, &jobs, "gateway-a").await;
    let (_b, url_b) = gateway(&cluster, &jobs, "gateway-b").await;
    let http = client();
    let run = unique("ds");

    // Streams on every master: created and appended on A, read on B.
    let mut masters = std::collections::HashSet::new();
    let mut paths = Vec::new();
    for i in 0..24 {
        let path = format!("{run}/s{i}");
        masters.insert(cluster.master_for_key(&meta_key(&path)).await);
        let created = put_json(&http, &format!("{url_a}/v1/stream/{path}"), r#"[{"n":0}]"#).await;
        assert_eq!(created.status(), 201, "PUT {path}");
        let appended = post_json(
            &http,
            &format!("{url_a}/v1/stream/{path}"),
            r#"[{"n":1},{"n":2}]"#,
        )
        .await;
        assert!(appended.status().is_success(), "POST {path}");
        paths.push(path);
    }
    assert_eq!(masters.len(), 3, "the streams live on every master");
    for path in &paths {
        let (messages, _) = read_all(&http, &format!("{url_b}/v1/stream/{path}")).await;
        assert_eq!(messages, [json!({"n":0}), json!({"n":1}), json!({"n":2})]);
    }

    // A long-poll waiting on B is woken by an append on A.
    let path = &paths[0];
    let on_a = format!("{url_a}/v1/stream/{path}");
    let on_b = format!("{url_b}/v1/stream/{path}");
    let (_, tail) = read_all(&http, &on_b).await;
    let poll = tokio::spawn({
        let http = http.clone();
        let url = format!("{on_b}?offset={tail}&live=long-poll");
        async move {
            let started = tokio::time::Instant::now();
            let response = http.get(url).send().await.expect("long-poll");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        post_json(&http, &on_a, r#"{"n":3}"#)
            .await
            .status()
            .is_success()
    );
    let (status, body, waited) = poll.await.expect("the long-poll");
    assert_eq!(status, 200, "the long-poll on B returned data");
    assert_eq!(body, json!([{"n":3}]));
    assert!(waited < Duration::from_secs(5), "woken after {waited:?}");

    // An SSE reader on B: caught up, then woken by A's append, then closed.
    let (_, tail) = read_all(&http, &on_b).await;
    let response = http
        .get(format!("{on_b}?offset={tail}&live=sse"))
        .send()
        .await
        .expect("SSE");
    assert_eq!(response.status(), 200);
    let mut sse = SseReader {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
    };
    assert!(sse.until(false).await.is_empty());
    assert!(
        post_json(&http, &on_a, r#"{"n":4}"#)
            .await
            .status()
            .is_success()
    );
    assert_eq!(sse.until(false).await, [json!({"n":4})]);
    let closed = http
        .post(&on_a)
        .header("stream-closed", "true")
        .send()
        .await
        .expect("close");
    assert!(closed.status().is_success());
    sse.until(true).await;

    // Forks: the same slot works; another slot is refused, not a 500.
    let source = &paths[1];
    let source_slot = key_slot(&meta_key(source));
    let mut same_slot = None;
    let mut other_slot = None;
    // One path in 16,384 hashes to the source's slot: 200,000 tries miss
    // it with a chance of about 5 in a million.
    for i in 0..200_000 {
        let candidate = format!("{source}-fork{i}");
        match key_slot(&meta_key(&candidate)) == source_slot {
            true if same_slot.is_none() => same_slot = Some(candidate),
            false if other_slot.is_none() => other_slot = Some(candidate),
            _ => {}
        }
        if same_slot.is_some() && other_slot.is_some() {
            break;
        }
    }
    let fork = |path: String| {
        http.put(format!("{url_a}/v1/stream/{path}"))
            .header("content-type", "application/json")
            .header("stream-forked-from", source.as_str())
            .send()
    };
    let path = same_slot.expect("a path on the source's slot");
    let forked = fork(path.clone()).await.expect("PUT fork");
    assert_eq!(forked.status(), 201, "a fork on the source's slot");
    let (messages, _) = read_all(&http, &format!("{url_b}/v1/stream/{path}")).await;
    assert_eq!(messages, [json!({"n":0}), json!({"n":1}), json!({"n":2})]);
    let path = other_slot.expect("a path on another slot");
    let refused = fork(path).await.expect("PUT fork");
    assert_eq!(refused.status(), 501, "a fork across slots");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_on_one_gateway_is_a_stream_on_the_other() {
    let cluster = RedisCluster::start(3, 0).await;
    let jobs = unique("sse_jobs_ds_cluster");
    let (_a, url_a) = gateway(&cluster, &jobs, "gateway-a").await;
    let (_b, url_b) = gateway(&cluster, &jobs, "gateway-b").await;
    let seeds = cluster.seeds_arg();
    let group = unique("sse_workers_ds_cluster");
    let _worker = ChildProcess::spawn(
        bin(),
        &[
            "worker",
            "--redis-url",
            &seeds,
            "--redis-cluster",
            "--redis-stream",
            &jobs,
            "--group",
            &group,
            "--demo-delay",
            "20ms",
        ],
        &[],
        "worker",
    );
    let http = client();
    let created = post_session(&http, &url_a, json!({"user_query": "What is 2+3?"})).await;
    assert_eq!(created.status(), 200);
    let id = header(&created, "x-session-id");
    let on_b = format!("{url_b}/v1/stream/sessions/{id}");
    let mut offset = "-1".to_owned();
    let mut events: Vec<Value> = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let response = http
                .get(format!("{on_b}?offset={offset}&live=long-poll"))
                .send()
                .await
                .expect("long-poll");
            assert!(response.status().is_success(), "{}", response.status());
            let closed = header(&response, "stream-closed") == "true";
            offset = header(&response, "stream-next-offset");
            if response.status() == 200 {
                let page: Vec<Value> = response.json().await.expect("a JSON page");
                events.extend(page);
            }
            if closed {
                return;
            }
        }
    })
    .await
    .expect("the session's stream did not close in time");
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"worker_ack"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"FinalAnswerStreamEnd"), "{kinds:?}");
    drop(created);
}
