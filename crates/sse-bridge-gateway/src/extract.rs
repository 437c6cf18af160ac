//! Request extractors: everything a handler receives is validated here, so
//! handlers get typed values and clients a precise 4xx.
//!
//! * [`Validated`] — content type, size limit and validation of each POST
//!   body (native, AG-UI, AI SDK: the [`FromJsonBody`] types).
//! * [`SessionPath`] — the `{session_id}` of a path (404 when it cannot name
//!   a session).
//! * [`Cursor`] — where a follower resumes: `Last-Event-ID` header, else the
//!   `last_event_id` query parameter (422 when it is not a stream id);
//!   [`FormatParam`] — `?format=` of a follower.

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sse_bridge_core::format::{AgUiRun, AiSdkChat, Format};
use sse_bridge_core::log::LogId;
use sse_bridge_core::protocol::InvalidRequest;
use sse_bridge_core::thread::{InvalidThreadId, ThreadId};
use sse_bridge_core::{SessionId, SessionRequest};

use crate::error::ApiError;

/// Largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A POST body validated as `T`: a session request (`POST
/// /v1/react/sessions`), an AG-UI `RunAgentInput` (`POST /v1/ag-ui`) or an
/// AI SDK chat request (`POST /v1/ai-sdk/chat`).
pub struct Validated<T>(pub T);

/// A request body type, checked from its JSON.
pub trait FromJsonBody: Sized {
    fn from_json(body: serde_json::Value) -> Result<Self, InvalidRequest>;
}

impl FromJsonBody for SessionRequest {
    fn from_json(body: serde_json::Value) -> Result<Self, InvalidRequest> {
        SessionRequest::from_value(body)
    }
}

impl FromJsonBody for AgUiRun {
    fn from_json(body: serde_json::Value) -> Result<Self, InvalidRequest> {
        AgUiRun::parse(body)
    }
}

impl FromJsonBody for AiSdkChat {
    fn from_json(body: serde_json::Value) -> Result<Self, InvalidRequest> {
        AiSdkChat::parse(body)
    }
}

impl<S, T> FromRequest<S> for Validated<T>
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
    T: FromJsonBody,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = read_limited(request.into_body(), limit).await?;
        let body =
            serde_json::from_slice(&bytes).map_err(|e| InvalidRequest::NotJson(e.to_string()))?;
        Ok(Validated(T::from_json(body)?))
    }
}

/// `application/json`, `application/json; charset=utf-8`, `application/*+json`.
fn is_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}

/// The session named by the path's `{session_id}`.
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::UnknownSession)?;
        // Not a session id we could have made: no such session.
        raw.parse()
            .map(SessionPath)
            .map_err(|_| ApiError::UnknownSession)
    }
}

/// The thread named by the path's `{thread_id}` (422 when it is not a
/// thread id at all).
pub struct ThreadPath(pub ThreadId);

impl<S: Send + Sync> FromRequestParts<S> for ThreadPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse()
            .map(ThreadPath)
            .map_err(|e: InvalidThreadId| ApiError::InvalidRequest(InvalidRequest::BadThreadId(e)))
    }
}

/// The logged event a follower has already seen; `None`: from the start.
pub struct Cursor(pub Option<LogId>);

/// The query parameter an `EventSource` can carry on its first request
/// (the header only exists on its reconnects).
const CURSOR_PARAMETER: &str = "last_event_id";

impl<S: Send + Sync> FromRequestParts<S> for Cursor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The header wins: a reconnecting EventSource sends its newest id
        // there, while its URL still carries the first request's query.
        let header = parts.headers.get("last-event-id");
        let raw = match header {
            Some(value) => value
                .to_str()
                .map_err(|_| ApiError::InvalidCursor("Last-Event-ID is not ASCII".into()))?
                .to_owned(),
            None => query_parameter(parts.uri.query().unwrap_or_default(), CURSOR_PARAMETER)
                .unwrap_or_default(),
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Cursor(None));
        }
        raw.parse()
            .map(|id| Cursor(Some(id)))
            .map_err(|e: sse_bridge_core::log::InvalidLogId| ApiError::InvalidCursor(e.to_string()))
    }
}

/// The output format a follower asked for with `?format=` (default native).
pub struct FormatParam(pub Format);

impl<S: Send + Sync> FromRequestParts<S> for FormatParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match query_parameter(parts.uri.query().unwrap_or_default(), "format") {
            None => Ok(FormatParam(Format::Native)),
            Some(label) => Format::from_label(&label).map(FormatParam).ok_or_else(|| {
                ApiError::InvalidRequest(InvalidRequest::Input(format!(
                    "format must be native, ag-ui or ai-sdk, not {label:?}"
                )))
            }),
        }
    }
}

/// The first value of `name` in a query string, percent-decoded.
fn query_parameter(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}
