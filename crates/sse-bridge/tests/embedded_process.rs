//! The README's first command, as a process: `sse-bridge serve` with the
//! embedded broker answers a session and shuts down on SIGTERM.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::sse::{client, kinds, post_session, read_all};

#[tokio::test]
async fn embedded_serve_answers_and_stops_on_sigterm() {
    let listen = format!("127.0.0.1:{}", free_port());
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-bridge"));
    let mut gateway = ChildProcess::spawn(
        bin,
        &["serve", "--demo-delay", "1ms"],
        &[("SSE_BRIDGE_LISTEN", &listen)],
        "serve",
    );
    let url = format!("http://{listen}");
    wait_healthy(&url, &gateway, Duration::from_secs(20)).await;

    let read =
        read_all(post_session(&client(), &url, json!({"user_query": "What is 2+3?"})).await).await;
    assert!(kinds(&read.events).contains(&"AgentToolCallEnd"));
    read.assert_answered("2+3 = 5");

    let status = gateway.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        gateway.output()
    );
}
