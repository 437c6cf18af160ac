//! Interop with a real `EventSource` (npm `eventsource`, run by Node): it
//! follows a session whose creator left, through a proxy that keeps cutting
//! its connections, resumes with `Last-Event-ID` every time, receives every
//! logged event exactly once and in order, and stops by itself on the 204
//! that answers its resume from the terminal event.
//!
//! The Node side is `tests/interop/eventsource_resume.mjs`; it needs
//! `npm ci --prefix tests/interop` (`.ci/run` does it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::sse::client;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// A log id `<ms>-<seq>` as a pair that orders like the log.
fn log_id(id: &str) -> (u64, u64) {
    let parse = |s: Option<&str>| s.and_then(|s| s.parse().ok());
    let mut parts = id.splitn(2, '-');
    match (parse(parts.next()), parse(parts.next())) {
        (Some(ms), Some(seq)) => (ms, seq),
        _ => panic!("{id:?} is not a log id <ms>-<seq>"),
    }
}

/// The session's whole log as `(id, event)` pairs, read plainly (no resume).
async fn session_log(url: &str, session: &str) -> Vec<(String, Value)> {
    let body = client()
        .get(format!("{url}/v1/react/sessions/{session}/events"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET …/events");
    let text = tokio::time::timeout(Duration::from_secs(10), body.text())
        .await
        .expect("the replay did not end within 10 s")
        .expect("replay body");
    let frames = text.split("\n\n").filter(|f| f.contains("data: "));
    frames
        .map(|frame| {
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name));
            let id = field("id: ").expect("every frame has an id");
            let data = field("data: ").expect("data line");
            (
                id.to_owned(),
                serde_json::from_str(data).expect("JSON data"),
            )
        })
        .collect()
}

/// Runs the Node script against `url` and parses its one JSON line.
async fn run_eventsource(url: &str) -> Value {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/eventsource").is_dir(),
        "the npm packages are missing: run `npm ci --prefix tests/interop` at the workspace root"
    );
    let child = tokio::process::Command::new("node")
        .arg(dir.join("eventsource_resume.mjs"))
        .args(["--gateway", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running `node` (Node 20+ must be installed)");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the EventSource script did not finish within 60 s")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        let start: String = stdout.chars().take(2000).collect();
        panic!("the script's output is not one JSON line ({e}): {start}…")
    })
}

#[tokio::test]
async fn eventsource_resumes_through_a_cutting_proxy_and_stops_on_204() {
    let listen = format!("127.0.0.1:{}", free_port());
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-bridge"));
    let gateway = ChildProcess::spawn(
        bin,
        &["serve", "--listen", &listen, "--demo-delay", "20ms"],
        &[],
        "eventsource-gateway",
    );
    let url = format!("http://{listen}");
    wait_healthy(&url, &gateway, Duration::from_secs(20)).await;

    let report = run_eventsource(&url).await;
    let events = report["events"].as_array().expect("events");
    let mut summary = report.clone();
    summary["events"] = Value::from(events.len());
    let (cuts, opens) = (&report["proxy"]["cuts"], &report["opens"]);
    println!("connections cut {cuts}, opens {opens}, summary {summary}");

    // Each event once, in log order: a replay from the start would repeat ids.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    for pair in ids.windows(2) {
        assert!(
            log_id(pair[0]) < log_id(pair[1]),
            "ids out of order or repeated: {pair:?}"
        );
    }

    // One whole session.
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"worker_ack"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"FinalAnswerStreamEnd"), "{kinds:?}");
    let tool_calls = kinds.iter().filter(|k| **k == "AgentToolCallStart").count();
    assert_eq!(tool_calls, 1, "{kinds:?}");
    assert_eq!(report["answer"], "12*12 = 144", "{summary}");

    // Nothing skipped: exactly the session's log, as a plain reader gets it.
    let session = report["session"].as_str().expect("session id");
    let log = session_log(&url, session).await;
    let logged: Vec<(&str, &Value, &Value)> = log
        .iter()
        .map(|(id, e)| (id.as_str(), &e["event_type"], &e["payload"]["char"]))
        .collect();
    let received: Vec<(&str, &Value, &Value)> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), &e["event_type"], &e["char"]))
        .collect();
    assert_eq!(
        received, logged,
        "the EventSource's events are not the session log"
    );

    // Every reconnection resumed from the last event it had; the last one,
    // from the terminal event, was answered 204 and it stopped by itself.
    let requests = report["proxy"]["requests"].as_array().expect("requests");
    assert_eq!(requests[0]["last_event_id"], Value::Null, "{summary}");
    for request in requests {
        assert_eq!(
            request["last_event_id"], request["last_seen_id"],
            "{request}"
        );
    }
    assert_eq!(
        requests.last().unwrap()["last_event_id"],
        ids[ids.len() - 1]
    );
    assert_eq!(report["closed_by_itself"], true, "{summary}");
    let last_error = report["errors"].as_array().and_then(|e| e.last());
    assert_eq!(
        last_error.map(|e| &e["code"]),
        Some(&Value::from(204)),
        "{summary}"
    );

    // ...through connections that really were cut.
    assert!(
        cuts.as_u64() >= Some(2),
        "the proxy cut too little: {summary}"
    );
    assert!(
        opens.as_u64() >= Some(3),
        "too few reconnections: {summary}"
    );
}
