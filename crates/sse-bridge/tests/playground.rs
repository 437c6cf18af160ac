//! The browser side, run by Node: the playground page (`GET /`) driven in
//! Chromium through playwright-core against the `sse-bridge` binary — a
//! whole session, the frames switch, a shared link, Stop, an error event, a
//! connection cut mid-stream, and human in the loop (an approval card
//! approved and denied, a client tool run in the page, a reload while an
//! approval waits) — and the JavaScript client's own unit tests.
//!
//! The Node sides are `tests/interop/playground.test.mjs` (needs
//! `npm ci --prefix tests/interop` and Debian's `chromium`, or
//! `SSE_BRIDGE_CHROMIUM`; `.ci/run` installs both) and
//! `clients/js/test/*.test.mjs` (no dependencies).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::{ChildProcess, run_to_end, spawn_gateway};
use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
use sse_bridge_testkit::sse::client;

const NODE_LIMIT: Duration = Duration::from_secs(180);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A gateway (`serve` with `args`), once healthy, and its URL.
async fn gateway(args: &[&str], name: &str) -> (ChildProcess, String) {
    spawn_gateway(bin(), args, name).await
}

/// Runs `node --test` on `files` (with `envs`); the report, or a panic with
/// it and the gateways' logs.
async fn node_test(
    files: &[PathBuf],
    envs: &[(&str, &str)],
    gateways: &[(&str, &ChildProcess)],
) -> String {
    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=spec"])
        .args(files)
        .current_dir(workspace_dir())
        .envs(envs.iter().copied());
    let out = run_to_end(node, NODE_LIMIT, "`node --test` (Node 20+)").await;
    let report = out.report;
    if !out.status.success() {
        let logs = gateways
            .iter()
            .map(|(name, process)| format!("--- {name} log:\n{}", process.output()))
            .collect::<Vec<_>>()
            .join("\n");
        panic!("`node --test` failed ({}):\n{report}\n{logs}", out.status);
    }
    report
}

/// The value of one Prometheus sample of the gateway at `url`, 0 when absent.
async fn metric(url: &str, name_and_labels: &str) -> f64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_works_in_chromium() {
    let interop = workspace_dir().join("tests/interop");
    assert!(
        interop.join("node_modules/playwright-core").is_dir(),
        "the npm package playwright-core is missing: run `npm ci --prefix tests/interop` at the workspace root"
    );
    let chromium =
        std::env::var("SSE_BRIDGE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no browser at {chromium}: `apt-get install chromium` (or set SSE_BRIDGE_CHROMIUM)"
    );

    // Embedded queue and demo agent; 20 ms a piece makes a session last
    // about 2 s: long enough to stop it, or cut its stream, mid-way.
    let (embedded, embedded_url) = gateway(&["--demo-delay", "20ms"], "playground-embedded").await;

    // Over Redis with no worker at all: every session ends in `ack_timeout`.
    let idle_stream = TempKey::new("sse_jobs_playground_idle");
    let idle_group = unique("sse_workers_playground_idle");
    let (idle_gateway, idle_url) = gateway(
        &[
            "--redis-url",
            REDIS_URL,
            "--redis-stream",
            &idle_stream,
            "--group",
            &idle_group,
            "--ack-timeout",
            "1s",
        ],
        "playground-no-worker",
    )
    .await;

    let cancels = r#"sse_bridge_cancels_published_total{reason="cancelled"}"#;
    let cancels_before = metric(&embedded_url, cancels).await;
    let report = node_test(
        &[interop.join("playground.test.mjs")],
        &[
            ("SSE_BRIDGE_URL", &embedded_url),
            ("SSE_BRIDGE_NO_WORKER_URL", &idle_url),
            ("SSE_BRIDGE_CHROMIUM", &chromium),
        ],
        &[
            ("embedded gateway", &embedded),
            ("no-worker gateway", &idle_gateway),
        ],
    )
    .await;
    println!("{report}");

    // The page's Stop reached the worker as a cancel.
    assert_eq!(metric(&embedded_url, cancels).await - cancels_before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_client_passes_its_unit_tests() {
    let report = node_test(&[workspace_dir().join("clients/js/test/")], &[], &[]).await;
    println!("{report}");
}
