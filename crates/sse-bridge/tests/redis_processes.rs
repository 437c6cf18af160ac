//! The binary as separate processes against the real Redis: gateway and
//! worker apart, the `publish` CLI, the Python example worker, 500 sessions
//! on few connections, a Redis restart mid-stream, a crashed worker.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::redis::{
    REDIS_URL, RedisServer, TempKey, clients_named, eventually, plain, unique,
};
use sse_bridge_testkit::sse::{
    client, kinds, post_session, read_all, read_all_within, read_events, read_rest,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

/// Stream and group names no other test uses.
struct Names {
    stream: TempKey,
    group: String,
}

impl Names {
    fn new() -> Self {
        Names {
            stream: TempKey::new("sse_jobs_test"),
            group: unique("sse_workers_test"),
        }
    }

    fn args<'a>(&'a self, redis_url: &'a str) -> Vec<&'a str> {
        vec![
            "--redis-url",
            redis_url,
            "--redis-stream",
            &self.stream,
            "--group",
            &self.group,
        ]
    }
}

async fn gateway(names: &Names, redis_url: &str, extra: &[&str]) -> (ChildProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["serve", "--listen", &listen];
    args.extend(names.args(redis_url));
    args.extend(extra);
    let process = ChildProcess::spawn(bin(), &args, &[], "gateway");
    let url = format!("http://{listen}");
    wait_healthy(&url, &process, Duration::from_secs(20)).await;
    (process, url)
}

fn worker(names: &Names, redis_url: &str, extra: &[&str]) -> ChildProcess {
    let mut args = vec!["worker"];
    args.extend(names.args(redis_url));
    args.extend(extra);
    ChildProcess::spawn(bin(), &args, &[], "worker")
}

#[tokio::test]
async fn gateway_and_worker_as_separate_processes_complete_a_session() {
    let names = Names::new();
    let (_gateway, url) = gateway(&names, REDIS_URL, &[]).await;
    let _worker = worker(&names, REDIS_URL, &["--demo-delay", "0ms"]);
    let read =
        read_all(post_session(&client(), &url, json!({"user_query": "What is 6*7?"})).await).await;
    read.assert_answered("6*7 = 42");
}

#[tokio::test]
async fn publish_cli_feeds_a_session() {
    let names = Names::new();
    let (_gateway, url) = gateway(&names, REDIS_URL, &[]).await;
    let response = post_session(&client(), &url, json!({"user_query": "q"})).await;
    let session = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let publish = |event_type: &str, payload: &str| {
        let out = std::process::Command::new(bin())
            .args([
                "publish",
                "--redis-url",
                REDIS_URL,
                "--session",
                &session,
                "--type",
                event_type,
                "--payload",
                payload,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let acked = publish("worker_ack", "{}");
    assert!(
        acked.starts_with("logged ") && acked.trim_end().ends_with(", delivered to 1"),
        "one gateway listens: {acked}"
    );
    publish("FinalAnswerStream", r#"{"char": "hi"}"#);
    publish("FinalAnswerStreamEnd", "{}");
    let read = read_all(response).await;
    assert_eq!(
        kinds(&read.events),
        ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    );

    let bad = std::process::Command::new(bin())
        .args([
            "publish",
            "--redis-url",
            REDIS_URL,
            "--session",
            "nope",
            "--type",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("UUID"));
}

#[tokio::test]
async fn python_redis_py_example_worker_drives_a_session() {
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_redis_py = std::process::Command::new(&python)
        .args(["-c", "import redis"])
        .status();
    assert!(
        has_redis_py.is_ok_and(|s| s.success()),
        "{python} cannot import redis; run .ci/run (it makes a venv with redis-py) or set SSE_BRIDGE_PYTHON"
    );
    let names = Names::new();
    let (_gateway, url) = gateway(&names, REDIS_URL, &[]).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python_worker.py");
    let envs = [
        ("REDIS_URL", REDIS_URL),
        ("SSE_STREAM", &names.stream),
        ("SSE_GROUP", names.group.as_str()),
    ];
    let _python = ChildProcess::spawn(
        Path::new(&python),
        &[example.to_str().unwrap()],
        &envs,
        "python-worker",
    );
    let read =
        read_all(post_session(&client(), &url, json!({"user_query": "hello\n\ndata: x"})).await)
            .await;
    read.assert_answered("Echo: hello\n\ndata: x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sessions_on_one_gateway_use_a_handful_of_connections() {
    let names = Names::new();
    let gateway_name = unique("gw");
    let (_gateway, url) = gateway(&names, REDIS_URL, &["--redis-client-name", &gateway_name]).await;
    let _worker = worker(
        &names,
        REDIS_URL,
        &["--demo-delay", "2ms", "--concurrency", "600"],
    );
    let http = client();
    let sessions: Vec<_> = (0..500)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let response =
                    post_session(&http, &url, json!({ "user_query": format!("{i}+1000") })).await;
                assert_eq!(response.status(), 200);
                read_all_within(response, Duration::from_secs(90)).await
            })
        })
        .collect();
    // Sample the gateway's connections while the streams are open.
    let mut redis = plain(REDIS_URL).await;
    let mut most = 0;
    for _ in 0..10 {
        most = most.max(clients_named(&mut redis, &gateway_name).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, session) in sessions.into_iter().enumerate() {
        let read = session.await.unwrap();
        assert_eq!(
            read.text("FinalAnswerStream"),
            format!("{i}+1000 = {}", i + 1000)
        );
        assert_eq!(
            kinds(&read.events)
                .iter()
                .filter(|k| **k == "worker_ack")
                .count(),
            1
        );
        assert_eq!(read.last_type(), "FinalAnswerStreamEnd");
    }
    assert!(
        (1..=4).contains(&most),
        "the gateway held {most} Redis connections for 500 streams"
    );
    println!("gateway Redis connections during 500 sessions: {most}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream_ends_every_session_cleanly() {
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let names = Names::new();
    let (_gateway, url) = gateway(&names, &redis_url, &["--ack-timeout", "5s"]).await;
    let _worker = worker(&names, &redis_url, &["--demo-delay", "25ms"]);
    let http = client();
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let response = post_session(&http, &url, json!({"user_query": "What is 1+1?"})).await;
        let mut body = response.bytes_stream();
        read_events(&mut body, 2).await;
        bodies.push(body);
    }
    let ready = |expect: u16| {
        let (http, url) = (http.clone(), url.clone());
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(format!("{url}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == expect)
            }
        }
    };
    redis.kill();
    eventually(
        Duration::from_secs(10),
        "/readyz to report not ready",
        ready(503),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    eventually(
        Duration::from_secs(10),
        "/readyz to report ready again",
        ready(200),
    )
    .await;

    for body in bodies {
        let text = read_rest(body, Duration::from_secs(30), "a session after the restart").await;
        let last = text.trim_end().rsplit("\n\n").next().unwrap().to_owned();
        let last: serde_json::Value =
            serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
        let ended_well = last["event_type"] == "FinalAnswerStreamEnd"
            || (last["event_type"] == "error" && last["payload"]["code"] == "broker_unavailable");
        assert!(ended_well, "session ended with {last}");
    }
}

/// The crash from issue #8, automated: a worker SIGKILLed mid-answer, its
/// job reclaimed by a second worker. The client gets the exact answer once
/// or `error`/`worker_lost` — never the two attempts spliced together.
#[tokio::test]
async fn job_of_a_crashed_worker_never_splices_two_answers() {
    let names = Names::new();
    // The reclaimed job waits (`busy`) until the killed attempt is stale,
    // 3 heartbeat intervals after its last event: keep that short.
    let (_gateway, url) = gateway(&names, REDIS_URL, &["--worker-heartbeat", "1s"]).await;
    for kill_after in [1, 3] {
        let mut first = worker(
            &names,
            REDIS_URL,
            &["--demo-delay", "50ms", "--redis-claim-idle", "1s"],
        );
        let response = post_session(&client(), &url, json!({"user_query": "What is 12*12?"})).await;
        let mut body = response.bytes_stream();
        let seen = read_events(&mut body, kill_after).await;
        first.kill();
        let second = worker(
            &names,
            REDIS_URL,
            &["--demo-delay", "0ms", "--redis-claim-idle", "1s"],
        );
        let text = read_rest(body, Duration::from_secs(30), "the second worker").await;
        let mut events: Vec<serde_json::Value> = seen;
        for frame in text.split_terminator("\n\n") {
            if let Some(json) = frame.strip_prefix("data: ") {
                events.push(serde_json::from_str(json).unwrap());
            }
        }
        let acks = kinds(&events)
            .iter()
            .filter(|k| **k == "worker_ack")
            .count();
        assert_eq!(acks, 1, "{events:?}");
        let last = events.last().unwrap();
        if last["event_type"] == "FinalAnswerStreamEnd" {
            let answer: String = events
                .iter()
                .filter(|e| e["event_type"] == "FinalAnswerStream")
                .filter_map(|e| e["payload"]["char"].as_str())
                .collect();
            assert_eq!(answer, "12*12 = 144");
            let calls = kinds(&events)
                .iter()
                .filter(|k| **k == "AgentToolCallStart")
                .count();
            assert_eq!(calls, 1, "{events:?}");
        } else {
            assert_eq!(last["payload"]["code"], "worker_lost", "{events:?}");
        }
        println!("killed after {kill_after} events: ended with {last}");
        drop(second);
    }
}

/// A broker blip is invisible to new sessions (issue 18): sessions that
/// arrive while the gateway's Redis restarts wait for it, within
/// `--start-timeout`, instead of getting `503`, and complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_arrive_while_redis_restarts_wait_for_it_and_complete() {
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let names = Names::new();
    let (_gateway, url) = gateway(&names, &redis_url, &["--start-timeout", "10s"]).await;
    let _worker = worker(&names, &redis_url, &["--demo-delay", "0ms"]);
    let http = client();
    // The link is up: a session completes.
    let body = post_session(&http, &url, json!({"user_query": "What is 1+1?"})).await;
    read_rest(body.bytes_stream(), Duration::from_secs(20), "a session").await;

    redis.kill();
    let mut sessions = Vec::new();
    for i in 0..10 {
        let (http, url) = (http.clone(), url.clone());
        sessions.push(tokio::spawn(async move {
            let response = post_session(
                &http,
                &url,
                json!({"user_query": format!("What is {i}+1?")}),
            )
            .await;
            let status = response.status();
            let text = read_rest(
                response.bytes_stream(),
                Duration::from_secs(30),
                "a session",
            )
            .await;
            (status, text)
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart();
    for session in sessions {
        let (status, text) = session.await.unwrap();
        assert_eq!(status, 200, "{text}");
        let last = text.trim_end().rsplit("\n\n").next().unwrap().to_owned();
        assert!(
            last.contains(r#""event_type":"FinalAnswerStreamEnd""#),
            "the session completed: {text}"
        );
    }
}

/// A gateway SIGKILLed while its client streams: nobody runs that client's
/// departure, so before issue 18 the session was never cancelled. Its
/// presence lapses and the other gateway cancels it after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_abandoned_by_a_crashed_gateway_is_cancelled_by_another() {
    let names = Names::new();
    let presence = ["--presence-lease", "1s", "--cancel-grace", "1s"];
    let (mut crashing, url) = gateway(&names, REDIS_URL, &presence).await;
    let (_survivor, survivor_url) = gateway(&names, REDIS_URL, &presence).await;
    let _worker = worker(&names, REDIS_URL, &["--demo-delay", "300ms"]);
    let response = post_session(&client(), &url, json!({"user_query": "What is 2+3?"})).await;
    let id = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.bytes_stream();
    read_events(&mut body, 3).await;
    crashing.kill();
    // Not followed meanwhile (a follower would keep it alive, rightly):
    // lease 1 s, then a sweep, then the 1 s grace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let follow = client()
        .get(format!("{survivor_url}/v1/react/sessions/{id}/events"))
        .send()
        .await
        .unwrap();
    let text = read_rest(
        follow.bytes_stream(),
        Duration::from_secs(20),
        "the session's end",
    )
    .await;
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.contains(r#""code":"cancelled""#),
        "cancelled, not run to its end: {last}"
    );
}
