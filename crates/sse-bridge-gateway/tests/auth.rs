//! Authentication, ownership and the per-principal limit through real HTTP:
//! tokens on every session endpoint, 401 with `WWW-Authenticate`, probes
//! left open, another principal's session answered as unknown, an API key
//! and a JWT subject of the same name kept apart, chat and run ids owned by
//! the principal that first used them (409 to others, on both logs), 429
//! with `Retry-After` beyond a principal's limit.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_core::session::{SessionConfig, SessionLimit};
use sse_bridge_core::{EventLog, SessionId};
use sse_bridge_gateway::Auth;
use sse_bridge_gateway::auth::JwtKey;
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::redis::{REDIS_URL, unique};

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

/// The same auth on the embedded log or on the real Redis.
async fn gateway_on(bus: Arc<dyn EventLog>) -> TestGateway {
    TestGateway::start_on(bus, SessionConfig::default(), |state| state.auth = auth()).await
}

fn embedded() -> Arc<dyn EventLog> {
    Arc::new(EmbeddedBus::new(4096))
}

async fn redis() -> Arc<dyn EventLog> {
    let mut config = RedisConfig::new(REDIS_URL);
    config.client_name = unique("t-auth");
    Arc::new(RedisBus::connect(config).await.expect("Redis"))
}

fn chat_body(chat_id: &str) -> Value {
    json!({
        "id": chat_id, "trigger": "submit-message",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "q"}]}]
    })
}

fn ag_ui_input(run_id: &str) -> Value {
    json!({
        "threadId": format!("thread-{run_id}"), "runId": run_id, "state": {}, "tools": [],
        "context": [], "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "q"}]
    })
}

/// The `data:` lines of a whole body.
async fn data_lines(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 200);
    let text = read_rest(response.bytes_stream(), Duration::from_secs(20), "stream").await;
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// A 409 whose detail names what was taken.
async fn assert_taken(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(what) && detail.contains("another"),
        "{detail}"
    );
}

/// Nothing was dispatched to the workers.
async fn assert_no_job(gw: &TestGateway) {
    use sse_bridge_core::JobSource;
    let next = tokio::time::timeout(Duration::from_millis(300), gw.queue.next_job()).await;
    assert!(next.is_err(), "a job was dispatched");
}

#[tokio::test]
async fn a_jwt_subject_is_not_the_api_key_of_the_same_name() {
    let gw = gateway(SessionLimit::default()).await;
    let response = post_as(&gw, Some("key-a")).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    gw.take_job().await;
    let jwt_alice = jwt("alice", "sse-bridge", 600);
    let path = format!("/v1/react/sessions/{id}/events");
    let follow = send_as(&gw, &jwt_alice, "GET", &path, None).await;
    assert_eq!(follow.status(), 404, "the JWT's alice is someone else");
    let cancel = send_as(
        &gw,
        &jwt_alice,
        "DELETE",
        &format!("/v1/react/sessions/{id}"),
        None,
    )
    .await;
    assert_eq!(cancel.status(), 404);
    let mine = send_as(&gw, "key-a", "GET", &path, None).await;
    assert_eq!(mine.status(), 200, "the key's alice still follows");
    gw.stop().await;
}

async fn a_chat_id_belongs_to_the_principal_that_first_used_it(bus: Arc<dyn EventLog>) {
    let gw = gateway_on(bus).await;
    let chat_id = format!("chat-{}", SessionId::new());
    let post = |token| {
        send_as(
            &gw,
            token,
            "POST",
            "/v1/ai-sdk/chat",
            Some(chat_body(&chat_id)),
        )
    };
    let stream_path = format!("/v1/ai-sdk/chat/{chat_id}/stream");
    let alice = post("key-a").await;
    assert_eq!(alice.status(), 200);
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job, "FinalAnswerStream", json!({"char": "4"}))
        .await;

    assert_taken(post("key-b").await, "chat id").await;
    assert_taken(post(&jwt("alice", "sse-bridge", 600)).await, "chat id").await;
    assert_no_job(&gw).await;
    let bobs_resume = send_as(&gw, "key-b", "GET", &stream_path, None).await;
    assert_eq!(bobs_resume.status(), 204, "Bob has no live message there");

    let resumed = send_as(&gw, "key-a", "GET", &stream_path, None).await;
    assert_eq!(resumed.status(), 200, "Alice's live answer is still hers");
    let resumed = tokio::spawn(data_lines(resumed));
    gw.emit(&job, "FinalAnswerStream", json!({"char": "2"}))
        .await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    let live = data_lines(alice).await;
    assert_eq!(live.last().unwrap(), "[DONE]");
    assert_eq!(resumed.await.unwrap(), live);
    gw.stop().await;
}

async fn an_ag_ui_run_id_belongs_to_the_principal_that_first_used_it(bus: Arc<dyn EventLog>) {
    let gw = gateway_on(bus).await;
    let run_id = format!("run-{}", SessionId::new());
    let post = |token| send_as(&gw, token, "POST", "/v1/ag-ui", Some(ag_ui_input(&run_id)));
    let replay_path = format!("/v1/ag-ui/runs/{run_id}/events");
    let alice = post("key-a").await;
    assert_eq!(alice.status(), 200);
    let job = gw.take_job().await;
    gw.emit(&job, "worker_ack", json!({})).await;

    assert_taken(post("key-b").await, "run id").await;
    assert_no_job(&gw).await;
    let bobs_replay = send_as(&gw, "key-b", "GET", &replay_path, None).await;
    assert_eq!(bobs_replay.status(), 404, "not Bob's run");

    gw.emit(&job, "FinalAnswerStream", json!({"char": "5"}))
        .await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    let live = data_lines(alice).await;
    let replay = data_lines(send_as(&gw, "key-a", "GET", &replay_path, None).await).await;
    assert_eq!(replay, live, "Alice's run replays whole");
    gw.stop().await;
}

async fn the_owner_takes_its_own_chat_id_over(bus: Arc<dyn EventLog>) {
    let gw = gateway_on(bus).await;
    let chat_id = format!("chat-{}", SessionId::new());
    let post = || {
        send_as(
            &gw,
            "key-a",
            "POST",
            "/v1/ai-sdk/chat",
            Some(chat_body(&chat_id)),
        )
    };
    let first = post().await;
    assert_eq!(first.status(), 200);
    gw.take_job().await;
    let second = post().await;
    assert_eq!(second.status(), 200, "a new message of the same chat");
    let second_id = second.headers()["x-session-id"].clone();
    gw.take_job().await;
    let path = format!("/v1/ai-sdk/chat/{chat_id}/stream");
    let resumed = send_as(&gw, "key-a", "GET", &path, None).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(
        resumed.headers()["x-session-id"],
        second_id,
        "the latest message"
    );
    gw.stop().await;
}

/// Runs each scenario on both logs: `<scenario>::embedded`, `<scenario>::redis`.
macro_rules! on_both_logs {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn embedded() {
                super::$scenario(super::embedded()).await
            }
            #[tokio::test]
            async fn redis() {
                super::$scenario(super::redis().await).await
            }
        }
    )*};
}

on_both_logs!(
    a_chat_id_belongs_to_the_principal_that_first_used_it,
    an_ag_ui_run_id_belongs_to_the_principal_that_first_used_it,
    the_owner_takes_its_own_chat_id_over,
);
