//! The Python `durable-streams` client (PyPI, pinned in `.ci/run`'s venv)
//! against a gateway process, once per backend (in memory, and Redis at
//! 127.0.0.1:6379): `tests/durable-streams/follow_session.py` creates,
//! appends to, closes and reads a plain stream, and follows a live
//! demo-agent session at `/v1/stream/sessions/{id}` by long-poll and by
//! SSE, each read matching the session's own follower event for event.
//!
//! The interpreter is `$SSE_BRIDGE_PYTHON` (`.ci/run` sets its venv's),
//! else `python3`, which then needs `pip install durable-streams==0.1.0`.

use std::path::Path;
use std::time::Duration;

use sse_bridge_testkit::process::{run_to_end, spawn_gateway};

async fn the_python_client_reads_streams(args: &[&str], name: &str) {
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    // The demo agent's pieces 20 ms apart: the readers join a live run.
    let mut all = vec!["--demo-delay", "20ms"];
    all.extend(args);
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-bridge"));
    let (gateway, url) = spawn_gateway(bin, &all, name).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/durable-streams/follow_session.py");
    let mut command = tokio::process::Command::new(&python);
    command.arg(script).env("GW_URL", &url);
    let out = run_to_end(command, Duration::from_secs(60), "follow_session.py").await;
    println!("{}", out.report.trim());
    assert!(
        out.status.success(),
        "{} (needs `pip install durable-streams==0.1.0` in {python})\n--- gateway log:\n{}",
        out.report,
        gateway.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_streams_on_the_embedded_store() {
    the_python_client_reads_streams(&[], "ds-python-embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_reads_streams_on_redis() {
    use sse_bridge_testkit::redis::{REDIS_URL, TempKey, unique};
    let jobs = TempKey::new("sse_jobs_ds_python");
    let group = unique("sse_workers_ds_python");
    let args = [
        "--redis-url",
        REDIS_URL,
        "--redis-stream",
        &jobs,
        "--group",
        &group,
        "--with-worker",
    ];
    the_python_client_reads_streams(&args, "ds-python-redis").await;
}
