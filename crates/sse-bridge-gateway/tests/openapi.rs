//! `GET /openapi.json` describes every route the gateway serves: each
//! documented operation answers (not the router's "not found" or "method
//! not allowed" fallback), and every handler in `src/routes.rs` is in the
//! document — so a route added without its description fails here.
//! (Schemathesis checks the answers against the document: the
//! `sse-bridge` crate's `schemathesis` test.)

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use reqwest::Method;
use serde_json::Value;
use sse_bridge_core::session::SessionConfig;

async fn document(gw: &TestGateway) -> Value {
    let response = client()
        .get(format!("{}/openapi.json", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let doc = document(&gw).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 11, "{:?}", paths.keys());
    for (path, operations) in paths {
        let url = path
            .replace(
                "{session_id}",
                &sse_bridge_core::SessionId::new().to_string(),
            )
            .replace("{run_id}", "no-such-run")
            .replace("{chat_id}", "no-such-chat");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client()
                .request(method.clone(), format!("{}{url}", gw.url))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            let fallback =
                status == 405 || (status == 404 && body.as_ref() == br#"{"detail":"not found"}"#);
            assert!(!fallback, "{method} {path} is documented but not served");
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn every_handler_is_documented() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let doc = document(&gw).await;
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|operations| operations.as_object().unwrap().values())
        .map(|operation| operation["operationId"].as_str().unwrap())
        .collect();
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes.rs"))
            .unwrap();
    let handlers: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .map(|rest| rest.split('(').next().unwrap())
        // The router's fallbacks answer every other path and method.
        .filter(|name| !["not_found", "method_not_allowed"].contains(name))
        .collect();
    assert!(handlers.len() >= 11, "{handlers:?}");
    for handler in handlers {
        assert!(
            documented.contains(handler),
            "the handler {handler} is not in /openapi.json (register it in openapi::api)"
        );
    }
    gw.stop().await;
}
