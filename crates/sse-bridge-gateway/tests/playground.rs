//! The playground's routes: the page and each asset with its content type,
//! cache validators and security headers; `304` for a current copy; the
//! favicon redirect; every URL the page references is served by the gateway
//! itself; no token needed even when the session endpoints want one.
//! (`crates/sse-bridge/tests/playground.rs` drives the page in a browser.)

mod common;

use common::*;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_gateway::Auth;

const ASSETS: [(&str, &str); 5] = [
    ("/", "text/html; charset=utf-8"),
    ("/assets/playground.js", "text/javascript; charset=utf-8"),
    ("/assets/playground.css", "text/css; charset=utf-8"),
    ("/assets/sse-bridge.js", "text/javascript; charset=utf-8"),
    ("/favicon.svg", "image/svg+xml"),
];

const INDEX_HTML: &str = include_str!("../playground/index.html");

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.expect("GET")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_validators_and_policy() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    for (path, content_type) in ASSETS {
        let response = get(&format!("{}{path}", gw.url)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let policy = header(&response, "content-security-policy");
        assert!(policy.contains("default-src 'self'"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        let etag = header(&response, "etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");

        let revalidated = client()
            .get(format!("{}{path}", gw.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
        assert_eq!(header(&revalidated, "etag"), etag);
        assert!(revalidated.bytes().await.unwrap().is_empty());
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_client_module_is_the_one_in_clients_js() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let served = get(&format!("{}/assets/sse-bridge.js", gw.url))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(served, include_str!("../../../clients/js/sse-bridge.js"));
    gw.stop().await;
}

#[tokio::test]
async fn favicon_ico_redirects_to_the_svg() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let no_redirects = sse_bridge_testkit::sse::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{}/favicon.ico", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(header(&response, "location"), "/favicon.svg");
    gw.stop().await;
}

/// The `src="…"` and `href="…"` values of the page.
fn referenced_urls(html: &str) -> Vec<&str> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1))
        .map(|rest| &rest[..rest.find('"').expect("closing quote")])
        .collect()
}

#[tokio::test]
async fn the_page_references_only_its_own_assets() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    let urls = referenced_urls(INDEX_HTML);
    assert!(urls.contains(&"/assets/playground.js"), "{urls:?}");
    for url in urls {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "{url} leaves the origin"
        );
        assert_eq!(
            get(&format!("{}{url}", gw.url)).await.status(),
            200,
            "{url}"
        );
    }
    // No inline script or style: the content security policy forbids them.
    assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="));
    gw.stop().await;
}

#[tokio::test]
async fn the_page_needs_no_token_while_sessions_do() {
    let gw = TestGateway::start_with(SessionConfig::default(), |state| {
        state.auth = Auth::default().with_api_keys(["alice=key-a"]).unwrap();
    })
    .await;
    for (path, _) in ASSETS {
        assert_eq!(get(&format!("{}{path}", gw.url)).await.status(), 200);
    }
    let refused = get(&format!(
        "{}/v1/react/sessions/00000000-0000-4000-8000-000000000000/events",
        gw.url
    ))
    .await;
    assert_eq!(refused.status(), 401);
    gw.stop().await;
}

#[tokio::test]
async fn other_paths_are_still_404_and_other_methods_405() {
    let gw = TestGateway::start(SessionConfig::default()).await;
    assert_eq!(
        get(&format!("{}/assets/nope.js", gw.url)).await.status(),
        404
    );
    let post = client().post(format!("{}/", gw.url)).send().await.unwrap();
    assert_eq!(post.status(), 405);
    gw.stop().await;
}
