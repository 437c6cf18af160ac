//! Every refused request: exact status, a `detail` string, no session created.

mod common;

use common::*;
use serde_json::{Value, json};
use sse_bridge_core::session::{SessionConfig, SessionLimit};

async fn expect_refused(
    gw: &TestGateway,
    response: reqwest::Response,
    status: u16,
    detail_contains: &str,
) {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail string in {body}"));
    assert!(
        detail.contains(detail_contains),
        "{detail:?} does not mention {detail_contains:?}"
    );
    assert_eq!(gw.queue.len(), 0, "a job was dispatched");
    assert_eq!(gw.bus.routed_channels(), 0, "a subscription was left");
}

async fn post_raw(
    gw: &TestGateway,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/v1/react/sessions", gw.url))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn invalid_bodies_are_422_with_detail() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let cases: [(&str, &str); 9] = [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ("\"text\"", "JSON object"),
        ("{}", "user_query is required"),
        (r#"{"user_query": null}"#, "user_query is required"),
        (r#"{"user_query": ""}"#, "must not be empty"),
        (r#"{"user_query": 5}"#, "must be a string"),
        (
            r#"{"user_query": "q", "on_disconnect": "later"}"#,
            "on_disconnect",
        ),
    ];
    for (body, detail) in cases {
        let response = post_raw(&gw, Some("application/json"), body).await;
        expect_refused(&gw, response, 422, detail).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let response = post_raw(&gw, content_type, r#"{"user_query": "q"}"#).await;
        expect_refused(&gw, response, 415, "application/json").await;
    }
    // Parameters and +json types are fine.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let response = post_raw(&gw, Some(content_type), r#"{"user_query": ""}"#).await;
        expect_refused(&gw, response, 422, "empty").await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_declared_or_streamed() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let big = json!({ "user_query": "x".repeat(70 * 1024) }).to_string();
    let response = post_raw(&gw, Some("application/json"), big.clone()).await;
    expect_refused(&gw, response, 413, "65536 bytes").await;
    // Chunked, with no Content-Length to trust.
    let chunks = futures::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = post_raw(
        &gw,
        Some("application/json"),
        reqwest::Body::wrap_stream(chunks),
    )
    .await;
    expect_refused(&gw, response, 413, "65536 bytes").await;
    gw.stop().await;
}

#[tokio::test]
async fn dispatch_failure_is_503_and_leaves_no_subscription() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    gw.queue.close();
    let response = post_raw(&gw, Some("application/json"), r#"{"user_query": "q"}"#).await;
    expect_refused(&gw, response, 503, "could not dispatch").await;
    gw.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_detail() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let response = client()
        .get(format!("{}/nope", gw.url))
        .send()
        .await
        .unwrap();
    expect_refused(&gw, response, 404, "not found").await;
    let response = client()
        .get(format!("{}/v1/react/sessions", gw.url))
        .send()
        .await
        .unwrap();
    expect_refused(&gw, response, 405, "method not allowed").await;
    gw.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let get = |path: &str| client().get(format!("{}{path}", gw.url)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"],
        json!({"event_bus": "ok", "job_queue": "ok"})
    );
    gw.queue.close();
    let not_ready = get("/readyz").await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body = not_ready.json::<Value>().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["event_bus"], "ok");
    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("sse_bridge_event_bus_channels 0"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn sessions_over_the_limit_are_503_until_a_slot_frees() {
    let gw = TestGateway::start_with(SessionConfig::default(), |state| {
        state.sessions.limit = SessionLimit::new(1);
    })
    .await;
    let (first, job) = gw.open(json!({"user_query": "q"})).await;
    assert_eq!(first.status(), 200);
    let refused = post_raw(&gw, Some("application/json"), r#"{"user_query": "q"}"#).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("limit of live sessions"),
        "{body}"
    );
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    read_all(first).await;
    let (again, _) = gw.open(json!({"user_query": "q"})).await;
    assert_eq!(again.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn cors_answers_the_preflight_and_exposes_the_session_id() {
    let origins = vec!["https://app.example".to_owned()];
    let gw = TestGateway::start_with(SessionConfig::default(), |state| {
        state.cors = sse_bridge_gateway::cors_layer(&origins).unwrap();
    })
    .await;
    let url = format!("{}/v1/react/sessions", gw.url);
    let preflight = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let (response, _) = gw
        .open_from("https://app.example", json!({"user_query": "q"}))
        .await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-session-id"), "{exposed}");
    let (other, _) = gw
        .open_from("https://evil.example", json!({"user_query": "q"}))
        .await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert!(sse_bridge_gateway::cors_layer(&["bad\norigin".to_owned()]).is_err());
    gw.stop().await;
}
