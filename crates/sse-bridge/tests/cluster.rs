//! Scale-out on a Redis Cluster started by the test itself (3 masters, and
//! 3 masters + 3 replicas for failover): gateways and workers are separate
//! `sse-bridge` processes in `--redis-cluster` mode.
//!
//! * 200 concurrent sessions through two gateways and two workers complete
//!   (jobs on a queue of 3 partitions); their channels are sharded channels
//!   spread over the masters, none classic.
//! * A session started on gateway A is followed and resumed on gateway B
//!   with every event once; an AI SDK chat started on A is joined on B.
//! * With replicas, the master owning live sessions is killed: after the
//!   failover they complete with every event. Without replicas, they end
//!   with a clean `broker_unavailable`, and nothing hangs.
//! * Losing (SIGKILL) or stalling (SIGSTOP) one master touches only its own
//!   sessions: a live-only session on a healthy shard streams on, undelayed,
//!   and completes; on the lost shard a logged session catches up after the
//!   failover and a live-only one ends with `history_lost`.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sse_bridge_core::{EventBus, SessionId};
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::cluster::RedisCluster;
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::redis::unique;
use sse_bridge_testkit::sse::{
    Frame, client, follow, kinds, post_session, read_all_frames, read_all_within, read_frames,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

/// The cluster and the queue names one test's processes share.
struct Deployment {
    cluster: RedisCluster,
    stream: String,
    group: String,
}

impl Deployment {
    async fn start(masters: usize, replicas: usize) -> Self {
        Deployment {
            cluster: RedisCluster::start(masters, replicas).await,
            stream: unique("sse_jobs_cluster"),
            group: unique("sse_workers_cluster"),
        }
    }

    fn broker_args(&self) -> Vec<String> {
        [
            "--redis-url",
            &self.cluster.seeds_arg(),
            "--redis-cluster",
            "--redis-stream",
            &self.stream,
            "--group",
            &self.group,
            // The job queue spread over the shards too.
            "--redis-stream-partitions",
            "3",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn gateway(&self, name: &str, extra: &[&str]) -> (ChildProcess, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["serve".to_owned(), "--listen".into(), listen.clone()];
        args.extend(self.broker_args());
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = ChildProcess::spawn(bin(), &args, &[], name);
        let url = format!("http://{listen}");
        wait_healthy(&url, &process, Duration::from_secs(30)).await;
        (process, url)
    }

    fn worker(&self, name: &str, demo_delay: &str) -> ChildProcess {
        let mut args = vec!["worker".to_owned()];
        args.extend(self.broker_args());
        args.extend(["--demo-delay".to_owned(), demo_delay.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ChildProcess::spawn(bin(), &args, &[], name)
    }
}

fn session_id(response: &reqwest::Response) -> String {
    response.headers()["x-session-id"]
        .to_str()
        .expect("an ASCII session id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_through_two_gateways_on_sharded_channels() {
    let deployment = Deployment::start(3, 0).await;
    let (_gateway_a, url_a) = deployment.gateway("gateway-a", &[]).await;
    let (_gateway_b, url_b) = deployment.gateway("gateway-b", &[]).await;
    let _workers = [
        deployment.worker("worker-1", "5ms"),
        deployment.worker("worker-2", "5ms"),
    ];
    let http = client();
    let mut responses = Vec::new();
    for i in 0..200 {
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        let response = post_session(&http, url, json!({"user_query": "What is 2+3?"})).await;
        assert_eq!(response.status(), 200);
        responses.push(response);
    }
    // Every session is subscribed now (the heads came after the subscribe):
    // its channel is a sharded channel on the master of its slot.
    let mut masters_with_sessions = 0;
    let mut sharded = 0;
    for master in deployment.cluster.masters().await {
        let channels = deployment.cluster.pubsub_shardchannels(master.port).await;
        let sessions = channels
            .iter()
            .filter(|c| c.starts_with("sse_session:{"))
            .count();
        sharded += sessions;
        masters_with_sessions += usize::from(sessions > 0);
        let classic = deployment.cluster.pubsub_channels(master.port).await;
        assert!(
            !classic.iter().any(|c| c.starts_with("sse_")),
            "classic channels on {}: {classic:?}",
            master.port
        );
    }
    assert!(sharded > 0, "no sharded session channel");
    assert_eq!(
        masters_with_sessions, 3,
        "session channels on {masters_with_sessions} of 3 masters"
    );

    let reads = responses
        .into_iter()
        .map(|response| read_all_within(response, Duration::from_secs(90)));
    for (i, read) in futures::future::join_all(reads)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(read.last_type(), "FinalAnswerStreamEnd", "session {i}");
        read.assert_answered("2+3 = 5");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gateway_follows_resumes_and_joins_a_session_started_on_another() {
    let deployment = Deployment::start(3, 0).await;
    let (_gateway_a, url_a) = deployment.gateway("gateway-a", &[]).await;
    let (_gateway_b, url_b) = deployment.gateway("gateway-b", &[]).await;
    let _worker = deployment.worker("worker", "20ms");
    let http = client();

    // Started on A; followed on B from the start, cut after a few frames,
    // resumed on B after the last id seen.
    let created = post_session(&http, &url_a, json!({"user_query": "What is 2+3?"})).await;
    let id = session_id(&created);
    let creator = tokio::spawn(read_all_within(created, Duration::from_secs(60)));
    let first = follow(&http, &url_b, &id, None).await;
    assert_eq!(first.status(), 200);
    let mut body = first.bytes_stream();
    let mut frames: Vec<Frame> = read_frames(&mut body, 5).await;
    drop(body);
    let cursor = frames.last().and_then(|f| f.id.clone()).expect("an id");
    let resumed = follow(&http, &url_b, &id, Some(&cursor)).await;
    frames.extend(read_all_frames(resumed, Duration::from_secs(60)).await);
    let followed: Vec<Value> = frames.iter().map(|f| f.event.clone()).collect();
    let created = creator.await.expect("the creator's reader");
    assert_eq!(
        followed, created.events,
        "B's follower saw every event once"
    );
    assert_eq!(*kinds(&followed).last().unwrap(), "FinalAnswerStreamEnd");

    // An AI SDK chat started on A, joined on B (`reconnectToStream`).
    let chat_id = unique("chat");
    let chat = http
        .post(format!("{url_a}/v1/ai-sdk/chat"))
        .header("content-type", "application/json")
        .body(
            json!({
                "id": chat_id,
                "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "What is 2+3?"}]}],
                "trigger": "submit-message"
            })
            .to_string(),
        )
        .send()
        .await
        .expect("POST /v1/ai-sdk/chat");
    assert_eq!(chat.status(), 200);
    let mut chat_body = chat.bytes_stream();
    let _ = chat_body.next().await;
    let joined = http
        .get(format!("{url_b}/v1/ai-sdk/chat/{chat_id}/stream"))
        .send()
        .await
        .expect("GET …/stream");
    assert_eq!(joined.status(), 200);
    let text = joined.text().await.expect("the joined stream");
    assert!(text.starts_with("data: {\"type\":\"start\""), "{text}");
    assert!(
        text.contains("\"type\":\"finish\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
}

/// Sessions whose log lives on the master that is killed (mid-answer).
async fn sessions_on_one_master(
    deployment: &Deployment,
    url: &str,
    count: usize,
) -> (u16, Vec<reqwest::Response>) {
    let http = client();
    let mut by_master: std::collections::HashMap<u16, Vec<reqwest::Response>> = Default::default();
    for _ in 0..count * 6 {
        let response = post_session(&http, url, json!({"user_query": "What is 2+3?"})).await;
        assert_eq!(response.status(), 200);
        let key = format!("sse_events:{{{}}}", session_id(&response));
        let master = deployment.cluster.master_for_key(&key).await;
        by_master.entry(master).or_default().push(response);
        if let Some((&master, _)) = by_master.iter().find(|(_, r)| r.len() >= count) {
            return (master, by_master.remove(&master).expect("found"));
        }
    }
    panic!("no master got {count} of {} sessions", count * 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_sessions_of_the_lost_master_complete() {
    let mut deployment = Deployment::start(3, 1).await;
    let (_gateway, url) = deployment.gateway("gateway", &[]).await;
    let _worker = deployment.worker("worker", "30ms");
    let (master, responses) = sessions_on_one_master(&deployment, &url, 3).await;
    let reads: Vec<_> = responses
        .into_iter()
        .map(|response| tokio::spawn(read_all_within(response, Duration::from_secs(90))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    deployment.cluster.kill_master(master).await;
    let promoted = deployment.cluster.wait_for_failover(master).await;
    assert_ne!(promoted, master);
    for (i, read) in reads.into_iter().enumerate() {
        let read = read.await.expect("the reader");
        assert_eq!(
            read.last_type(),
            "FinalAnswerStreamEnd",
            "session {i}: {:?}",
            kinds(&read.events)
        );
        read.assert_answered("2+3 = 5");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replicas_a_lost_master_ends_its_sessions_cleanly() {
    let mut deployment = Deployment::start(3, 0).await;
    let (_gateway, url) = deployment
        .gateway("gateway", &["--ack-timeout", "3s"])
        .await;
    let _worker = deployment.worker("worker", "30ms");
    let (master, responses) = sessions_on_one_master(&deployment, &url, 2).await;
    let reads: Vec<_> = responses
        .into_iter()
        .map(|response| tokio::spawn(read_all_within(response, Duration::from_secs(60))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    deployment.cluster.kill_master(master).await;
    for (i, read) in reads.into_iter().enumerate() {
        let read = read.await.expect("the reader");
        let last = read.events.last().expect("events");
        assert_eq!(last["event_type"], "error", "session {i}: {last}");
        assert_eq!(
            last["payload"]["code"], "broker_unavailable",
            "session {i}: {last}"
        );
    }
}

/// The test plays the worker, so it decides which sessions log their events
/// (the SDK's call) and which only `SPUBLISH` them (seed style, live-only).
struct TestWorker {
    bus: RedisBus,
}

impl TestWorker {
    async fn connect(cluster: &RedisCluster) -> Self {
        let config = RedisConfig {
            cluster: true,
            ..RedisConfig::new(cluster.seeds_arg())
        };
        let bus = RedisBus::connect(config).await.expect("the worker's bus");
        TestWorker { bus }
    }

    /// Live only: `SPUBLISH`, nothing logged. Retried (for up to 30 s)
    /// while the session's shard is away.
    async fn publish(&self, id: SessionId, event_type: &str, payload: Value) {
        let raw = serde_json::to_vec(&json!({"event_type": event_type, "payload": payload}))
            .expect("JSON");
        let channel = id.event_channel();
        retry_for_30s("SPUBLISH", || {
            self.bus.publish(&channel, raw.clone().into())
        })
        .await;
    }

    /// Logged, as attempt `a` (what the Rust SDK does); retried likewise.
    async fn emit(&self, id: SessionId, event_type: &str, payload: Value) {
        retry_for_30s("the log's append", || {
            sse_bridge_worker::publish_event(&self.bus, id, Some("a"), event_type, payload.clone())
        })
        .await;
    }
}

async fn retry_for_30s<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(3), attempt()).await {
            Ok(Ok(_)) => return,
            Ok(Err(error)) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} kept failing: {error:?}"
            ),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} kept timing out"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One session's response body, read frame by frame.
struct Stream {
    id: SessionId,
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Stream {
    /// The next event's JSON, or `None` if none came within `limit` (or
    /// the body ended).
    async fn next_event(&mut self, limit: Duration) -> Option<Value> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                        return serde_json::from_str(data).ok();
                    }
                    continue;
                }
                let chunk = self.body.next().await?.ok()?;
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Every event until the body ends (at most `limit`).
    async fn rest(&mut self, limit: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = Vec::new();
        while let Some(event) = self
            .next_event(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            events.push(event);
        }
        events
    }
}

/// Opens sessions until one master serves `on_lost` of them and another
/// master serves `on_healthy`; returns the first master and both groups.
async fn sessions_on_two_masters(
    deployment: &Deployment,
    url: &str,
    on_lost: usize,
    on_healthy: usize,
) -> (u16, Vec<Stream>, Vec<Stream>) {
    let http = client();
    let mut by_master: std::collections::HashMap<u16, Vec<Stream>> = Default::default();
    for _ in 0..(on_lost + on_healthy) * 8 {
        let response = post_session(&http, url, json!({"user_query": "q"})).await;
        assert_eq!(response.status(), 200);
        let id: SessionId = session_id(&response).parse().expect("a session id");
        let master = deployment
            .cluster
            .master_for_key(&format!("sse_events:{{{id}}}"))
            .await;
        by_master.entry(master).or_default().push(Stream {
            id,
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        });
        let lost = by_master
            .iter()
            .find(|(_, s)| s.len() >= on_lost)
            .map(|(m, _)| *m);
        let healthy = by_master
            .iter()
            .find(|(m, s)| Some(**m) != lost && s.len() >= on_healthy)
            .map(|(m, _)| *m);
        if let (Some(lost), Some(healthy)) = (lost, healthy) {
            let mut lost_streams = by_master.remove(&lost).expect("found");
            let mut healthy_streams = by_master.remove(&healthy).expect("found");
            lost_streams.truncate(on_lost);
            healthy_streams.truncate(on_healthy);
            return (lost, lost_streams, healthy_streams);
        }
    }
    panic!("sessions never spread over two masters");
}

/// Each live-only session gets its `worker_ack` and a first character, read
/// back before the shard is lost (output has started).
async fn start_live_only(worker: &TestWorker, streams: &mut [Stream]) {
    for stream in streams {
        worker.publish(stream.id, "worker_ack", json!({})).await;
        worker
            .publish(stream.id, "FinalAnswerStream", json!({"char": "a"}))
            .await;
        for _ in 0..2 {
            stream
                .next_event(Duration::from_secs(10))
                .await
                .expect("the session's first events");
        }
    }
}

/// While the other shard is away: every character published on the
/// healthy shard's live-only session arrives within `bound`, and the
/// session completes.
async fn healthy_session_streams_on(
    worker: &TestWorker,
    healthy: &mut Stream,
    during: Duration,
    bound: Duration,
) {
    let until = tokio::time::Instant::now() + during;
    let mut sent = 0;
    while tokio::time::Instant::now() < until {
        worker
            .publish(healthy.id, "FinalAnswerStream", json!({"char": "b"}))
            .await;
        sent += 1;
        let started = tokio::time::Instant::now();
        let event = healthy.next_event(bound).await.unwrap_or_else(|| {
            panic!("character {sent} on the healthy shard took more than {bound:?}")
        });
        assert_eq!(
            event["event_type"],
            "FinalAnswerStream",
            "character {sent} on the healthy shard: {event} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker
        .publish(healthy.id, "FinalAnswerStreamEnd", json!({}))
        .await;
    let rest = healthy.rest(Duration::from_secs(10)).await;
    assert_eq!(kinds(&rest), ["FinalAnswerStreamEnd"], "{rest:?}");
}

/// A live-only session on the lost shard, with output: once its shard is
/// back it ends with `history_lost` (what was published meanwhile is gone).
async fn live_only_session_lost_its_history(worker: &TestWorker, stream: &mut Stream) {
    worker
        .publish(stream.id, "FinalAnswerStream", json!({"char": "c"}))
        .await;
    worker
        .publish(stream.id, "FinalAnswerStreamEnd", json!({}))
        .await;
    let rest = stream.rest(Duration::from_secs(30)).await;
    let last = rest.last().expect("an end");
    assert_eq!(last["payload"]["code"], "history_lost", "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_master_touches_only_its_own_sessions() {
    let mut deployment = Deployment::start(3, 1).await;
    let (_gateway, url) = deployment
        .gateway("gateway", &["--ack-timeout", "20s"])
        .await;
    let worker = TestWorker::connect(&deployment.cluster).await;
    let (lost, mut on_lost, mut on_healthy) =
        sessions_on_two_masters(&deployment, &url, 2, 1).await;
    let [logged, live_only] = &mut on_lost[..] else {
        unreachable!("two sessions on the lost master")
    };
    worker.emit(logged.id, "worker_ack", json!({})).await;
    worker
        .emit(logged.id, "FinalAnswerStream", json!({"char": "a"}))
        .await;
    let mut logged_events = vec![];
    for _ in 0..2 {
        logged_events.extend(logged.next_event(Duration::from_secs(10)).await);
    }
    start_live_only(&worker, std::slice::from_mut(live_only)).await;
    start_live_only(&worker, &mut on_healthy).await;

    // Redis replicates asynchronously: a session the replica has not heard
    // of yet would be lost with its master (docs/design.md).
    deployment.cluster.wait_for_replication(lost).await;
    deployment.cluster.kill_master(lost).await;
    // Through the failover (about 3 s with a 2 s node timeout).
    healthy_session_streams_on(
        &worker,
        &mut on_healthy[0],
        Duration::from_secs(5),
        Duration::from_secs(1),
    )
    .await;
    deployment.cluster.wait_for_failover(lost).await;

    for _ in 0..3 {
        worker
            .emit(logged.id, "FinalAnswerStream", json!({"char": "b"}))
            .await;
    }
    worker
        .emit(logged.id, "FinalAnswerStreamEnd", json!({}))
        .await;
    logged_events.extend(logged.rest(Duration::from_secs(30)).await);
    assert_eq!(
        kinds(&logged_events),
        [
            "worker_ack",
            "FinalAnswerStream",
            "FinalAnswerStream",
            "FinalAnswerStream",
            "FinalAnswerStream",
            "FinalAnswerStreamEnd"
        ],
        "the logged session caught up, every event once: {logged_events:?}"
    );
    live_only_session_lost_its_history(&worker, live_only).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_master_delays_no_other_shard() {
    let mut deployment = Deployment::start(3, 0).await;
    let (_gateway, url) = deployment
        .gateway("gateway", &["--ack-timeout", "30s"])
        .await;
    let worker = TestWorker::connect(&deployment.cluster).await;
    let (stalled, mut on_stalled, mut on_healthy) =
        sessions_on_two_masters(&deployment, &url, 1, 1).await;
    start_live_only(&worker, &mut on_stalled).await;
    start_live_only(&worker, &mut on_healthy).await;

    deployment.cluster.pause_node(stalled);
    // Longer than the gateway takes to notice (a 5 s health check, 2 s
    // to answer), so its reconnects meet a shard that accepts but never
    // answers.
    healthy_session_streams_on(
        &worker,
        &mut on_healthy[0],
        Duration::from_secs(12),
        Duration::from_secs(1),
    )
    .await;
    deployment.cluster.resume_node(stalled);
    live_only_session_lost_its_history(&worker, &mut on_stalled[0]).await;
}

/// Thread records (PROTOCOL §8) on a cluster: each is one hash-tagged key,
/// written by compare-and-set on whichever master owns its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_records_are_compared_and_set_on_every_master() {
    use sse_bridge_core::thread::{ThreadRecord, ThreadStore};
    let cluster = RedisCluster::start(3, 0).await;
    let worker = TestWorker::connect(&cluster).await;
    let ttl = Duration::from_secs(60);
    let request = json!({"user_query": "q"}).as_object().cloned().unwrap();
    for n in 0..30 {
        let thread = format!("{}-{n}", unique("thread")).parse().unwrap();
        let first = SessionId::new();
        let record = ThreadRecord::open_run(None, "key:a", first, &request, None, 1)
            .unwrap()
            .record;
        assert!(
            worker
                .bus
                .store_thread(&thread, 0, &record, ttl)
                .await
                .unwrap()
        );
        assert!(
            !worker
                .bus
                .store_thread(&thread, 0, &record, ttl)
                .await
                .unwrap(),
            "a stale revision must not write"
        );
        let stored = worker.bus.load_thread(&thread).await.unwrap();
        assert_eq!(
            (stored.revision, stored.record.as_ref()),
            (1, Some(&record))
        );
        let next =
            ThreadRecord::open_run(Some(&record), "key:a", SessionId::new(), &request, None, 2)
                .unwrap()
                .record;
        assert!(
            worker
                .bus
                .store_thread(&thread, 1, &next, ttl)
                .await
                .unwrap()
        );
        assert_eq!(worker.bus.load_thread(&thread).await.unwrap().revision, 2);
    }
}
