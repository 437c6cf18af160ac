//! Authentication, ownership and the per-principal limit through real HTTP:
//! tokens on every session endpoint, 401 with `WWW-Authenticate`, probes
//! left open, another principal's session answered as unknown, 429 with
//! `Retry-After` beyond a principal's limit.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sse_bridge_core::session::{SessionConfig, SessionLimit};
use sse_bridge_gateway::Auth;
use sse_bridge_gateway::auth::JwtKey;

const SECRET: &[u8] = b"a test secret that is long enough";

fn auth() -> Auth {
    Auth::default()
        .with_api_keys(["alice=key-a", "bob=key-b"])
        .unwrap()
        .with_jwt(
            JwtKey::Hs256Secret(SECRET),
            Some("sse-bridge"),
            Some("tests"),
        )
        .unwrap()
}

fn jwt(sub: &str, audience: &str, expires_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"sub": sub, "aud": audience, "iss": "tests", "exp": now + expires_in});
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

async fn gateway(limit: SessionLimit) -> TestGateway {
    TestGateway::start_with(SessionConfig::default(), |state| {
        state.auth = auth();
        state.sessions.limit = limit;
    })
    .await
}

async fn post_as(gw: &TestGateway, token: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}/v1/react/sessions", gw.url))
        .header("content-type", "application/json")
        .body(json!({"user_query": "q"}).to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn assert_unauthorized(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn every_session_endpoint_wants_a_valid_token_and_probes_stay_open() {
    let gw = gateway(SessionLimit::default()).await;
    for token in [
        None,
        Some("nope"),
        Some(jwt("carol", "sse-bridge", -600).as_str()),
    ] {
        assert_unauthorized(post_as(&gw, token).await).await;
    }
    let wrong_audience = jwt("carol", "another-service", 600);
    assert_unauthorized(post_as(&gw, Some(&wrong_audience)).await).await;
    for (method, path) in [
        (
            "GET",
            "/v1/react/sessions/00000000-0000-4000-8000-000000000000/events",
        ),
        (
            "DELETE",
            "/v1/react/sessions/00000000-0000-4000-8000-000000000000",
        ),
        ("POST", "/v1/ag-ui"),
        ("GET", "/v1/ag-ui/runs/r/events"),
        ("POST", "/v1/ai-sdk/chat"),
        ("GET", "/v1/ai-sdk/chat/c/stream"),
    ] {
        let request = client().request(method.parse().unwrap(), format!("{}{path}", gw.url));
        let response = request
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_unauthorized(response).await;
    }
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let response = client()
            .get(format!("{}{probe}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{probe}");
    }

    let by_key = post_as(&gw, Some("key-a")).await;
    assert_eq!(by_key.status(), 200);
    let job = gw.take_job().await;
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    read_all(by_key).await;
    let by_jwt = post_as(&gw, Some(&jwt("carol", "sse-bridge", 600))).await;
    assert_eq!(by_jwt.status(), 200);
    gw.take_job().await;
    gw.stop().await;
}

#[tokio::test]
async fn only_the_creator_may_follow_or_cancel_its_session() {
    let gw = gateway(SessionLimit::default()).await;
    let response = post_as(&gw, Some("key-a")).await;
    let id = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    gw.take_job().await;
    let as_bob = |method: &str, path: String| {
        client()
            .request(method.parse().unwrap(), format!("{}{path}", gw.url))
            .bearer_auth("key-b")
            .send()
    };
    let follow = as_bob("GET", format!("/v1/react/sessions/{id}/events"))
        .await
        .unwrap();
    assert_eq!(follow.status(), 404, "as if it did not exist");
    let cancel = as_bob("DELETE", format!("/v1/react/sessions/{id}"))
        .await
        .unwrap();
    assert_eq!(cancel.status(), 404);
    let mine = client()
        .delete(format!("{}/v1/react/sessions/{id}", gw.url))
        .bearer_auth("key-a")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    assert_eq!(
        read_all(response).await.events.last().unwrap()["payload"]["code"],
        "cancelled"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_principal_beyond_its_limit_gets_429_until_a_session_ends() {
    let gw = gateway(SessionLimit::new(100).per_principal(1)).await;
    let first = post_as(&gw, Some("key-a")).await;
    assert_eq!(first.status(), 200);
    let job = gw.take_job().await;
    let second = post_as(&gw, Some("key-a")).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "5");
    assert_eq!(
        post_as(&gw, Some("key-b")).await.status(),
        200,
        "others are not affected"
    );
    gw.take_job().await;
    gw.publish(&job, "worker_ack", json!({})).await;
    gw.publish(&job, "FinalAnswerStreamEnd", json!({})).await;
    read_all(first).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let again = post_as(&gw, Some("key-a")).await;
        if again.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}
