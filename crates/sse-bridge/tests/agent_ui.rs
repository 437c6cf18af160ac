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

/// The interop folder, its official client packages checked.
fn interop_with_clients() -> PathBuf {
    let dir = interop_dir();
    for package in ["@ag-ui/client", "ai"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "the npm package {package} is missing: run `npm ci --prefix tests/interop` at the workspace root"
        );
    }
    dir
}

/// A job queue on the real Redis, with a name of its own: the broker
/// arguments of its gateways and workers.
struct RedisQueue {
    stream: TempKey,
    group: String,
}

impl RedisQueue {
    fn new(name: &str) -> Self {
        RedisQueue {
            stream: TempKey::new(&format!("sse_jobs_{name}")),
            group: unique(&format!("sse_workers_{name}")),
        }
    }

    fn args(&self) -> [&str; 6] {
        [
            "--redis-url",
            REDIS_URL,
            "--redis-stream",
            &self.stream,
            "--group",
            &self.group,
        ]
    }

    /// A gateway on this queue (`extra` arguments after the broker's).
    async fn gateway(&self, extra: &[&str], name: &str) -> (ChildProcess, String) {
        let mut args = self.args().to_vec();
        args.extend(extra);
        gateway(&args, name).await
    }

    /// The demo agent as a separate worker process on this queue.
    fn worker(&self, demo_delay: &str, name: &str) -> ChildProcess {
        let mut args = vec!["worker"];
        args.extend(self.args());
        args.extend(["--demo-delay", demo_delay]);
        ChildProcess::spawn(bin(), &args, &[], name)
    }
}

/// Runs `node --test` on `files` of `dir` with `env`; on failure, panics
/// with the report and the logs of `processes`.
async fn node_test(
    dir: &Path,
    files: &[&str],
    env: &[(&str, &str)],
    processes: &[(&str, &ChildProcess)],
) {
    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .args(files.iter().map(|file| dir.join(file)))
        .current_dir(dir)
        .envs(env.iter().copied());
    let out = run_to_end(node, NODE_LIMIT, "`node --test` (Node 20+)").await;
    let report = out.report;
    if !out.status.success() {
        let logs = processes
            .iter()
            .map(|(name, process)| format!("--- {name} log:\n{}", process.output()))
            .collect::<Vec<_>>()
            .join("\n");
        panic!("`node --test` failed ({}):\n{report}\n{logs}", out.status);
    }
    println!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ag_ui_and_ai_sdk_clients_run_agents_through_the_gateway() {
    let dir = interop_with_clients();
    // Embedded queue and demo agent; 20 ms a piece makes a message last
    // about 2 s, long enough to reconnect to it mid-way.
    let (embedded, embedded_url) = gateway(&["--demo-delay", "20ms"], "agent-ui-embedded").await;
    // Gateway and worker as separate processes over Redis.
    let queue = RedisQueue::new("agent_ui");
    let (redis_gateway, redis_url) = queue.gateway(&[], "agent-ui-redis-gateway").await;
    let worker = queue.worker("10ms", "agent-ui-worker");
    // Over Redis with no worker at all: every session ends in `ack_timeout`.
    let idle = RedisQueue::new("agent_ui_idle");
    let (idle_gateway, idle_url) = idle
        .gateway(&["--ack-timeout", "500ms"], "agent-ui-no-worker")
        .await;
    node_test(
        &dir,
        &["ag_ui.test.mjs", "ai_sdk.test.mjs"],
        &[
            ("SSE_BRIDGE_GATEWAY", &embedded_url),
            ("SSE_BRIDGE_REDIS_GATEWAY", &redis_url),
            ("SSE_BRIDGE_NO_WORKER_GATEWAY", &idle_url),
        ],
        &[
            ("embedded gateway", &embedded),
            ("redis gateway", &redis_gateway),
            ("worker", &worker),
            ("no-worker gateway", &idle_gateway),
        ],
    )
    .await;
}

/// Human in the loop through the official clients (`ai_sdk_hitl.test.mjs`,
/// `ag_ui_hitl.test.mjs`): approvals, denials and client tools on the
/// embedded gateway, on a Redis gateway with a separate worker, and across
/// two Redis gateways sharing the worker and the threads (the interrupt
/// raised through A, answered through B).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_answer_interrupts_through_the_gateway() {
    let dir = interop_with_clients();
    let (embedded, embedded_url) = gateway(&["--demo-delay", "1ms"], "hitl-embedded").await;
    let queue = RedisQueue::new("agent_ui_hitl");
    let (gateway_a, url_a) = queue.gateway(&[], "hitl-redis-gateway-a").await;
    let (gateway_b, url_b) = queue.gateway(&[], "hitl-redis-gateway-b").await;
    let worker = queue.worker("1ms", "hitl-worker");
    node_test(
        &dir,
        &["ai_sdk_hitl.test.mjs", "ag_ui_hitl.test.mjs"],
        &[
            ("SSE_BRIDGE_GATEWAY", &embedded_url),
            ("SSE_BRIDGE_REDIS_GATEWAY", &url_a),
            ("SSE_BRIDGE_REDIS_GATEWAY_B", &url_b),
        ],
        &[
            ("embedded gateway", &embedded),
            ("redis gateway A", &gateway_a),
            ("redis gateway B", &gateway_b),
            ("worker", &worker),
        ],
    )
    .await;
}

/// The richer events of PROTOCOL §9 (the demo agent's "research" tour)
/// through the official clients (`ag_ui_richer.test.mjs`,
/// `ai_sdk_richer.test.mjs`): `HttpAgent`'s state, streamed tool arguments,
/// steps and usage; the AI SDK chat's streaming tool part, source, file,
/// data parts and usage metadata. On the embedded gateway and on a Redis
/// gateway with a separate worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_show_the_richer_events() {
    let dir = interop_with_clients();
    // A few ms a piece: the tool input arrives in separate reads.
    let (embedded, embedded_url) = gateway(&["--demo-delay", "5ms"], "richer-embedded").await;
    let queue = RedisQueue::new("agent_ui_richer");
    let (redis_gateway, redis_url) = queue.gateway(&[], "richer-redis-gateway").await;
    let worker = queue.worker("5ms", "richer-worker");
    node_test(
        &dir,
        &["ag_ui_richer.test.mjs", "ai_sdk_richer.test.mjs"],
        &[
            ("SSE_BRIDGE_GATEWAY", &embedded_url),
            ("SSE_BRIDGE_REDIS_GATEWAY", &redis_url),
        ],
        &[
            ("embedded gateway", &embedded),
            ("redis gateway", &redis_gateway),
            ("worker", &worker),
        ],
    )
    .await;
}
