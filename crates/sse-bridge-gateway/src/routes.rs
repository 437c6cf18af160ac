//! The handlers: thin shells over [`sse_bridge_core::session`].

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use sse_bridge_core::BrokerError;
use sse_bridge_core::format::Format;
use sse_bridge_core::session::{self, Followed, LiveSession, Presentation};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Cursor, FormatParam, SessionPath, ThreadPath, Validated};
use crate::openapi::{
    Cancelled, ChatRequest, ErrorDetail, FollowErrors, FormatName, Health, Readiness,
    RunAgentInput, ServerSentEvent, SessionRequestBody, StartErrors, ThreadView,
};
use sse_bridge_core::SessionRequest;
use sse_bridge_core::format::{AgUiRun, AiSdkChat};
use sse_bridge_core::session::threads::ThreadRun;
use sse_bridge_core::thread::answers::Answers;

/// `POST /v1/react/sessions`: start a session and stream it (PROTOCOL §3).
#[utoipa::path(
    post,
    path = "/v1/react/sessions",
    tag = "sessions",
    request_body(content = SessionRequestBody, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The session's events as `data: <json>` frames until `FinalAnswerStreamEnd`, `error` or `interrupt`", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String, description = "The session id (UUID v4)"), ("cache-control" = String), ("x-accel-buffering" = String))),
        (status = 409, description = "The thread_id belongs to another principal, or an interrupt the resume answers was already answered (e.g. by a concurrent resume); nothing was started", body = ErrorDetail),
        StartErrors,
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(request): Validated<SessionRequest>,
) -> Result<Response, ApiError> {
    let mut presentation = Presentation::native();
    // Validated already: both parse.
    if let Ok(Some(thread)) = request.thread_id() {
        let entries = request.resume().ok().flatten().unwrap_or_default();
        presentation.thread = Some(ThreadRun {
            thread,
            answers: Answers {
                entries,
                tool_results: Vec::new(),
            },
        });
    }
    let session = session::start(&state.sessions, &principal, request, presentation).await?;
    Ok(event_stream(session, Format::Native))
}

/// `POST /v1/ag-ui`: start a session for an AG-UI `RunAgentInput` and
/// stream it as AG-UI events (PROTOCOL §5).
#[utoipa::path(
    post,
    path = "/v1/ag-ui",
    tag = "agent-ui",
    request_body(content = RunAgentInput, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "AG-UI events: RUN_STARTED … RUN_FINISHED or RUN_ERROR", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String, description = "The session id (UUID v4)"), ("cache-control" = String), ("x-accel-buffering" = String))),
        (status = 409, description = "The runId or threadId belongs to another principal (an id is its first user's), or an interrupt the resume answers was already answered; nothing was started", body = ErrorDetail),
        StartErrors,
    )
)]
pub async fn run_ag_ui(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(run): Validated<AgUiRun>,
) -> Result<Response, ApiError> {
    let presentation = Presentation {
        format: Format::AgUi,
        thread_id: Some(run.thread_id.to_string()),
        run_id: Some(run.run_id),
        chat_id: None,
        message_id: None,
        thread: Some(ThreadRun {
            thread: run.thread_id,
            answers: run.answers,
        }),
    };
    let session = session::start(&state.sessions, &principal, run.request, presentation).await?;
    Ok(event_stream(session, Format::AgUi))
}

/// `GET /v1/ag-ui/runs/{run_id}/events`: the run again from `RUN_STARTED`.
#[utoipa::path(
    get,
    path = "/v1/ag-ui/runs/{run_id}/events",
    tag = "agent-ui",
    params(("run_id" = String, Path, description = "The AG-UI runId the run was started with")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The run again from RUN_STARTED, then live", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String, description = "The session id (UUID v4)"), ("cache-control" = String), ("x-accel-buffering" = String))),
        (status = 204, description = "The run is over and nothing more will come"),
        (status = 404, description = "No such run (or not the caller's)", body = ErrorDetail),
        FollowErrors,
    )
)]
pub async fn replay_ag_ui_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let run = session::follow_run(&state.sessions, &principal, &run_id).await?;
    followed(run, Format::AgUi)
}

/// `POST /v1/ai-sdk/chat`: start a session for a `useChat` message and
/// stream it as a UI message stream (PROTOCOL §5).
#[utoipa::path(
    post,
    path = "/v1/ai-sdk/chat",
    tag = "agent-ui",
    request_body(content = ChatRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The UI message stream (`start` … `finish`, `data: [DONE]`)", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String), ("x-vercel-ai-ui-message-stream" = String, description = "v1"))),
        (status = 409, description = "The chat id belongs to another principal (a chat id is its first user's; that chat keeps it), or an approval the message answers was already answered; nothing was started", body = ErrorDetail),
        StartErrors,
    )
)]
pub async fn chat_ai_sdk(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(chat): Validated<AiSdkChat>,
) -> Result<Response, ApiError> {
    let presentation = Presentation {
        format: Format::AiSdk,
        thread_id: None,
        run_id: None,
        chat_id: Some(chat.chat_id.to_string()),
        message_id: chat.continues,
        thread: Some(ThreadRun {
            thread: chat.chat_id,
            answers: chat.answers,
        }),
    };
    let session = session::start(&state.sessions, &principal, chat.request, presentation).await?;
    Ok(event_stream(session, Format::AiSdk))
}

/// `GET /v1/ai-sdk/chat/{chat_id}/stream` (`reconnectToStream`): the chat's
/// live message from `start`, or `204` when it has none.
#[utoipa::path(
    get,
    path = "/v1/ai-sdk/chat/{chat_id}/stream",
    tag = "agent-ui",
    params(("chat_id" = String, Path, description = "The chat's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The chat's live message from `start`, then live", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String), ("x-vercel-ai-ui-message-stream" = String))),
        (status = 204, description = "The chat has no live message (or is not the caller's)"),
        FollowErrors,
    )
)]
pub async fn resume_ai_sdk_chat(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(chat_id): Path<String>,
) -> Result<Response, ApiError> {
    let chat = session::follow_chat(&state.sessions, &principal, &chat_id).await?;
    followed(chat, Format::AiSdk)
}

/// `GET /v1/react/sessions/{session_id}/events`: follow or resume a session
/// after `Last-Event-ID` (PROTOCOL §4), in any format (`?format=`).
#[utoipa::path(
    get,
    path = "/v1/react/sessions/{session_id}/events",
    tag = "sessions",
    params(
        ("session_id" = String, Path, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", description = "The session id (the x-session-id header)"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^([0-9]+-[0-9]+|0)?$", description = "Resume after this entry id (`<ms>-<seq>`); empty or `0`: from the start"),
        ("last_event_id" = Option<String>, Query, pattern = "^([0-9]+-[0-9]+|0)?$", description = "The same, for a first request that cannot set headers (the header wins)"),
        ("format" = Option<FormatName>, Query, description = "`native` (default), `ag-ui` or `ai-sdk`; only native resumes after Last-Event-ID"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "`retry:` once, then `id:` + `data:` frames: the log after the cursor, then live, until the terminal event", content_type = "text/event-stream", body = ServerSentEvent, headers(("x-session-id" = String, description = "The session id (UUID v4)"), ("cache-control" = String), ("x-accel-buffering" = String))),
        (status = 204, description = "The cursor is the terminal event: nothing more will come"),
        (status = 404, description = "Unknown or expired session (or not the caller's)", body = ErrorDetail),
        (status = 422, description = "Last-Event-ID is not a stream id, or format is unknown", body = ErrorDetail),
        FollowErrors,
    )
)]
pub async fn follow_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SessionPath(id): SessionPath,
    FormatParam(format): FormatParam,
    Cursor(after): Cursor,
) -> Result<Response, ApiError> {
    let session = session::follow(&state.sessions, &principal, id, format, after).await?;
    followed(session, format)
}

fn followed(followed: Followed, format: Format) -> Result<Response, ApiError> {
    match followed {
        Followed::Stream(session) => Ok(event_stream(*session, format)),
        Followed::Ended => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `DELETE /v1/react/sessions/{session_id}`: cancel a session.
#[utoipa::path(
    delete,
    path = "/v1/react/sessions/{session_id}",
    tag = "sessions",
    params(("session_id" = String, Path, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", description = "The session id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled (the worker gets `cancel`, every stream `error`/`cancelled`), or it had already ended", body = Cancelled),
        (status = 401, description = "Authentication is on and the bearer token is missing or invalid", body = ErrorDetail, headers(("www-authenticate" = String))),
        (status = 404, description = "Unknown or expired session (or not the caller's)", body = ErrorDetail),
        (status = 422, description = "The id is not a session id", body = ErrorDetail),
        (status = 503, description = "The session's log is unreachable", body = ErrorDetail),
    )
)]
pub async fn cancel_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cancelled = session::cancel(&state.sessions, &principal, id).await?;
    let status = if cancelled {
        "cancelled"
    } else {
        "already_ended"
    };
    Ok(Json(
        json!({ "session_id": id.to_string(), "status": status }),
    ))
}

/// `GET /v1/threads/{thread_id}`: the thread's runs and what it waits for
/// (PROTOCOL §8), so a page that reloads can show a pending approval again.
#[utoipa::path(
    get,
    path = "/v1/threads/{thread_id}",
    tag = "threads",
    params(("thread_id" = String, Path, pattern = "^[A-Za-z0-9._:-]{1,128}$", description = "The thread id (native `thread_id`, AG-UI `threadId`, AI SDK chat `id`)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The thread's runs, oldest first, and its open interrupts", body = ThreadView),
        (status = 401, description = "Authentication is on and the bearer token is missing or invalid", body = ErrorDetail, headers(("www-authenticate" = String))),
        (status = 404, description = "Unknown or expired thread (or not the caller's)", body = ErrorDetail),
        (status = 422, description = "The id is not a thread id", body = ErrorDetail),
        (status = 503, description = "The thread's record is unreachable", body = ErrorDetail),
    )
)]
pub async fn get_thread(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ThreadPath(thread): ThreadPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let record = session::threads::view(&state.sessions, &thread, &principal).await?;
    Ok(Json(json!({
        "thread_id": thread.as_str(),
        "runs": record.runs,
        "interrupts": record.open,
    })))
}

/// A session's stream as an SSE response (PROTOCOL §3.3 headers; the AI
/// SDK's client also wants its protocol header).
fn event_stream(session: LiveSession, format: Format) -> Response {
    let id =
        HeaderValue::from_str(&session.id().to_string()).expect("a UUID is a valid header value");
    let mut response = Response::new(Body::from_stream(session.into_stream()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("x-session-id", id);
    if format == Format::AiSdk {
        headers.insert(
            "x-vercel-ai-ui-message-stream",
            HeaderValue::from_static("v1"),
        );
    }
    response
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: every backend answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The event bus and the job queue answer", body = Readiness),
        (status = 503, description = "A backend does not answer", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (bus, queue) = tokio::join!(
        check(state.sessions.bus.check_ready()),
        check(state.sessions.dispatcher.check_ready()),
    );
    let ready = bus.is_ok() && queue.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "event_bus": describe(&bus), "job_queue": describe(&queue) },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn describe(check: &Result<(), String>) -> &str {
    match check {
        Ok(()) => "ok",
        Err(error) => error,
    }
}

/// One readiness probe, bounded in time.
async fn check(probe: impl Future<Output = Result<(), BrokerError>>) -> Result<(), String> {
    const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// `GET /metrics`: Prometheus text format (behind auth with `guard_metrics`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "--metrics-require-auth is on and the bearer token is missing or invalid", body = ErrorDetail),
        (status = 404, description = "No metrics recorder is installed", body = ErrorDetail),
    )
)]
pub async fn metrics(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    if state.auth.guard_metrics
        && let Err(error) = state.auth.authenticate(&request.into_parts().0)
    {
        return error.into_response();
    }
    let channels = state.sessions.bus.routed_channels();
    metrics::gauge!(sse_bridge_core::metrics::BUS_CHANNELS).set(channels as f64);
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

/// `GET /openapi.json`: this API's description (see [`crate::openapi`]).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        crate::openapi::api()
            .into_openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
