//! Durable Streams over HTTP at `/v1/stream/{path}` (PROTOCOL.md of the
//! durable-streams repository; checked by its conformance suite, run from
//! `tests/durable-streams`).
//!
//! * [`write`] — `PUT` (create, fork), `POST` (append, close, producers),
//!   `DELETE`, `HEAD`.
//! * [`read`] — `GET`: catch-up pages with ETags, and long-poll.
//! * [`sse`] — `GET …&live=sse`: data and control events.
//! * [`headers`] — the protocol's header names and their strict parsing.
//! * [`sessions`] — `/v1/stream/sessions/{id}`: each session's log as a
//!   read-only JSON stream; [`source`] lets reads serve it and stored
//!   streams alike.
//! * [`publish`] — a worker's `POST` to a session: its events into the log.
//! * `/v1/stream/jobs` — the jobs HTTP workers take
//!   (`sse_bridge_core::streams::jobs`): read-only, for the worker role.
//!
//! Every stream belongs to the principal that created it: the store key is
//! the caller's namespace plus the path (`sse_bridge_core::streams::key`),
//! so another principal gets `404` — or creates a stream of its own at
//! that path. The store is [`StreamStore`]: in memory with the embedded
//! backend, Redis otherwise. Every response carries the browser security
//! headers of §12.7; CORS is the gateway's (`--cors-allow-origin`).

pub mod headers;
mod publish;
mod read;
mod sessions;
mod source;
mod sse;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use sse_bridge_core::EventBus;
use sse_bridge_core::streams::{MemoryStreams, StreamLimits, StreamStore, jobs};

use crate::AppState;
use crate::auth::Caller;

/// The prefix of every stream's URL.
pub const PREFIX: &str = "/v1/stream/";

/// The paths under [`PREFIX`] that are sessions' logs, not stored streams.
pub const SESSIONS: &str = "sessions/";

/// Request headers a cross-origin stream client sends (CORS preflight).
pub const CORS_REQUEST_HEADERS: [&str; 12] = [
    "if-none-match",
    headers::SEQ,
    headers::TTL,
    headers::EXPIRES_AT,
    headers::CLOSED,
    headers::PRODUCER_ID,
    headers::PRODUCER_EPOCH,
    headers::PRODUCER_SEQ,
    headers::FORKED_FROM,
    headers::FORK_OFFSET,
    headers::FORK_SUB_OFFSET,
    "cache-control",
];

/// Response headers a cross-origin stream client reads.
pub const CORS_RESPONSE_HEADERS: [&str; 14] = [
    headers::NEXT_OFFSET,
    headers::CURSOR,
    headers::UP_TO_DATE,
    headers::CLOSED,
    headers::TTL,
    headers::EXPIRES_AT,
    headers::SSE_ENCODING,
    headers::PRODUCER_EPOCH,
    headers::PRODUCER_SEQ,
    headers::EXPECTED_SEQ,
    headers::RECEIVED_SEQ,
    "etag",
    "location",
    "content-type",
];

/// How streams are served.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// How long a long-poll waits for data before `204`.
    pub long_poll_timeout: Duration,
    /// How long an SSE response lasts before the server ends it (the
    /// client reconnects from its last offset; CDNs collapse on it).
    pub sse_duration: Duration,
    /// The largest `PUT` / `POST` body.
    pub max_body_bytes: usize,
    /// About how many bytes one read returns at most.
    pub page_bytes: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            long_poll_timeout: Duration::from_secs(20),
            sse_duration: Duration::from_secs(60),
            max_body_bytes: 4 << 20,
            page_bytes: 1 << 20,
        }
    }
}

/// The streams' store and settings, shared by the handlers.
#[derive(Clone)]
pub struct Streams {
    pub store: Arc<dyn StreamStore>,
    pub options: StreamOptions,
    /// The store key `/v1/stream/jobs` serves ([`jobs::key`] of the job queue).
    pub jobs_key: String,
}

impl Streams {
    /// In this process's memory, with the default bounds and settings.
    pub fn in_memory(bus: Arc<dyn EventBus>) -> Self {
        Streams {
            store: Arc::new(MemoryStreams::new(bus, StreamLimits::default())),
            options: StreamOptions::default(),
            jobs_key: jobs::key("sse_jobs"),
        }
    }
}

/// What a stream handler needs.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub store: Arc<dyn StreamStore>,
    pub bus: Arc<dyn EventBus>,
    pub options: StreamOptions,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Whether callers authenticate: cacheable reads are then `private`.
    pub private: bool,
}

/// The routes under [`PREFIX`].
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stream/{*path}", any(dispatch))
        .layer(middleware::from_fn(security_headers))
}

async fn dispatch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(path): Path<String>,
    request: Request<Body>,
) -> Response {
    let ctx = Ctx {
        store: state.streams.store.clone(),
        bus: state.sessions.bus.clone(),
        options: state.streams.options.clone(),
        shutdown: state.sessions.shutdown.clone(),
        private: state.auth.is_enabled(),
    };
    if let Some(rest) = path.strip_prefix(SESSIONS) {
        let log = state.sessions.bus.clone();
        return sessions::dispatch(&ctx, log, &caller, rest, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    if path == jobs::PATH {
        return jobs_stream(&ctx, &caller, &state.streams.jobs_key, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let key = sse_bridge_core::streams::key(&caller, &path);
    let outcome = match *request.method() {
        Method::PUT => write::create(&ctx, &caller, &path, &key, request).await,
        Method::POST => write::append(&ctx, &key, request).await,
        Method::DELETE => write::delete(&ctx, &key).await,
        Method::HEAD => write::head(&ctx, &key).await,
        Method::GET => read::get(&ctx, source::Source::Store(key), request).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    };
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// `/v1/stream/jobs`: workers read it; nobody writes it but the gateway.
async fn jobs_stream(
    ctx: &Ctx,
    caller: &str,
    jobs_key: &str,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    if !crate::auth::is_worker(caller) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "the jobs stream is for workers",
        ));
    }
    match *request.method() {
        Method::GET => read::get(ctx, source::Source::Store(jobs_key.to_owned()), request).await,
        Method::HEAD => write::head(ctx, jobs_key).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "the jobs stream is read-only: GET or HEAD",
        )
        .with("allow", "GET, HEAD, OPTIONS")),
    }
}

/// §12.7: no MIME sniffing, explicit cross-origin reads.
async fn security_headers(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// A request refused: a status, `{"detail"}` and any protocol headers.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    detail: String,
    headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Refusal {
            status,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad(detail: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn missing() -> Self {
        Refusal::new(StatusCode::NOT_FOUND, "stream not found")
    }

    pub fn gone() -> Self {
        Refusal::new(StatusCode::GONE, "stream is gone")
    }

    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the stream store is unavailable: {error}"),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail }).to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}
