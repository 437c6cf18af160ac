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

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
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
