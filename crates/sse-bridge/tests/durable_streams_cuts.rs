//! `@durable-streams/client` through a proxy that cuts its connections
//! mid-response (`tests/durable-streams/cut-proxy.mjs`): a live demo-agent
//! session followed at `/v1/stream/sessions/{id}` by long-poll and by SSE,
//! each reader resuming from the last offset the client handed over, reads
//! every event exactly once, in order (`follow-through-cuts.mjs`), on both
//! backends.
//!
//! Needs `npm ci --prefix tests/durable-streams` (`.ci/run` does it).

use std::path::Path;
use std::time::Duration;

use sse_bridge_testkit::process::{run_to_end, spawn_gateway};

async fn the_client_resumes_through_cuts(args: &[&str], name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/durable-streams");
    assert!(
        dir.join("node_modules/@durable-streams/client").is_dir(),
        "the client is missing: run `npm ci --prefix tests/durable-streams` at the workspace root"
    );
    // The demo agent's pieces 20 ms apart: the readers follow a live run.
    let mut all = vec!["--demo-delay", "20ms"];
    all.extend(args);
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-bridge"));
    let (gateway, url) = spawn_gateway(bin, &all, name).await;
    let mut node = tokio::process::Command::new("node");
    node.arg("follow-through-cuts.mjs")
        .current_dir(&dir)
        .env("GW_URL", &url);
    let out = run_to_end(node, Duration::from_secs(90), "follow-through-cuts.mjs").await;
    println!("{}", out.report.trim());
    assert!(
        out.status.success(),
        "{}\n--- gateway log:\n{}",
        out.report,
        gateway.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resumes_through_cuts_on_the_embedded_store() {
    the_client_resumes_through_cuts(&[], "ds-cuts-embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resumes_through_cuts_on_redis() {
    use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
    let jobs = TempKey::new("sse_jobs_ds_cuts");
    let group = unique("sse_workers_ds_cuts");
    let args = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &jobs,
        "--group",
        &group,
        "--with-worker",
    ];
    the_client_resumes_through_cuts(&args, "ds-cuts-redis").await;
}
