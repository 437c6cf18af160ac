//! The playground: a page at `/` that asks the demo agent a question and
//! shows the session as it streams (reasoning, tool steps, answer, status,
//! timings, raw frames in every format), so `sse-bridge serve` followed by a
//! browser at `http://127.0.0.1:8000/` shows the whole thing working.
//!
//! The page is plain HTML, CSS and an ES module (`playground/`), with the
//! JavaScript client `clients/js/sse-bridge.js` served as
//! `/assets/sse-bridge.js`; all of it is embedded in the binary, so there is
//! nothing to install or deploy. The page loads nothing from elsewhere, and
//! its content security policy lets it talk to this origin only. Every
//! answer carries an `ETag` (a hash of the embedded bytes) and
//! `cache-control: no-cache`: browsers revalidate and get `304` until the
//! binary changes. These routes need no token (the page holds no data); the
//! session endpoints it calls still do when authentication is on.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Scripts, styles, images and connections from this origin only; no
/// plugins, no `<base>`, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file and where it is served.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// A hash of `body`, quoted: its strong `ETag`.
    etag: &'static str,
}

/// An [`Asset`] of an embedded file, its `ETag` computed at compile time.
macro_rules! asset {
    ($path:literal, $content_type:literal, $body:expr) => {{
        const BODY: &[u8] = $body;
        const ETAG: [u8; 18] = quoted_hex(fnv1a(BODY));
        Asset {
            path: $path,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(etag) => etag,
                Err(_) => panic!("hex digits are UTF-8"),
            },
        }
    }};
}

static ASSETS: [Asset; 5] = [
    asset!(
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../playground/index.html")
    ),
    asset!(
        "/assets/playground.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../playground/playground.js")
    ),
    asset!(
        "/assets/playground.css",
        "text/css; charset=utf-8",
        include_bytes!("../playground/playground.css")
    ),
    asset!(
        "/assets/sse-bridge.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../clients/js/sse-bridge.js")
    ),
    asset!(
        "/favicon.svg",
        "image/svg+xml",
        include_bytes!("../playground/favicon.svg")
    ),
];

/// The playground's routes: the page, its assets and the favicon (browsers
/// that ask for `/favicon.ico` are sent to the SVG).
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |request: HeaderMap| async move { asset.respond(&request) }),
        )
    });
    router.route(
        "/favicon.ico",
        get(|| async { Redirect::permanent("/favicon.svg") }),
    )
}

impl Asset {
    /// The file, or `304 Not Modified` when the browser's copy is current.
    fn respond(&'static self, request: &HeaderMap) -> Response {
        let etag = HeaderValue::from_static(self.etag);
        let mut response = if self.matches(request) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, etag);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }

    /// `If-None-Match` names this version (or `*`).
    fn matches(&self, request: &HeaderMap) -> bool {
        request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == self.etag)
    }
}

/// FNV-1a, 64 bit: enough to tell two versions of a file apart (not a
/// defence against anyone).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"<16 hex digits>"`.
const fn quoted_hex(value: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[16 - i] = DIGITS[((value >> (4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hashes_that_differ_per_file() {
        assert_eq!(quoted_hex(0x0123_4567_89ab_cdef), *b"\"0123456789abcdef\"");
        let etags: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(etags.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| a.etag.len() == 18));
    }
}
