//! Interop with the official agent-UI clients, run by Node: `@ag-ui/client`'s
//! `HttpAgent` against `POST /v1/ag-ui` (and the run replay), and the AI
//! SDK's `DefaultChatTransport` + `readUIMessageStream` against
//! `POST /v1/ai-sdk/chat` (and `reconnectToStream`), each on the embedded
//! gateway, on a Redis gateway with a separate worker process, and on a
//! Redis gateway no worker serves (the error each client sees); human in
//! the loop and the richer events (PROTOCOL §8, §9) through the same clients.
//!
//! The Node side is `tests/interop/ag_ui*.test.mjs` and
//! `tests/interop/ai_sdk*.test.mjs` (`node --test`); it needs
//! `npm ci --prefix tests/interop` (`.ci/run` does it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::{ChildProcess, run_to_end, spawn_gateway};
use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};

const NODE_LIMIT: Duration = Duration::from_secs(120);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// A gateway (`serve` with `args`), once healthy, and its URL.
async fn gateway(args: &[&str], name: &str) -> (ChildProcess, String) {
    spawn_gateway(bin(), args, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ag_ui_and_ai_sdk_clients_run_agents_through_the_gateway() {
    let dir = interop_dir();
    for package in ["@ag-ui/client", "ai"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "the npm package {package} is missing: run `npm ci --prefix tests/interop` at the workspace root"
        );
    }

    // Embedded queue and demo agent; 20 ms a piece makes a message last
    // about 2 s, long enough to reconnect to it mid-way.
    let (embedded, embedded_url) = gateway(&["--demo-delay", "20ms"], "agent-ui-embedded").await;

    // Gateway and worker as separate processes over Redis.
    let stream = TempKey::new("sse_jobs_agent_ui");
    let group = unique("sse_workers_agent_ui");
    let redis = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &stream,
        "--group",
        &group,
    ];
    let (redis_gateway, redis_url) = gateway(&redis, "agent-ui-redis-gateway").await;
    let mut worker_args = vec!["worker"];
    worker_args.extend(redis);
    worker_args.extend(["--demo-delay", "10ms"]);
    let worker = ChildProcess::spawn(bin(), &worker_args, &[], "agent-ui-worker");

    // Over Redis with no worker at all: every session ends in `ack_timeout`.
    let idle_stream = TempKey::new("sse_jobs_agent_ui_idle");
    let idle_group = unique("sse_workers_agent_ui_idle");
    let (idle_gateway, idle_url) = gateway(
        &[
            "--redis-url",
            REDIS_URL,
            "--redis-stream",
            &idle_stream,
            "--group",
            &idle_group,
            "--ack-timeout",
            "500ms",
        ],
        "agent-ui-no-worker",
    )
    .await;

    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .arg(dir.join("ag_ui.test.mjs"))
        .arg(dir.join("ai_sdk.test.mjs"))
        .current_dir(&dir)
        .env("SSE_BRIDGE_GATEWAY", &embedded_url)
        .env("SSE_BRIDGE_REDIS_GATEWAY", &redis_url)
        .env("SSE_BRIDGE_NO_WORKER_GATEWAY", &idle_url);
    let out = run_to_end(node, NODE_LIMIT, "`node --test` (Node 20+)").await;
    let report = out.report;
    if !out.status.success() {
        let logs = [
            ("embedded gateway", &embedded),
            ("redis gateway", &redis_gateway),
            ("worker", &worker),
            ("no-worker gateway", &idle_gateway),
        ]
        .map(|(name, process)| format!("--- {name} log:\n{}", process.output()))
        .join("\n");
        panic!("`node --test` failed ({}):\n{report}\n{logs}", out.status);
    }
    println!("{report}");
}

/// Human in the loop through the official clients (`ai_sdk_hitl.test.mjs`,
/// `ag_ui_hitl.test.mjs`): approvals, denials and client tools on the
/// embedded gateway, on a Redis gateway with a separate worker, and across
/// two Redis gateways sharing the worker and the threads (the interrupt
/// raised through A, answered through B).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_answer_interrupts_through_the_gateway() {
    let dir = interop_dir();
    for package in ["@ag-ui/client", "ai"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "the npm package {package} is missing: run `npm ci --prefix tests/interop` at the workspace root"
        );
    }
    let (embedded, embedded_url) = gateway(&["--demo-delay", "1ms"], "hitl-embedded").await;

    let stream = TempKey::new("sse_jobs_agent_ui_hitl");
    let group = unique("sse_workers_agent_ui_hitl");
    let redis = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &stream,
        "--group",
        &group,
    ];
    let (gateway_a, url_a) = gateway(&redis, "hitl-redis-gateway-a").await;
    let (gateway_b, url_b) = gateway(&redis, "hitl-redis-gateway-b").await;
    let mut worker_args = vec!["worker"];
    worker_args.extend(redis);
    worker_args.extend(["--demo-delay", "1ms"]);
    let worker = ChildProcess::spawn(bin(), &worker_args, &[], "hitl-worker");

    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .arg(dir.join("ai_sdk_hitl.test.mjs"))
        .arg(dir.join("ag_ui_hitl.test.mjs"))
        .current_dir(&dir)
        .env("SSE_BRIDGE_GATEWAY", &embedded_url)
        .env("SSE_BRIDGE_REDIS_GATEWAY", &url_a)
        .env("SSE_BRIDGE_REDIS_GATEWAY_B", &url_b);
    let out = run_to_end(node, NODE_LIMIT, "`node --test` (Node 20+)").await;
    let report = out.report;
    if !out.status.success() {
        let logs = [
            ("embedded gateway", &embedded),
            ("redis gateway A", &gateway_a),
            ("redis gateway B", &gateway_b),
            ("worker", &worker),
        ]
        .map(|(name, process)| format!("--- {name} log:\n{}", process.output()))
        .join("\n");
        panic!("`node --test` failed ({}):\n{report}\n{logs}", out.status);
    }
    println!("{report}");
}

/// The richer events of PROTOCOL §9 (the demo agent's "research" tour)
/// through the official clients (`ag_ui_richer.test.mjs`,
/// `ai_sdk_richer.test.mjs`): `HttpAgent`'s state, streamed tool arguments,
/// steps and usage; the AI SDK chat's streaming tool part, source, file,
/// data parts and usage metadata. On the embedded gateway and on a Redis
/// gateway with a separate worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_show_the_richer_events() {
    let dir = interop_dir();
    for package in ["@ag-ui/client", "ai"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "the npm package {package} is missing: run `npm ci --prefix tests/interop` at the workspace root"
        );
    }
    // A few ms a piece: the tool input arrives in separate reads.
    let (embedded, embedded_url) = gateway(&["--demo-delay", "5ms"], "richer-embedded").await;

    let stream = TempKey::new("sse_jobs_agent_ui_richer");
    let group = unique("sse_workers_agent_ui_richer");
    let redis = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &stream,
        "--group",
        &group,
    ];
    let (redis_gateway, redis_url) = gateway(&redis, "richer-redis-gateway").await;
    let mut worker_args = vec!["worker"];
    worker_args.extend(redis);
    worker_args.extend(["--demo-delay", "5ms"]);
    let worker = ChildProcess::spawn(bin(), &worker_args, &[], "richer-worker");

    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .arg(dir.join("ag_ui_richer.test.mjs"))
        .arg(dir.join("ai_sdk_richer.test.mjs"))
        .current_dir(&dir)
        .env("SSE_BRIDGE_GATEWAY", &embedded_url)
        .env("SSE_BRIDGE_REDIS_GATEWAY", &redis_url);
    let out = run_to_end(node, NODE_LIMIT, "`node --test` (Node 20+)").await;
    let report = out.report;
    if !out.status.success() {
        let logs = [
            ("embedded gateway", &embedded),
            ("redis gateway", &redis_gateway),
            ("worker", &worker),
        ]
        .map(|(name, process)| format!("--- {name} log:\n{}", process.output()))
        .join("\n");
        panic!("`node --test` failed ({}):\n{report}\n{logs}", out.status);
    }
    println!("{report}");
}
