//! The HTTP face of sse-bridge.
//!
//! # Layout
//!
//! * [`extract`] — `Validated<T>`: content type, size limit and validation of
//!   each POST body (→ 415 / 413 / 422); `SessionPath`, `Cursor`
//!   (`Last-Event-ID`) and `FormatParam` for following.
//! * [`routes`] — thin handlers over [`sse_bridge_core::session`]: create
//!   (`start`: native, AG-UI, AI SDK), follow/resume (`follow`, any format;
//!   `follow_run`, `follow_chat`) and cancel (`cancel`) a session, streams
//!   returned as the body (SSE headers, `x-session-id`); `/healthz`,
//!   `/readyz`, `/metrics`.
//! * [`auth`] — [`Auth`]: API keys and JWTs → the caller's principal
//!   (`Caller`), off by default.
//! * [`error`] — [`ApiError`]: status plus `{"detail": ...}`.
//! * `openapi` — every API route registered with its description, served
//!   at `/openapi.json`.
//! * [`streams`] — Durable Streams at `/v1/stream/{path}`: create, append,
//!   read (catch-up, long-poll, SSE), close, fork, delete.
//! * `playground` — the browser page at `/` and its embedded assets.
//!
//! * `connection` — the connection loop: TLS ([`tls`]: rustls, reloadable
//!   certificates), HTTP/1.1 or HTTP/2 per connection, the write deadline
//!   (`deadline`), graceful shutdown.
//! * [`http1`] — the HTTP/1.1 fast path for held streams: request heads
//!   read with `httparse`, responses written straight to the socket;
//!   anything but a plain request is handed to hyper. Only its head parser
//!   is public (the fuzz target uses it).
//!
//! [`router`] assembles them; [`serve`] runs them with graceful shutdown.

pub mod auth;
mod connection;
mod deadline;
pub mod error;
pub mod extract;
pub mod http1;
pub mod observability;
mod openapi;
mod playground;
pub mod routes;
pub mod streams;
pub mod tls;

use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, HeaderValue, Method, header};
use metrics_exporter_prometheus::PrometheusHandle;
use sse_bridge_core::session::SessionContext;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use auth::Auth;
pub use error::ApiError;
pub use extract::BodyLimit;
pub use observability::install_metrics;
pub use tls::{Tls, TlsError};

/// Default largest session request body (64 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub sessions: SessionContext,
    pub body_limit: BodyLimit,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Cross-origin access for browsers on other origins; `None`: same origin only.
    pub cors: Option<CorsLayer>,
    /// Who may call the session endpoints (off when empty).
    pub auth: Auth,
    /// Durable Streams: their store and settings.
    pub streams: streams::Streams,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// An origin given for CORS that is not a valid header value.
#[derive(Debug, thiserror::Error)]
#[error("invalid CORS origin {0:?}")]
pub struct InvalidOrigin(String);

/// CORS for browser clients on other origins (`*` allows any): the
/// preflight for a JSON POST is answered, and `x-session-id` is exposed so a
/// `fetch` client can read it. Empty: no CORS headers at all.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, InvalidOrigin> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| InvalidOrigin(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PUT,
            Method::HEAD,
        ])
        .allow_headers(
            [
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
            ]
            .into_iter()
            .chain(streams::CORS_REQUEST_HEADERS.map(HeaderName::from_static))
            .collect::<Vec<_>>(),
        )
        .expose_headers(
            [
                HeaderName::from_static("x-session-id"),
                HeaderName::from_static("x-vercel-ai-ui-message-stream"),
            ]
            .into_iter()
            .chain(streams::CORS_RESPONSE_HEADERS.map(HeaderName::from_static))
            .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(3600));
    Ok(Some(layer))
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        state.body_limit
    }
}

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let cors = state.cors.clone();
    let (api, _) = openapi::api().split_for_parts();
    let router = api
        .merge(playground::router())
        .merge(streams::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// How long a client may take from a request's first byte to its complete
/// head and body by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How the gateway's port is served.
#[derive(Clone)]
pub struct ServeOptions {
    /// At shutdown, how long connections may take to finish.
    pub drain: Duration,
    /// TLS on the port (ALPN `h2` / `http/1.1`); `None`: plain HTTP/1.1
    /// and HTTP/2 with prior knowledge.
    pub tls: Option<Tls>,
    /// From a request's first byte to its complete head and body (slowloris).
    pub header_read_timeout: Duration,
}

impl ServeOptions {
    /// Plain, with the default timeouts.
    pub fn new(drain: Duration) -> Self {
        ServeOptions {
            drain,
            tls: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// Serves the gateway until `state.sessions.shutdown` is cancelled.
///
/// A connection loop of our own rather than `axum::serve` (see
/// `connection`): a held SSE stream is one idle connection, and hyper-util's
/// auto (HTTP/1 + HTTP/2) connection and axum's graceful-shutdown
/// bookkeeping cost several KiB per connection (BENCHMARKS.md). A connection
/// whose client accepts no bytes for the sessions' `write_timeout` is
/// closed. Cancelling `shutdown` ends every live session with
/// `error`/`server_shutdown`, so the bodies finish; `drain` bounds the wait
/// for clients that do not read their last bytes.
pub async fn serve(listener: TcpListener, state: AppState, drain: Duration) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::new(drain)).await
}

/// [`serve`] with [`ServeOptions`] (TLS, timeouts).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
) -> std::io::Result<()> {
    let shutdown = state.sessions.shutdown.clone();
    let settings = connection::Settings {
        tls: options.tls,
        write_timeout: state.sessions.config.write_timeout,
        header_read_timeout: options.header_read_timeout,
    };
    let app = router(state);
    connection::run(listener, app, settings, shutdown, options.drain).await
}
