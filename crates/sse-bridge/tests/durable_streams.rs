//! Durable Streams conformance: the protocol's own suite
//! (`@durable-streams/server-conformance-tests`, pinned in
//! `tests/durable-streams/package.json`) run by vitest against a gateway
//! process, once per backend (in memory, and Redis at 127.0.0.1:6379; the
//! suite's streams stay there, small, under `sse_ds_*` keys). Every test must pass but the suite's opt-in
//! subscription tests, which it skips (README, "Durable Streams").
//!
//! Needs `npm ci --prefix tests/durable-streams` (`.ci/run` does it). The
//! gateway is `$SSE_BRIDGE_RELEASE_BIN` when set (`.ci/run` builds the
//! release profile), else this test build's binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::{ChildProcess, run_to_end, spawn_gateway};

const SUITE_LIMIT: Duration = Duration::from_secs(600);
/// The suite's tests of the reserved subscription APIs, skipped unless asked for.
const SKIPPED: u64 = 6;

fn bin() -> PathBuf {
    match std::env::var_os("SSE_BRIDGE_RELEASE_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_sse-bridge")),
    }
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/durable-streams")
}

/// Counts of one run of the suite.
#[derive(Debug)]
struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
    failures: Vec<String>,
}

/// Runs the suite against a gateway started with `args`.
async fn conformance(args: &[&str], name: &str) -> (Counts, ChildProcess) {
    let dir = suite_dir();
    assert!(
        dir.join("node_modules/@durable-streams/server-conformance-tests")
            .is_dir(),
        "the conformance suite is missing: run `npm ci --prefix tests/durable-streams` at the workspace root"
    );
    let mut all = vec![
        "--cors-allow-origin",
        "*",
        "--stream-long-poll-timeout",
        "3s",
    ];
    all.extend(args);
    let (gateway, url) = spawn_gateway(&bin(), &all, name).await;
    let report = std::env::temp_dir().join(format!("{name}-{}.json", std::process::id()));
    let mut vitest = tokio::process::Command::new("node");
    vitest
        .arg("node_modules/vitest/vitest.mjs")
        .args(["run", "conformance.test.mjs", "--reporter=json"])
        .arg(format!("--outputFile={}", report.display()))
        .current_dir(&dir)
        .env("DS_URL", &url);
    let out = run_to_end(vitest, SUITE_LIMIT, "the conformance suite (vitest)").await;
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no vitest report ({e}): {}\n{}\n--- gateway log:\n{}",
            out.status,
            out.report,
            gateway.output()
        )
    });
    let _ = std::fs::remove_file(&report);
    let json: serde_json::Value = serde_json::from_str(&text).expect("a vitest JSON report");
    let count = |field: &str| json[field].as_u64().unwrap_or(0);
    let failures = json["testResults"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|file| {
            file["assertionResults"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|test| test["status"] == "failed")
        .map(|test| {
            let message = test["failureMessages"][0].as_str().unwrap_or_default();
            format!(
                "{} :: {}",
                test["fullName"].as_str().unwrap_or_default(),
                message.lines().next().unwrap_or_default()
            )
        })
        .collect();
    let counts = Counts {
        passed: count("numPassedTests"),
        failed: count("numFailedTests"),
        skipped: count("numPendingTests") + count("numTodoTests"),
        failures,
    };
    (counts, gateway)
}

fn check(backend: &str, counts: &Counts, gateway: &ChildProcess) {
    println!(
        "durable streams conformance ({backend}): {} passed, {} failed, {} skipped",
        counts.passed, counts.failed, counts.skipped
    );
    assert!(
        counts.failed == 0 && counts.skipped == SKIPPED && counts.passed > 300,
        "{backend}: {counts:?}\n{}\n--- gateway log:\n{}",
        counts.failures.join("\n"),
        gateway.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_the_embedded_store() {
    let (counts, gateway) = conformance(&[], "ds-conformance-embedded").await;
    check("embedded", &counts, &gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_redis() {
    use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
    let jobs = TempKey::new("sse_jobs_ds_conformance");
    let group = unique("sse_workers_ds_conformance");
    let args = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &jobs,
        "--group",
        &group,
    ];
    let (counts, gateway) = conformance(&args, "ds-conformance-redis").await;
    check("redis", &counts, &gateway);
}

/// `@durable-streams/client` follows a live demo-agent session at
/// `/v1/stream/sessions/{id}` to its end, by long-poll and by SSE, and reads
/// what the session's follower and creator read (`follow-session.mjs`).
async fn the_client_follows_a_live_session(args: &[&str], name: &str) {
    let dir = suite_dir();
    assert!(
        dir.join("node_modules/@durable-streams/client").is_dir(),
        "the client is missing: run `npm ci --prefix tests/durable-streams` at the workspace root"
    );
    // The demo agent's pieces 20 ms apart: the readers join a live run.
    let mut all = vec!["--demo-delay", "20ms"];
    all.extend(args);
    let (gateway, url) = spawn_gateway(&bin(), &all, name).await;
    let mut node = tokio::process::Command::new("node");
    node.arg("follow-session.mjs")
        .current_dir(&dir)
        .env("GW_URL", &url);
    let out = run_to_end(node, Duration::from_secs(60), "follow-session.mjs").await;
    println!("{}", out.report.trim());
    assert!(
        out.status.success(),
        "{}\n--- gateway log:\n{}",
        out.report,
        gateway.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_live_session_on_the_embedded_store() {
    the_client_follows_a_live_session(&[], "ds-session-embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_live_session_on_redis() {
    use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
    let jobs = TempKey::new("sse_jobs_ds_session");
    let group = unique("sse_workers_ds_session");
    let args = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &jobs,
        "--group",
        &group,
        "--with-worker",
    ];
    the_client_follows_a_live_session(&args, "ds-session-redis").await;
}

/// `examples/http_worker.py` (httpx only) takes a job from `/v1/stream/jobs`
/// and serves its session end to end over HTTP; the client's POST streams
/// the answer and the session's stream ends closed.
async fn an_http_worker_serves_a_session(args: &[&str], name: &str) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut all = vec!["--http-workers", "--worker-api-key", "py=worker-secret"];
    all.extend(args);
    let (gateway, url) = spawn_gateway(&bin(), &all, name).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/http_worker.py");
    let mut worker = tokio::process::Command::new(&python)
        .arg(script)
        .env("SSE_BRIDGE_URL", &url)
        .env("SSE_BRIDGE_WORKER_KEY", "worker-secret")
        .env("JOBS", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with httpx (pip install httpx)");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    assert!(
        matches!(&ready, Ok(Ok(Some(line))) if line == "ready"),
        "{ready:?}\n{}",
        gateway.output()
    );
    let client = sse_bridge_testkit::sse::client();
    let response = sse_bridge_testkit::sse::post_session(
        &client,
        &url,
        serde_json::json!({"user_query": "2+3?"}),
    )
    .await;
    let id = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let read = sse_bridge_testkit::sse::read_all(response).await;
    read.assert_answered("You asked: 2+3?");
    let served = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    assert!(
        matches!(&served, Ok(Ok(Some(line))) if line == "served 1"),
        "{served:?}"
    );
    let stream = client
        .get(format!("{url}/v1/stream/sessions/{id}?offset=-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["stream-closed"], "true");
    let events: Vec<serde_json::Value> = stream.json().await.unwrap();
    assert_eq!(events, read.events);
    // Clients can take no jobs and publish nothing.
    let jobs = client
        .get(format!("{url}/v1/stream/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_worker_serves_a_session_on_the_embedded_store() {
    an_http_worker_serves_a_session(&[], "ds-http-worker-embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_worker_serves_a_session_on_redis() {
    use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
    let jobs = TempKey::new("sse_jobs_ds_http_worker");
    let group = unique("sse_workers_ds_http_worker");
    let args = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &jobs,
        "--group",
        &group,
    ];
    an_http_worker_serves_a_session(&args, "ds-http-worker-redis").await;
}

/// The jobs stream is the deployment's job queue over HTTP: gateways that
/// share a Redis and a `--redis-stream` share it (a job dispatched through
/// one is read through the other); a deployment with another queue never
/// sees those jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_streams_are_named_by_the_job_queue() {
    use sse_bridge_testkit::redis::{REDIS_URL, unique};
    let gateway = |queue: String, name: &'static str| async move {
        let args = [
            "--redis-url",
            REDIS_URL,
            "--redis-stream",
            &queue,
            "--http-workers",
            "--worker-api-key",
            "py=worker-secret",
        ];
        spawn_gateway(&bin(), &args, name).await
    };
    let (ours, theirs) = (unique("sse_jobs_ds_ours"), unique("sse_jobs_ds_theirs"));
    let (_a, url_a) = gateway(ours.clone(), "ds-jobs-a").await;
    let (_b, url_b) = gateway(ours, "ds-jobs-b").await;
    let (_c, url_c) = gateway(theirs, "ds-jobs-c").await;

    let client = sse_bridge_testkit::sse::client();
    let response = sse_bridge_testkit::sse::post_session(
        &client,
        &url_a,
        serde_json::json!({"user_query": "whose job?"}),
    )
    .await;
    let id = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let jobs_of = |url: String| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("{url}/v1/stream/jobs?offset=-1"))
                .bearer_auth("worker-secret")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let jobs: Vec<serde_json::Value> = response.json().await.unwrap();
            jobs.iter()
                .map(|job| job["session_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        jobs_of(url_b).await,
        std::slice::from_ref(&id),
        "the same queue, another gateway"
    );
    assert_eq!(jobs_of(url_a).await, [id]);
    assert!(
        jobs_of(url_c).await.is_empty(),
        "another queue's jobs stream"
    );
    drop(response);
}
