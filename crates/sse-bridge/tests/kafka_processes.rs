//! Kafka for jobs, Redis for events, everything as separate processes; the
//! Kafka broker is librdkafka's mock cluster (a real Kafka-protocol TCP
//! listener on loopback) started by the test itself.

#![cfg(feature = "kafka")]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sse_bridge_kafka::mock::MockKafka;
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::redis::{
    REDIS_URL, RedisServer, eventually, plain, pubsub_channels, unique,
};
use sse_bridge_testkit::sse::{
    SseRead, client, kinds, post_session, read_all_within, read_events, read_rest,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

/// One topic and group on one mock broker.
struct Kafka {
    mock: MockKafka,
    topic: String,
    group: String,
}

impl Kafka {
    fn start(partitions: i32) -> Self {
        let mock = MockKafka::start();
        let topic = mock.topic(partitions);
        Kafka {
            mock,
            topic,
            group: unique("sse_workers"),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--queue",
            "kafka",
            "--kafka-brokers",
            &self.mock.brokers(),
            "--kafka-topic",
            &self.topic,
            "--group",
            &self.group,
        ]
        .map(str::to_owned)
        .to_vec();
        // The mock broker holds a rejoin for the session timeout; keep it short.
        for property in ["session.timeout.ms=2000", "heartbeat.interval.ms=500"] {
            args.extend(["--kafka-property".to_owned(), property.to_owned()]);
        }
        args
    }
}

async fn gateway(redis_url: &str, queue_args: &[String]) -> (ChildProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["serve", "--listen", &listen, "--redis-url", redis_url];
    args.extend(queue_args.iter().map(String::as_str));
    let process = ChildProcess::spawn(bin(), &args, &[], "kafka-gateway");
    let url = format!("http://{listen}");
    wait_healthy(&url, &process, Duration::from_secs(20)).await;
    (process, url)
}

fn worker(kafka: &Kafka, extra: &[&str]) -> ChildProcess {
    let mut args = vec![
        "worker".to_owned(),
        "--redis-url".to_owned(),
        REDIS_URL.to_owned(),
    ];
    args.extend(kafka.args());
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ChildProcess::spawn(bin(), &args, &[], "kafka-worker")
}

#[tokio::test]
async fn kafka_jobs_and_redis_events_complete_a_session_across_processes() {
    let kafka = Kafka::start(1);
    let (_gateway, url) = gateway(REDIS_URL, &kafka.args()).await;
    let _worker = worker(&kafka, &["--demo-delay", "0ms"]);
    let response = post_session(&client(), &url, json!({"user_query": "What is 9*9?"})).await;
    let read = read_all_within(response, Duration::from_secs(30)).await;
    read.assert_answered("9*9 = 81");
}

#[tokio::test]
async fn unreachable_kafka_is_503_and_leaves_no_subscription() {
    let redis = RedisServer::start();
    let closed_port = free_port();
    let queue = [
        "--queue".to_owned(),
        "kafka".to_owned(),
        "--kafka-brokers".to_owned(),
        format!("127.0.0.1:{closed_port}"),
        "--kafka-delivery-timeout".to_owned(),
        "1s".to_owned(),
    ];
    let (_gateway, url) = gateway(&redis.url(), &queue).await;
    let started = std::time::Instant::now();
    let response = post_session(&client(), &url, json!({"user_query": "q"})).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("could not dispatch"),
        "{body}"
    );
    // The gateway drops the subscription before answering; the UNSUBSCRIBE
    // itself reaches Redis through the subscriber task a moment later.
    let redis_url = redis.url();
    eventually(
        Duration::from_secs(5),
        "no subscription left at Redis",
        || {
            let redis_url = redis_url.clone();
            async move {
                pubsub_channels(&mut plain(&redis_url).await)
                    .await
                    .is_empty()
            }
        },
    )
    .await;
    let ready = client().get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}

/// Session ids in a worker's log lines that say "job done".
fn jobs_done(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("job done"))
        .filter_map(|line| line.split("session_id=").nth(1))
        .map(|rest| rest.chars().take(36).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_handle_each_of_100_sessions_exactly_once() {
    let kafka = Kafka::start(4);
    let (_gateway, url) = gateway(REDIS_URL, &kafka.args()).await;
    let first = worker(&kafka, &["--demo-delay", "0ms"]);
    let second = worker(&kafka, &["--demo-delay", "0ms"]);
    // Let the group settle so the test is about delivery, not rebalancing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let http = client();
    let sessions: Vec<_> = (0..100)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let response =
                    post_session(&http, &url, json!({ "user_query": format!("{i}-1") })).await;
                let id = response.headers()["x-session-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                (id, read_all_within(response, Duration::from_secs(60)).await)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let (id, read) = session.await.unwrap();
        assert_eq!(
            kinds(&read.events)
                .iter()
                .filter(|k| **k == "worker_ack")
                .count(),
            1
        );
        assert_eq!(
            read.text("FinalAnswerStream"),
            format!("{i}-1 = {}", i as i64 - 1)
        );
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (done_first, done_second) = (jobs_done(&first.output()), jobs_done(&second.output()));
    assert!(
        !done_first.is_empty() && !done_second.is_empty(),
        "one worker did everything"
    );
    let mut runs: HashMap<String, usize> = HashMap::new();
    for id in done_first.into_iter().chain(done_second) {
        *runs.entry(id).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "session {id} was handled {:?} times",
            runs.get(id)
        );
    }
}

/// A worker killed mid-answer: Kafka hands the job to another worker after
/// the rebalance. Its answer must not be spliced onto the first one's half:
/// the session ends with `worker_lost` (PROTOCOL §4, attempts).
#[tokio::test]
async fn a_job_redelivered_after_a_rebalance_mid_answer_ends_with_worker_lost_not_a_spliced_answer()
{
    let kafka = Kafka::start(1);
    // The redelivered job waits (`busy`) until the killed attempt is stale,
    // 3 heartbeat intervals after its last event: keep that short.
    let queue = [kafka.args(), vec!["--worker-heartbeat".into(), "1s".into()]].concat();
    let (_gateway, url) = gateway(REDIS_URL, &queue).await;
    let mut first = worker(&kafka, &["--demo-delay", "50ms"]);
    let response = post_session(&client(), &url, json!({"user_query": "What is 5+5?"})).await;
    let mut body = response.bytes_stream();
    read_events(&mut body, 3).await;
    first.kill();
    let _second = worker(&kafka, &["--demo-delay", "0ms"]);
    let text = read_rest(body, Duration::from_secs(40), "the redelivered job").await;
    assert!(
        !text.contains("worker_ack"),
        "a second worker_ack reached the client"
    );
    assert!(
        !text.contains("FinalAnswerStreamEnd"),
        "a spliced answer: {text}"
    );
    assert!(
        text.trim_end().ends_with(r#""code":"worker_lost"}}"#),
        "{text}"
    );
}

/// How the scale-in worker of [`scale_in_and_out_under_load`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// SIGTERM: it drains and leaves the group.
    Stopped,
    /// SIGKILL: a crash.
    Killed,
}

/// What became of the sessions of one scaling run.
struct ScalingRun {
    /// Session id and everything its POST stream carried, in start order.
    sessions: Vec<(String, SseRead)>,
    /// The log of the worker that left.
    departed_log: String,
}

impl ScalingRun {
    /// Sessions that did not end with `FinalAnswerStreamEnd`, by error code.
    fn failures(&self) -> HashMap<String, Vec<&str>> {
        let mut failures: HashMap<String, Vec<&str>> = HashMap::new();
        for (id, read) in &self.sessions {
            if read.last_type() == "FinalAnswerStreamEnd" {
                continue;
            }
            let code = read
                .events
                .last()
                .and_then(|e| e["payload"]["code"].as_str())
                .unwrap_or("no terminal event")
                .to_owned();
            failures.entry(code).or_default().push(id);
        }
        failures
    }
}

/// Issue 18's autoscaling scenario: sessions start at 10/s for 12 s with two
/// workers; a third joins at 3 s; the first leaves at 7 s (`departure`).
/// Demo answers take about 5 s, so every scale event finds jobs in flight.
///
/// The group runs with the suite's short session timeout. The mock broker
/// holds every rebalance round in which membership changed for the session
/// timeout less 1 s (a real broker ends a round once every member rejoined),
/// and a cooperative rebalance takes two rounds: with the README's 6 s, a
/// worker leaving within one round of another joining left partitions
/// without an owner for ~10 s in two runs of six, and jobs queued there
/// timed out (`ack_timeout`). A killed worker is noticed only after the
/// session timeout, and the jobs queued in its partitions wait that long
/// plus the rebalance.
async fn scale_in_and_out_under_load(departure: Departure) -> ScalingRun {
    let kafka = Kafka::start(6);
    let queue = kafka.args();
    let (_gateway, url) = gateway(REDIS_URL, &queue).await;
    let start_worker = || {
        let mut args = vec![
            "worker".to_owned(),
            "--redis-url".to_owned(),
            REDIS_URL.to_owned(),
        ];
        args.extend(queue.iter().cloned());
        args.extend(["--demo-delay".to_owned(), "50ms".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ChildProcess::spawn(bin(), &args, &[], "kafka-scaling-worker")
    };
    let mut first = start_worker();
    let second = start_worker();
    // Both in the group before the load starts, as in a running deployment.
    for worker in [&first, &second] {
        eventually(
            Duration::from_secs(30),
            "both workers own partitions",
            || async {
                worker.output().lines().any(|line| {
                    line.contains("job partitions assigned") && !line.ends_with("partitions=0")
                })
            },
        )
        .await;
    }
    let http = client();
    let started = tokio::time::Instant::now();
    let mut sessions = Vec::new();
    let mut third = None;
    let mut departed = None;
    for i in 0..120u32 {
        tokio::time::sleep_until(started + Duration::from_millis(100) * i).await;
        if i == 30 {
            third = Some(start_worker());
        }
        if i == 70 {
            departed = Some(match departure {
                Departure::Stopped => {
                    let pid = first.pid().to_string();
                    let sent = std::process::Command::new("kill")
                        .args(["-TERM", &pid])
                        .status()
                        .expect("kill -TERM");
                    assert!(sent.success());
                    first.log.clone()
                }
                Departure::Killed => {
                    first.kill();
                    first.log.clone()
                }
            });
        }
        let (http, url) = (http.clone(), url.clone());
        sessions.push(tokio::spawn(async move {
            let response =
                post_session(&http, &url, json!({ "user_query": format!("{i}+1") })).await;
            let id = response.headers()["x-session-id"]
                .to_str()
                .expect("an ASCII session id")
                .to_owned();
            (id, read_all_within(response, Duration::from_secs(60)).await)
        }));
    }
    let mut done = Vec::new();
    for session in sessions {
        done.push(session.await.expect("the session task"));
    }
    drop((second, third));
    let departed_log = departed.expect("the first worker left");
    // A stopped worker must have exited on its own by now.
    if departure == Departure::Stopped {
        let status = first.terminate(Duration::from_secs(5));
        assert!(status.success(), "the stopped worker exited with {status}");
    }
    ScalingRun {
        sessions: done,
        departed_log: std::fs::read_to_string(departed_log).unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_joining_and_stopping_under_load_fail_no_session() {
    let run = scale_in_and_out_under_load(Departure::Stopped).await;
    let failures = run.failures();
    let counts: HashMap<&String, usize> = failures.iter().map(|(c, ids)| (c, ids.len())).collect();
    eprintln!(
        "scale out + SIGTERM: {} sessions, failed: {counts:?}",
        run.sessions.len()
    );
    assert!(failures.is_empty(), "failed sessions by code: {counts:?}");
    for (i, (_, read)) in run.sessions.iter().enumerate() {
        read.assert_answered(&format!("{i}+1 = {}", i + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_load_loses_only_its_sessions_that_had_answered() {
    let run = scale_in_and_out_under_load(Departure::Killed).await;
    let failures = run.failures();
    let counts: HashMap<&String, usize> = failures.iter().map(|(c, ids)| (c, ids.len())).collect();
    eprintln!(
        "scale out + SIGKILL: {} sessions, failed: {counts:?}",
        run.sessions.len()
    );
    assert!(
        failures.keys().all(|code| code == "worker_lost"),
        "failed sessions by code: {counts:?}"
    );
    let finished_by_the_killed_one = jobs_done(&run.departed_log);
    for id in failures.get("worker_lost").into_iter().flatten() {
        let (_, read) = run
            .sessions
            .iter()
            .find(|(s, _)| s == id)
            .expect("a session");
        assert!(
            run.departed_log.contains(*id)
                && !finished_by_the_killed_one.iter().any(|done| done == id),
            "session {id} ended with worker_lost but was not running on the killed worker"
        );
        // Not a spliced answer either: one ack, then the first attempt's output.
        assert_eq!(
            kinds(&read.events)
                .iter()
                .filter(|k| **k == "worker_ack")
                .count(),
            1
        );
        assert!(
            read.events.len() > 2,
            "session {id} ended with worker_lost before any output: {:?}",
            read.events
        );
    }
}
