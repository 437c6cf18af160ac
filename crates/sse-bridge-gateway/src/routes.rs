//! The handlers: thin shells over [`sse_bridge_core::session`].

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
use crate::extract::{Cursor, FormatParam, SessionPath, Validated};
use sse_bridge_core::SessionRequest;
use sse_bridge_core::format::{AgUiRun, AiSdkChat};

/// `POST /v1/react/sessions`: start a session and stream it (PROTOCOL §3).
pub async fn create_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(request): Validated<SessionRequest>,
) -> Result<Response, ApiError> {
    let presentation = Presentation::native();
    let session = session::start(&state.sessions, &principal, request, presentation).await?;
    Ok(event_stream(session, Format::Native))
}

/// `POST /v1/ag-ui`: start a session for an AG-UI `RunAgentInput` and
/// stream it as AG-UI events (PROTOCOL §5).
pub async fn run_ag_ui(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(run): Validated<AgUiRun>,
) -> Result<Response, ApiError> {
    let presentation = Presentation {
        format: Format::AgUi,
        thread_id: Some(run.thread_id),
        run_id: Some(run.run_id),
        chat_id: None,
    };
    let session = session::start(&state.sessions, &principal, run.request, presentation).await?;
    Ok(event_stream(session, Format::AgUi))
}

/// `GET /v1/ag-ui/runs/{run_id}/events`: the run again from `RUN_STARTED`.
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
pub async fn chat_ai_sdk(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Validated(chat): Validated<AiSdkChat>,
) -> Result<Response, ApiError> {
    let presentation = Presentation {
        format: Format::AiSdk,
        thread_id: None,
        run_id: None,
        chat_id: Some(chat.chat_id),
    };
    let session = session::start(&state.sessions, &principal, chat.request, presentation).await?;
    Ok(event_stream(session, Format::AiSdk))
}

/// `GET /v1/ai-sdk/chat/{chat_id}/stream` (`reconnectToStream`): the chat's
/// live message from `start`, or `204` when it has none.
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
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: every backend answers.
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

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
