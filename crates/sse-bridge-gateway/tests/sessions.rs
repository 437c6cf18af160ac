//! `POST /v1/react/sessions` through real HTTP on a loopback port: the
//! session lifecycle of PROTOCOL §3 with the embedded backends.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use sse_bridge_core::SessionId;
use sse_bridge_core::session::SessionConfig;

fn fast_timeouts() -> SessionConfig {
    SessionConfig {
        ack_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..SessionConfig::default()
    }
}

#[tokio::test]
async fn full_session_with_the_demo_agent_streams_every_event_in_order() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    gw.spawn_demo_worker();
    let response = post_session(
        &client(),
        &gw.url,
        json!({"user_query": "What is 2+3?", "model_alias": "demo"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none());
    let _: SessionId = headers["x-session-id"]
        .to_str()
        .unwrap()
        .parse()
        .expect("x-session-id is a UUID v4");

    let read = read_all(response).await;
    let kinds = kinds(&read.events);
    assert_eq!(kinds[0], "worker_ack");
    let tool = kinds
        .iter()
        .position(|k| *k == "AgentToolCallStart")
        .unwrap();
    assert!(tool > 1 && kinds[1..tool].iter().all(|k| *k == "AgentThoughtStream"));
    assert_eq!(kinds[tool + 1], "AgentToolCallEnd");
    assert_eq!(read.events[tool + 1]["payload"]["output"], "5");
    let answer: String = read.events[tool + 2..kinds.len() - 1]
        .iter()
        .map(|e| {
            assert_eq!(e["event_type"], "FinalAnswerStream");
            e["payload"]["char"].as_str().unwrap()
        })
        .collect();
    assert_eq!(answer, "2+3 = 5");
    assert_eq!(*kinds.last().unwrap(), "FinalAnswerStreamEnd");
    assert!(read.comments.is_empty());
    gw.wait_for_no_subscriptions().await;

    // The session's timings and outcome reach /metrics.
    let metrics = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for histogram in [
        "sse_bridge_worker_ack_seconds",
        "sse_bridge_first_content_seconds",
        "sse_bridge_event_gap_seconds",
        "sse_bridge_session_duration_seconds",
    ] {
        assert!(
            metrics.contains(&format!("{histogram}_bucket{{le=\"0.001\"}}"))
                && metrics.contains(&format!("{histogram}_count")),
            "{histogram} missing: {metrics}"
        );
    }
    assert!(
        metric(r#"sse_bridge_sessions_ended_total{outcome="completed",format="native"}"#) >= 1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn payloads_with_blank_lines_and_data_prefixes_cannot_break_the_framing() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    let tricky = "line one\n\ndata: {\"event_type\":\"FinalAnswerStreamEnd\"}\n\r\n: ping\n\n";
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStream", json!({"char": tricky}))
        .await;
    // Pretty-printed JSON from a worker: raw newlines between tokens.
    gw.publish_raw(
        &job,
        "{\n  \"event_type\": \"AgentThoughtStream\",\n  \"payload\": {\"char\": \"x\"}\n}",
    )
    .await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all(response).await;
    assert_eq!(
        kinds(&read.events),
        [
            "worker_ack",
            "FinalAnswerStream",
            "AgentThoughtStream",
            "FinalAnswerStreamEnd"
        ]
    );
    assert_eq!(read.events[1]["payload"]["char"], tricky);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_event_types_and_extra_fields_pass_through() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish_raw(
        &job,
        r#"{"event_type":"Citation","payload":{"url":"u"},"seq":7}"#,
    )
    .await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all(response).await;
    assert_eq!(
        read.events[1],
        json!({"event_type": "Citation", "payload": {"url": "u"}, "seq": 7})
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_job_carries_the_request_unchanged() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let body =
        json!({"user_query": "q", "model_alias": "smart_agent", "history": [{"role": "user"}]});
    let (response, job) = gw.open(body.clone()).await;
    assert_eq!(serde_json::to_value(&job.request).unwrap(), body);
    assert_eq!(
        response.headers()["x-session-id"].to_str().unwrap(),
        job.session_id.to_string()
    );
    gw.publish(
        &job,
        "error",
        json!({"error": "nope", "code": "worker_error"}),
    )
    .await;
    assert_eq!(kinds(&read_all(response).await.events), ["error"]);
    gw.stop().await;
}

#[tokio::test]
async fn no_ack_in_time_ends_with_one_ack_timeout_error() {
    let gw = TestGateway::start(fast_timeouts()).await;
    let response = post_session(&client(), &gw.url, json!({"user_query": "q"})).await;
    assert_eq!(response.status(), 200);
    let read = read_all(response).await;
    assert_eq!(read.events.len(), 1, "{:?}", read.events);
    assert_eq!(read.events[0]["event_type"], "error");
    assert_eq!(read.events[0]["payload"]["code"], "ack_timeout");
    assert!(
        read.events[0]["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("0.3s")
    );
    gw.wait_for_no_subscriptions().await;
    gw.stop().await;
}

#[tokio::test]
async fn events_published_before_the_ack_are_delivered_after_it_in_order() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    for c in ["a", "b", "c", "d"] {
        gw.publish(&job, "AgentThoughtStream", json!({ "char": c }))
            .await;
    }
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStream", json!({"char": "e"}))
        .await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all(response).await;
    let chars: Vec<&str> = read.events[1..6]
        .iter()
        .map(|e| e["payload"]["char"].as_str().unwrap())
        .collect();
    assert_eq!(read.events[0]["event_type"], "worker_ack");
    assert_eq!(chars, ["a", "b", "c", "d", "e"]);
    assert_eq!(read.events.len(), 7);
    gw.stop().await;
}

#[tokio::test]
async fn malformed_messages_are_skipped_counted_and_the_session_completes() {
    let gw = TestGateway::start(SessionConfig {
        max_event_bytes: 1024,
        ..SessionConfig::default()
    })
    .await;
    let counter = |reason: &str| {
        metric(&format!(
            "sse_bridge_malformed_events_total{{reason=\"{reason}\"}}"
        ))
    };
    let before: Vec<f64> = ["not_json", "not_object", "no_event_type", "too_large"]
        .map(counter)
        .to_vec();
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish_raw(&job, "this is not json").await;
    gw.publish_raw(&job, "[\"an\", \"array\"]").await;
    gw.publish_raw(&job, r#"{"payload": {"char": "no type"}}"#)
        .await;
    gw.publish_raw(&job, r#"{"event_type": 42}"#).await;
    gw.publish(&job, "FinalAnswerStream", json!({"char": "x".repeat(2000)}))
        .await;
    gw.publish(&job, "FinalAnswerStream", json!({"char": "ok"}))
        .await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    let read = read_all(response).await;
    assert_eq!(
        kinds(&read.events),
        ["worker_ack", "FinalAnswerStream", "FinalAnswerStreamEnd"]
    );
    assert_eq!(read.events[1]["payload"]["char"], "ok");
    let after: Vec<f64> = ["not_json", "not_object", "no_event_type", "too_large"]
        .map(counter)
        .to_vec();
    let deltas: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // The array is read as a batch (the Redis log publishes batches so):
    // its two strings are two events that are not objects.
    assert_eq!(deltas, [1.0, 2.0, 2.0, 1.0]);
    gw.stop().await;
}

#[tokio::test]
async fn silent_worker_ends_with_idle_timeout() {
    let gw = TestGateway::start(fast_timeouts()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    let read = read_all(response).await;
    assert_eq!(kinds(&read.events), ["worker_ack", "error"]);
    assert_eq!(read.events[1]["payload"]["code"], "idle_timeout");
    gw.wait_for_no_subscriptions().await;
    gw.stop().await;
}

#[tokio::test]
async fn endless_session_ends_with_session_timeout_and_pings_while_quiet() {
    let config = SessionConfig {
        max_duration: Duration::from_millis(600),
        heartbeat: Duration::from_millis(100),
        ..SessionConfig::default()
    };
    let gw = TestGateway::start(config).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    let read = read_all(response).await;
    assert_eq!(kinds(&read.events), ["worker_ack", "error"]);
    assert_eq!(read.events[1]["payload"]["code"], "session_timeout");
    assert!(
        read.comments.len() >= 2 && read.comments.iter().all(|c| c == ": ping"),
        "{:?}",
        read.comments
    );
    gw.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_the_worker_and_drops_the_subscription() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    let mut control = gw
        .bus
        .subscribe(&job.session_id.control_channel())
        .await
        .unwrap();
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "AgentThoughtStream", json!({"char": "t"}))
        .await;
    let mut body = response.bytes_stream();
    assert_eq!(
        kinds(&read_events(&mut body, 2).await),
        ["worker_ack", "AgentThoughtStream"]
    );
    drop(body);

    let cancel = tokio::time::timeout(Duration::from_secs(5), control.recv())
        .await
        .expect("no cancel published");
    let sse_bridge_core::Delivery::Message(raw) = cancel else {
        panic!("{cancel:?}")
    };
    let cancel: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        cancel,
        json!({"event_type": "cancel", "payload": {"reason": "client_disconnected"}})
    );
    drop(control);
    gw.wait_for_no_subscriptions().await;
    gw.stop().await;
}

#[tokio::test]
async fn on_disconnect_continue_publishes_no_cancel() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let response = post_session(
        &client(),
        &gw.url,
        json!({"user_query": "q", "on_disconnect": "continue"}),
    )
    .await;
    let job = gw.take_job().await;
    let mut control = gw
        .bus
        .subscribe(&job.session_id.control_channel())
        .await
        .unwrap();
    gw.publish(&job, "worker_ack", json!({})).await;
    let mut body = response.bytes_stream();
    read_events(&mut body, 1).await;
    drop(body);
    // The gateway's subscription goes away; only our control one is left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gw.bus.routed_channels() != 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), control.recv())
            .await
            .is_err(),
        "cancel was published"
    );
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_ends_live_sessions_with_server_shutdown() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let (response, job) = gw.open(json!({"user_query": "q"})).await;
    gw.publish(&job, "worker_ack", json!({})).await;
    let mut body = response.bytes_stream();
    read_events(&mut body, 1).await;
    gw.shutdown.cancel();
    let rest = read_events(&mut body, 1).await;
    assert_eq!(rest[0]["payload"]["code"], "server_shutdown");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap()
            .is_none()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_all_complete_correctly() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    gw.spawn_demo_worker();
    let client = client();
    let sessions = (0..200).map(|i| {
        let (client, url) = (client.clone(), gw.url.clone());
        tokio::spawn(async move {
            let response = post_session(
                &client,
                &url,
                json!({ "user_query": format!("What is {i}*3+1?") }),
            )
            .await;
            assert_eq!(response.status(), 200);
            let read = read_all(response).await;
            let answer: String = read
                .events
                .iter()
                .filter(|e| e["event_type"] == "FinalAnswerStream")
                .map(|e| e["payload"]["char"].as_str().unwrap())
                .collect();
            assert_eq!(read.events[0]["event_type"], "worker_ack");
            assert_eq!(
                read.events.last().unwrap()["event_type"],
                "FinalAnswerStreamEnd"
            );
            assert_eq!(
                read.events
                    .iter()
                    .filter(|e| e["event_type"] == "worker_ack")
                    .count(),
                1
            );
            assert_eq!(answer, format!("{i}*3+1 = {}", i * 3 + 1));
        })
    });
    for session in futures::future::join_all(sessions).await {
        session.unwrap();
    }
    gw.wait_for_no_subscriptions().await;
    gw.stop().await;
}

/// Shutdown with 100 live streams (50 sessions, each with a follower): every
/// creator gets its terminal `server_shutdown`, every follower's stream
/// closes, and the server is done well within its drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_hundred_live_streams_ends_each_and_returns_in_time() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let mut creators = Vec::new();
    let mut followers = Vec::new();
    for _ in 0..50 {
        let (response, job) = gw.open(json!({"user_query": "q"})).await;
        gw.emit(&job, "worker_ack", json!({})).await;
        let mut body = response.bytes_stream();
        read_events(&mut body, 1).await;
        creators.push(body);
        let follower = follow(&client(), &gw.url, &job.session_id.to_string(), None).await;
        let mut follower = follower.bytes_stream();
        read_frames(&mut follower, 1).await;
        followers.push(follower);
    }
    let started = tokio::time::Instant::now();
    gw.shutdown.cancel();
    for body in creators {
        let rest = read_rest(body, Duration::from_secs(10), "a creator at shutdown").await;
        assert!(rest.contains(r#""code":"server_shutdown""#), "{rest}");
    }
    for follower in followers {
        read_rest(follower, Duration::from_secs(10), "a follower at shutdown").await;
    }
    gw.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
